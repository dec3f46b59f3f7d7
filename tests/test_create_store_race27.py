"""Two processes create one store at once, and the first one's fsync of the directory fails after it
renamed the format file into place: it removes the file again under the write lock (see
test_create_store_fsync27, which runs both opens as threads of one process). Here they are processes,
with their own ``flock`` on LOCK: the second reads the first's format file (its check, made without the
lock), then waits for the lock. It must not write into a directory whose format file then disappears:
it finds the file gone under the lock, creates the store with an id of its own, and writes; the next
open sees its store, its id and its data, and no leftover of the first."""

from __future__ import annotations

import errno
import json
import os
import select

from helpers import fork_talking, reap, wait_for, waiting_for_flock

from kv_backend import DB
from kv_backend.files import FORMAT_FILE, LOCK_FILE, TMP_SUFFIX
from kv_backend.store_id import read_store_id

#: Seconds the test waits for a child's answer, or for the second to wait for the lock.
PATIENCE = 30.0


def _creator(store: str, orders: int, answers: int) -> None:  # pragma: no cover - child
    """Create the store; at the first fsync of its directory (the format file renamed into place), answer
    ``R`` and the id the file names, wait for the order, and fail (every later one fails at once)."""
    from kv_backend.errors import StorageError

    real = os.fsync
    told: list[bool] = []

    def fsync(fd: int) -> None:
        if os.path.samestat(os.fstat(fd), os.stat(store)):
            if not told:
                told.append(True)
                os.write(answers, b"R" + str(read_store_id(store)).encode())
                assert os.read(orders, 1) == b"g"
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    os.fsync = fsync  # type: ignore[assignment]  # (this child's alone)
    try:
        DB(store)
    except StorageError as exc:
        assert "cannot create a store in" in str(exc), exc
        os.write(answers, b"F")
    else:
        os.write(answers, b"opened")


def _opener(store: str, orders: int, answers: int) -> None:  # pragma: no cover - child
    """Open the store for writing, noting the id its format check read; write ``k``; answer what it saw."""
    import kv_backend.db as db_module
    from kv_backend.db_open import took_creation
    from kv_backend.store_id import parse_store_id

    real = db_module.format_file_text
    checked: list[str | None] = []

    def check(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = real(*args, **kwargs)
        checked.append(parse_store_id(found) if found is not None else None)
        return found

    db_module.format_file_text = check  # type: ignore[assignment]
    with DB(store) as db:
        db.put(b"k", b"v")
        seen = {"checked": checked[0], "created": took_creation(db), "id": db.store_id}
    os.write(answers, json.dumps(seen).encode())


def _answer(fd: int) -> bytes:
    ready, _, _ = select.select([fd], [], [], PATIENCE)
    assert ready, f"no answer from a child in {PATIENCE} s"
    return os.read(fd, 4096)


def test_a_process_that_read_a_format_file_its_creator_then_removed_creates_the_store(tmp_path):
    store = str(tmp_path / "s")
    children: list[tuple[int, int, int]] = []
    try:
        children.append(fork_talking(lambda orders, answers: _creator(store, orders, answers)))
        said = _answer(children[0][2])
        assert said[:1] == b"R", said
        first_id = said[1:].decode()  # (the format file is in place; the creator holds the lock)
        lock_inode = os.stat(os.path.join(store, LOCK_FILE)).st_ino
        children.append(fork_talking(lambda orders, answers: _opener(store, orders, answers)))
        wait_for(lambda: waiting_for_flock(lock_inode), PATIENCE, "the second open waiting for the lock")
        os.write(children[0][1], b"g")  # the creator's fsync fails: it removes the file, lets the lock go
        assert _answer(children[0][2]) == b"F"
        seen = json.loads(_answer(children[1][2]))
    finally:
        codes = []
        for pid, orders_w, answers_r in children:
            os.close(orders_w)
            codes.append(reap(pid))
            os.close(answers_r)
    assert codes == [0, 0]
    assert seen["checked"] == first_id  # (its check read the file the creator then removed)
    assert seen["created"] and seen["id"] not in (None, first_id)  # (before: it opened the creator's store)
    assert read_store_id(store) == seen["id"]
    assert FORMAT_FILE + TMP_SUFFIX not in os.listdir(store)
    with DB(store, read_only=True) as db:
        assert db[b"k"] == b"v" and db.store_id == seen["id"]
