"""kv_backend.dbm.open(path, "c", mode) in two processes creating one path at once (#4).

The mode applies to a database the call created only, as the stdlib's ``mode`` applies to a file
when it is created. A second process that had looked for a store at the path before the first one
had written it went on to re-chmod every file of that store to its own mode.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import time

import kv_backend.dbm as kv_dbm

# (spawn: a forked child of a test process whose other threads hold locks may hang on them)
_ctx = multiprocessing.get_context("spawn")


def _modes(path: str) -> dict[str, int]:
    return {name: stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) for name in os.listdir(path)}


def _open_late(path: str, mode: int, flag: str) -> None:
    """Open after the other process has created the database, having first looked at the path
    while it held nothing (the moment at which the second of two racing opens can be)."""
    os.umask(0)
    from kv_backend import dbm as mod

    real = mod.refuse_dangling_link

    def wait_then_check(p: str) -> None:
        deadline = time.monotonic() + 10
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
        real(p)

    mod.refuse_dangling_link = wait_then_check
    mod.open(path, "c", mode).close()


def _open(path: str, mode: int, flag: str | None = None) -> None:
    os.umask(0)
    db = kv_dbm.open(path, "c", mode)
    db[b"k"] = b"v"
    db.close()
    if flag:
        open(flag, "w").close()


def test_second_creator_leaves_the_first_ones_modes(tmp_path):
    path, flag = str(tmp_path / "db"), str(tmp_path / "first-done")
    late = _ctx.Process(target=_open_late, args=(path, 0o666, flag))
    late.start()
    first = _ctx.Process(target=_open, args=(path, 0o600, flag))
    first.start()
    first.join(20)
    late.join(20)
    assert first.exitcode == 0 and late.exitcode == 0
    modes = _modes(path)
    assert modes and all(m & 0o077 == 0 for m in modes.values()), {k: oct(v) for k, v in modes.items()}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def _race(path: str, mode: int, barrier: object) -> None:
    barrier.wait(10)  # type: ignore[attr-defined]
    _open(path, mode)


def test_racing_creators_agree_on_one_mode(tmp_path):
    for round_ in range(3):
        path = str(tmp_path / f"db{round_}")
        barrier = _ctx.Barrier(2)
        procs = [_ctx.Process(target=_race, args=(path, m, barrier)) for m in (0o600, 0o666)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(20)
            assert p.exitcode == 0
        files = set(_modes(path).values())
        assert len(files) == 1 and files <= {0o600, 0o666}, {oct(m) for m in files}
        with kv_dbm.open(path, "r") as db:
            assert db[b"k"] == b"v"
