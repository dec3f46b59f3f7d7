"""A read-only open of a store without a ``STATE`` page, in a directory it cannot write, maps the page a
writer makes later at a read (``DB._adopt_page``), taking the page's shared in-use ``flock``: it waited for
it without bound, while a tool swapping the store out (``kv_restore --replace``, see
``state.kept_unopened``) held it exclusively. A read under a ``waiting_until`` deadline reaches it: on a
``kvb http`` server of a read-only ``DB``, a ``POST /v1/txn`` of reads, and the read of a conditional
``PUT``. That wait now ends at the deadline: LockTimeoutError, nothing changed, and the next read maps the
page.

The reader is a forked child running as ``nobody`` where the tests run as root (who may write any
directory, and would have made the page at the open); the test process is the writer and the swapper.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest
from helpers import become_nobody, fork_talking, reachable_dir, reap

from kv_backend import DB
from kv_backend.files import STATE_FILE

DEADLINE = 0.3
#: Seconds the test waits for the reader's answer while the page stays locked: far past its deadline.
PATIENCE = 10.0


@pytest.fixture
def base() -> Iterator[str]:
    """A directory the reader can reach, removed with what it holds."""
    yield from reachable_dir("kvb-adopt-")


def _reader(path: str, orders: int, answers: int) -> None:  # pragma: no cover - child
    """Open ``path`` read-only as nobody; at each order byte, read ``k`` (``d``: under a deadline) and
    answer with a line: ``timeout <seconds>`` or ``value <value> <seconds>``."""
    import time

    import kv_backend.db_common
    from kv_backend.errors import LockTimeoutError
    from kv_backend.locking import waiting_until

    become_nobody()
    kv_backend.db_common.PAGE_LOOK_INTERVAL = 0.0  # (every read looks whether a writer made the page)
    with DB(path, read_only=True) as db:
        os.write(answers, b"opened\n")
        while order := os.read(orders, 1):
            started = time.monotonic()
            try:
                if order == b"d":
                    with waiting_until(started + DEADLINE):
                        value = db[b"k"]
                else:
                    value = db[b"k"]
            except LockTimeoutError:
                os.write(answers, b"timeout %.3f\n" % (time.monotonic() - started))
                continue
            os.write(answers, b"value %s %.3f\n" % (value, time.monotonic() - started))


def _answer(answers: int) -> str:
    import select

    ready, _, _ = select.select([answers], [], [], PATIENCE)
    assert ready, f"no answer from the reader in {PATIENCE} s (it waits for the page's lock)"
    return os.read(answers, 200).decode()


def test_a_read_under_a_deadline_gives_up_mapping_a_page_held_by_a_swap(base):
    path = os.path.join(base, "s")
    with DB(path) as db:
        db[b"k"] = b"old"
    os.unlink(os.path.join(path, STATE_FILE))  # (no writer opened it since: as after a restore)
    os.chmod(path, 0o555)
    pid, orders_w, answers_r = fork_talking(lambda orders, answers: _reader(path, orders, answers))
    held = -1
    try:
        assert _answer(answers_r) == "opened\n"
        with DB(path) as db:  # (root: makes the page, and writes)
            db[b"k"] = b"new"
        # The swap's hold: an exclusive flock on the page, as kept_unopened takes it.
        held = os.open(os.path.join(path, STATE_FILE), os.O_RDONLY)
        fcntl.flock(held, fcntl.LOCK_EX)
        os.write(orders_w, b"d")
        word, seconds = _answer(answers_r).split()
        assert word == "timeout", word  # (before: no answer while the page stayed locked)
        assert DEADLINE * 0.9 <= float(seconds) < DEADLINE + 2.0
        os.close(held)  # (the swap is over: the store was in use)
        held = -1
        os.write(orders_w, b"r")
        assert _answer(answers_r).split()[:2] == ["value", "new"]  # (nothing was left half-changed)
        os.write(orders_w, b"d")
        assert _answer(answers_r).split()[:2] == ["value", "new"]
    finally:
        if held >= 0:
            os.close(held)
        os.close(orders_w)  # (the reader ends at the end of its orders)
        code = reap(pid)
        os.close(answers_r)
    assert code == 0
