"""Salvage reads its source's id again under the source's write lock, but waits for that lock a second at
most: a salvage run while its caller (or any process) holds the lock, as ``flock SRC/LOCK kvb salvage SRC
DST`` does to keep writers out, waited for it for ever."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

from helpers import child_env

from kv_backend import DB
from kv_backend.salvage import salvage
from kv_backend.store_id import read_store_id


def _store(path: str) -> str:
    with DB(path) as db:
        for i in range(20):
            db.put(b"k%d" % i, b"v%d" % i)
    sid = read_store_id(path)
    assert sid is not None
    return sid


def test_a_salvage_while_this_process_holds_the_lock_by_flock_ends_with_the_sources_id(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    sid = _store(src)
    fd = os.open(os.path.join(src, "LOCK"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # (as a program keeping writers out while it salvages)
        started = time.monotonic()
        report = salvage(src, dst)
        took = time.monotonic() - started
    finally:
        os.close(fd)
    assert report.keys_copied == 20
    assert took < 10, took  # about the one second it waits for the lock, not for ever
    assert read_store_id(dst) == sid
    with DB(dst, read_only=True) as db:
        assert {k: db[k] for k in db} == {b"k%d" % i: b"v%d" % i for i in range(20)}


def test_kvb_salvage_under_flock_of_the_lock_file_ends(tmp_path):
    """The shell form: flock(1) holds the lock in its own process, kvb salvage runs as its child."""
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    sid = _store(src)
    holder = (
        "import fcntl, os, subprocess, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "cmd = [sys.executable, '-m', 'kv_backend', 'salvage', sys.argv[2], sys.argv[3]]\n"
        "sys.exit(subprocess.call(cmd))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", holder, os.path.join(src, "LOCK"), src, dst],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert read_store_id(dst) == sid
