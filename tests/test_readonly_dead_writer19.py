"""A read-only open of a store whose last writer died after writing past the published end.

docs/file-format.md ("The end of the active file") has a reader of a store no process is writing read
what a writer opening it would keep: past the published end, the complete records and committed
batches a writer that died wrote (recovery keeps them). A read-only open read the active file only up to
the published end: where damage turned the page's tail back to an earlier record boundary (the intent
word still past it, at the real end), it gave the old value of a key whose delete was acknowledged after
that boundary, and a backup restored it, while a writer's open kept the delete. A read-only open (and a
backup) takes the write lock to list the files, and a writer holds it from its intent to its
publication: under it, what follows the published end is no live writer's unfinished write, and both now
read it as recovery keeps it.
"""

from __future__ import annotations

import os
import struct

from kv_backend import DB
from kv_backend.backup import backup_store, restore
from kv_backend.files import data_name
from kv_backend.state import published_tail


def _set_tail(path: str, major: int, end: int) -> None:
    """Damage the page's tail word (the intent word left where the writer put it)."""
    with open(os.path.join(path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(struct.pack("=Q", (major << 40) | end))


def _store(path: str) -> tuple[int, int, int]:
    """k00..k09, k39 put and then deleted; the active file's major id, the end before the delete
    (a record boundary), and the end after a last put of k41."""
    with DB(path) as db:
        for i in range(10):
            db.put(b"k%02d" % i, b"v%02d" % i)
        db.put(b"k39", b"old")
        major, before = published_tail(path)
        db.delete(b"k39")
        db.put(b"k41", b"new")
        _, last = published_tail(path)
    return major, before, last


def _view(db: DB) -> dict[bytes, bytes]:
    return {k: db.get(k) for k in db}


_WANT = {**{b"k%02d" % i: b"v%02d" % i for i in range(10)}, b"k41": b"new"}


def test_a_tail_damaged_to_a_record_boundary_reads_the_acknowledged_delete(store_path):
    """Seed 21740's shape: the tail's end cut back to the boundary before an acknowledged delete."""
    major, before, _ = _store(store_path)
    _set_tail(store_path, major, before)
    with DB(store_path, read_only=True) as ro:
        assert ro.get(b"k39") is None
        assert _view(ro) == _WANT
        with DB(store_path) as w:  # the writer's recovery keeps the same records
            assert _view(w) == _WANT
            w.put(b"k42", b"later")
        # The reader goes on from the end of what it kept: nothing read twice, nothing missed.
        assert _view(ro) == {**_WANT, b"k42": b"later"}
        assert ro.stats()["corrupt_records"] == 0


def test_a_torn_write_past_the_published_end_is_not_read(store_path):
    """The complete records past the end are read, the torn last one is not: as recovery cuts it."""
    major, before, last = _store(store_path)
    with open(os.path.join(store_path, data_name((major, 0))), "r+b") as f:
        f.seek(last - 3)
        f.write(b"\0\0\0")  # k41's record torn: the writer died in its pwrite
    _set_tail(store_path, major, before)
    want = {k: v for k, v in _WANT.items() if k != b"k41"}
    with DB(store_path, read_only=True) as ro:
        assert _view(ro) == want
        assert ro.stats()["corrupt_records"] == 0
    with DB(store_path) as w:
        assert _view(w) == want
        assert published_tail(store_path) == (major, last - len(b"k41") - len(b"new") - 22)


def test_a_backup_keeps_what_recovery_keeps(store_path, tmp_path):
    major, before, _ = _store(store_path)
    _set_tail(store_path, major, before)
    url = (tmp_path / "backups").as_uri()
    backup_store(store_path, url)
    target = str(tmp_path / "restored")
    restore(url, target)
    with DB(target, read_only=True) as db:
        assert _view(db) == _WANT


def test_a_live_writers_unpublished_records_are_not_read(store_path):
    """A transaction writes past the published end without publishing: a reader opening meanwhile
    waits for the write lock, and reads the block whole once it is committed, or none of it."""
    import threading

    _store(store_path)
    with DB(store_path) as w:
        seen: list[dict[bytes, bytes]] = []
        started = threading.Event()
        with w.transaction():
            w.put(b"k50", b"in the block")
            opener = threading.Thread(target=lambda: (started.set(), seen.append(_open_view(store_path))))
            opener.start()
            started.wait()
            opener.join(0.2)
            assert not seen  # waiting for the lock the block holds
            w.put(b"k51", b"in the block")
        opener.join(10)
    assert seen == [{**_WANT, b"k50": b"in the block", b"k51": b"in the block"}]


def _open_view(path: str) -> dict[bytes, bytes]:
    with DB(path, read_only=True) as ro:
        return _view(ro)


def test_without_a_lock_that_keeps_writers_out_only_the_published_end_is_read(store_path, monkeypatch):
    """A read-only open that could not open LOCK (a store copied without it, in a directory the reader
    cannot write) holds no lock a writer waits for: what follows the published end may be a live
    writer's write, not yet published, and is not read."""
    from kv_backend.locking import WriteLock

    major, before, _ = _store(store_path)
    _set_tail(store_path, major, before)
    os.unlink(os.path.join(store_path, "LOCK"))
    monkeypatch.setattr(WriteLock, "_open", lambda self: -1)
    with DB(store_path, read_only=True) as ro:
        assert not ro._lock.excludes_writers
        assert ro.get(b"k39") == b"old" and ro.get(b"k41") is None
