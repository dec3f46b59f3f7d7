"""What docs/engine.md (Memory and speed, Command line), docs/store.md and docs/django.md (Limits) say
of the disk a store takes: from its first write the active file is reserved ahead of its end in
steps (64 KiB, doubling up to 1 MiB, then 1 MiB each), the reservation stays after close, and
``stats()["total_bytes"]`` counts the records only, as INFO's ``used_memory_disk`` of ``kvb serve``
does (docs/redis.md)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from resp_helpers import Raw, RunningServer, info_number

from kv_backend import DB

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def _flat(name: str) -> str:
    return re.sub(r"\s+", " ", (ROOT / "docs" / name).read_text())


def _allocates(directory: Path) -> bool:
    """Whether posix_fallocate gives blocks on this file system (it may be emulated or refused)."""
    if not hasattr(os, "posix_fallocate"):
        return False
    probe = directory / "probe"
    fd = os.open(probe, os.O_CREAT | os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, MIB)
        return os.fstat(fd).st_blocks * 512 >= MIB
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return False
        raise
    finally:
        os.close(fd)
        probe.unlink()


def test_docs_say_a_small_store_takes_64_kib_of_disk() -> None:
    engine = _flat("engine.md")
    steps = "reserves the active file's space ahead of its end in steps of 64 KiB, doubling up to 1 MiB"
    assert steps in engine
    assert "the reservation stays after the store is closed" in engine
    assert "the space reserved past the active file's end, see [Memory and speed]" in engine
    assert "a store takes about 64 KiB of disk however few keys it holds" in _flat("store.md")
    assert "Each `LOCATION` takes about 64 KiB of disk from its first `set`" in _flat("django.md")
    redis = _flat("redis.md")
    assert "`used_memory_disk` (the bytes of the log files' records, kvb's: the store's" in redis


def test_a_small_store_reserves_64_kib_that_stats_do_not_count(tmp_path: Path) -> None:
    path = tmp_path / "kv"
    with DB(str(path)) as db:
        db.put(b"greeting", b"hello")
        stats = db.stats()
        active = path / stats["active_file"]
    assert stats["files"] == 1 and stats["total_bytes"] == stats["active_end"] < 100
    st = active.stat()  # after close: the reservation stays
    assert st.st_size == 64 << 10
    if _allocates(tmp_path):
        assert st.st_blocks * 512 >= 64 << 10
    with DB(str(path)) as db:
        db.put(b"big", b"x" * (MIB + 1000))
        end = db.stats()["active_end"]
    assert active.stat().st_size == -(-end // MIB) * MIB == 2 * MIB


def test_info_used_memory_disk_is_the_stores_total_bytes(tmp_path: Path) -> None:
    path = str(tmp_path / "kv")
    server = RunningServer(path).start()
    try:
        conn = Raw(server.port, 2)
        try:
            assert conn.call("SET", "k", "v") == b"+OK\r\n"
            on_disk = info_number(conn, "memory", "used_memory_disk")
        finally:
            conn.close()
        with DB(path, read_only=True) as db:
            assert on_disk == db.stats()["total_bytes"] < MIB
    finally:
        server.stop()
