"""Bad input, bad paths, bad options, the sync policy, and OS errors while writing."""

from __future__ import annotations

import errno
import os
import time

import pytest
from helpers import FsyncSpy, patch_engine, run_python

import kv_backend.db_write
from kv_backend import DB, record
from kv_backend.check import check
from kv_backend.errors import (
    ConfigurationError,
    InvalidKeyError,
    InvalidValueError,
    KeyTooLargeError,
    KVError,
    NotAStoreError,
    StorageError,
    StoreNotFoundError,
    ValueTooLargeError,
)
from kv_backend.filemaps import MMAP_NO_FD
from kv_backend.files import FORMAT_FILE

BAD_KEYS = ["str", 1, None, 1.5, ["list"], object()]
BAD_VALUES = ["str", 1, None, 2.5, {"a": 1}]


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: type(k).__name__)
def test_wrong_key_types(db, key):
    calls = [
        lambda: db.put(key, b"v"),
        lambda: db.__setitem__(key, b"v"),
        lambda: db.get(key),
        lambda: db[key],
        lambda: key in db,
        lambda: db.delete(key),
        lambda: db.pop(key, None),
        lambda: db.incr(key),
        lambda: db.put_if_absent(key, b"v"),
        lambda: db.update(key, lambda old: b"v"),
        lambda: db.expire(key, 10),
        lambda: db.ttl(key),
    ]
    for call in calls:
        with pytest.raises(InvalidKeyError) as info:
            call()
        assert isinstance(info.value, TypeError) and isinstance(info.value, KVError)
    with pytest.raises(InvalidKeyError), db.batch() as b:
        b.put(key, b"v")
    assert len(db) == 0


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_wrong_value_types(db, value):
    calls = [
        lambda: db.put(b"k", value),
        lambda: db.__setitem__(b"k", value),
        lambda: db.put_if_absent(b"k", value),
    ]
    if value is not None:  # update's fn returns None to delete
        calls.append(lambda: db.update(b"k", lambda old: value))
    for call in calls:
        with pytest.raises(InvalidValueError) as info:
            call()
        assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidValueError), db.batch() as b:
        b.put(b"k", value)
    assert b"k" not in db
    assert len(db) == 0


def test_key_sizes(db, store_path):
    for key in (b"", bytearray(), b"x" * (record.MAX_KEY_SIZE + 1)):
        for call in (
            lambda key=key: db.put(key, b"v"),
            lambda key=key: db.get(key),
            lambda key=key: db.incr(key),
        ):
            with pytest.raises(KeyTooLargeError) as info:
                call()
            assert isinstance(info.value, ValueError)
    biggest = b"K" * record.MAX_KEY_SIZE
    db.put(biggest, b"v")
    db.put(b"k", b"")
    assert db[biggest] == b"v"
    db.close()
    with DB(store_path) as again:
        assert again[biggest] == b"v"
        assert again[b"k"] == b""
        assert list(again.keys()) == [biggest, b"k"]


def test_value_too_large(db, monkeypatch):
    monkeypatch.setattr(record, "MAX_VALUE_SIZE", 100)  # instead of writing 1 GiB
    patch_engine(monkeypatch, "_MAX_VALUE", 100)
    db.put(b"ok", b"x" * 100)
    with pytest.raises(ValueTooLargeError) as info:
        db.put(b"k", b"x" * 101)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueTooLargeError):
        db.put_if_absent(b"k", bytearray(101))
    assert b"k" not in db


def test_bytes_like_keys_and_values(db):
    db.put(bytearray(b"ba"), memoryview(b"mv-value"))
    db.put(memoryview(b"mv"), bytearray(b"ba-value"))
    assert db.get(b"ba") == b"mv-value"
    assert type(db.get(b"ba")) is bytes
    assert db.get(bytearray(b"mv")) == b"ba-value"
    assert db.get(memoryview(b"ba")) == b"mv-value"
    assert db[bytearray(b"ba")] == b"mv-value"
    assert bytearray(b"ba") in db and memoryview(b"mv") in db
    assert bytearray(b"nope") not in db
    assert list(db.keys()) == [b"ba", b"mv"]
    assert all(type(k) is bytes for k in db)
    assert db.incr(bytearray(b"n")) == 1
    assert db.put_if_absent(memoryview(b"n"), b"x") is False
    assert db.pop(bytearray(b"mv")) == b"ba-value"
    assert db.delete(memoryview(b"ba")) is True
    with db.batch() as b:
        b.put(bytearray(b"b1"), memoryview(b"1"))
        b.delete(memoryview(b"n"))
    assert dict(db.items()) == {b"b1": b"1"}
    assert list(db.keys(prefix=bytearray(b"b"))) == [b"b1"]


# ------------------------------------------------------------------ paths


def test_read_only_missing_directory(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(StoreNotFoundError) as info:
        DB(missing, read_only=True)
    assert isinstance(info.value, FileNotFoundError)
    assert missing in str(info.value)
    assert not os.path.exists(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreNotFoundError):
        DB(str(empty), read_only=True)
    assert os.listdir(empty) == []


def test_path_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"hello")
    for read_only in (False, True):
        with pytest.raises(NotAStoreError) as info:
            DB(str(path), read_only=read_only)
        assert isinstance(info.value, StorageError) and isinstance(info.value, OSError)
    assert path.read_bytes() == b"hello"


def test_directory_with_foreign_files(tmp_path):
    d = tmp_path / "project"
    d.mkdir()
    (d / "settings.py").write_text("DEBUG = True\n")
    with pytest.raises(NotAStoreError) as info:
        DB(str(d))
    assert "settings.py" in str(info.value)
    assert sorted(os.listdir(d)) == ["settings.py"]  # nothing was created there


def test_a_mount_points_lost_and_found_does_not_make_it_foreign(tmp_path):
    d = tmp_path / "mnt"
    (d / "lost+found").mkdir(parents=True)
    with DB(str(d)) as db:
        db.put(b"k", b"v")
    with DB(str(d)) as db:
        assert db.get(b"k") == b"v"
    assert (d / "lost+found").is_dir()


def test_unsupported_format_marker(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    with open(os.path.join(store_path, FORMAT_FILE), "w") as f:
        f.write("kv_backend store, format 99\n")
    with pytest.raises(NotAStoreError) as info:
        DB(store_path)
    assert "format" in str(info.value)


def test_creates_missing_parents(tmp_path):
    path = str(tmp_path / "a" / "b" / "store")
    with DB(path) as db:
        db.put(b"k", b"v")
    with DB(path, read_only=True) as db:
        assert db[b"k"] == b"v"


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root ignores directory permissions (test_permissions.py runs this case as the nobody user)",
)
def test_unwritable_directory(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    os.chmod(parent, 0o500)
    try:
        with pytest.raises(StorageError) as info:
            DB(str(parent / "store"))
        assert "permission" in str(info.value).lower()
    finally:
        os.chmod(parent, 0o700)


def test_open_file_limit_and_data_files(store_path):
    """Data files older than the active one keep no descriptor of ours (none at all where their maps
    keep none, see kv_backend.filemaps); a store with more files than the limit allows gets a clear
    error, and loses nothing."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(3000):
            db.put(b"k%05d" % i, b"v" * 100)
    files = len([n for n in os.listdir(store_path) if n.endswith(".data")])
    assert files > 80
    out = run_python(
        """
        import os, resource, sys
        from kv_backend import DB
        from kv_backend.filemaps import MAPS_HOLD_FD
        path, files = sys.argv[1], int(sys.argv[2])
        before = len(os.listdir("/proc/self/fd"))
        with DB(path) as db:
            used = len(os.listdir("/proc/self/fd")) - before
            per_file = 1 if MAPS_HOLD_FD else 0  # the mapping's own duplicate
            assert used <= per_file * files + 6, (used, files)
            assert all(db[b"k%05d" % i] == b"v" * 100 for i in range(3000))
            db.put(b"after", b"1")
            db.merge(wait=True)  # a reload after the merge seals the merged files too
            assert len(db) == 3001 and db[b"k00007"] == b"v" * 100
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, hard))
        with DB(path) as db:  # merged into a few files, it opens within a tight limit
            assert len(db) == 3001
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print("ok")
        """,
        store_path,
        str(files),
    )
    assert out.stdout.strip() == "ok"


def test_too_many_files_for_the_open_file_limit(store_path):
    """Where each file still costs a descriptor (forced here: see kv_backend.filemaps): a clear error,
    nothing lost."""
    if MMAP_NO_FD:
        pytest.skip("from Python 3.13 closed data files keep no descriptor open")
    with DB(store_path, max_file_size=4096) as db:
        for i in range(3000):
            db.put(b"k%05d" % i, b"v" * 100)
    out = run_python(
        """
        import errno, resource, sys
        import kv_backend.filemaps
        from kv_backend import DB
        from kv_backend.errors import StorageError
        kv_backend.filemaps._place = None  # (the mapping's own duplicate, as where maps cannot do without)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, hard))
        try:
            DB(sys.argv[1])
        except StorageError as exc:
            assert exc.errno == errno.EMFILE, exc
            assert "ulimit -n" in str(exc) and "merge" in str(exc), exc
        else:
            raise AssertionError("opened a store of ~90 files with 48 descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with DB(sys.argv[1]) as db:
            assert len(db) == 3000
        print("ok")
        """,
        store_path,
    )
    assert out.stdout.strip() == "ok"


def test_permission_errors_become_storage_errors(tmp_path, monkeypatch):
    """Simulated EACCES (works as root too): a StorageError that says to check permissions."""

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "makedirs", refuse)
    with pytest.raises(StorageError) as info:
        DB(str(tmp_path / "store"))
    assert info.value.errno == errno.EACCES
    assert "permissions" in str(info.value)


@pytest.mark.parametrize(
    "options",
    [
        {"sync": "sometimes"},
        {"sync": -1},
        {"sync": True},
        {"sync": None},
        {"max_file_size": 10},
        {"max_file_size": 4095},
        {"max_file_size": "big"},
        {"max_file_size": 8192.0},
        {"auto_merge": 2},
        {"auto_merge": 1},  # (0 turns it off, as None: tests/test_auto_merge_zero_is_off29.py)
    ],
    ids=repr,
)
def test_bad_options(tmp_path, options):
    path = tmp_path / "store"
    with pytest.raises(ConfigurationError) as info:
        DB(str(path), **options)
    assert isinstance(info.value, ValueError)
    assert not path.exists()


# ------------------------------------------------------------------ sync policy


def test_sync_always_fsyncs_before_returning(store_path, monkeypatch):
    with DB(store_path, sync="always") as db:
        spy = FsyncSpy(monkeypatch)
        for i in range(5):
            n = len(spy.calls)
            value = b"value-%d" % i
            db.put(b"k%d" % i, value)
            assert len(spy.calls) > n, "put returned without an fsync"
            assert value in spy.contents[-1], "the fsync happened before the record was written"
        operations = [
            lambda: db.delete(b"k0"),
            lambda: db.incr(b"n"),
            lambda: db.put_if_absent(b"new", b"v"),
            lambda: db.update(b"k1", lambda old: b"updated"),
            lambda: db.expire(b"k2", 100),
            lambda: db.pop(b"k3"),
        ]
        for op in operations:
            n = len(spy.calls)
            op()
            assert len(spy.calls) > n
        n = len(spy.calls)
        with db.batch() as b:
            b.put(b"b1", b"batch-value")
            b.put(b"b2", b"v")
        assert len(spy.calls) > n
        assert b"batch-value" in spy.contents[-1]


def test_sync_never_does_not_fsync(store_path, monkeypatch):
    with DB(store_path, max_file_size=4096) as db:
        spy = FsyncSpy(monkeypatch)
        for i in range(60):
            db.put(b"k%d" % i, b"x" * 100)  # also rotates files
        db.incr(b"n")
        db.delete(b"k1")
        with db.batch() as b:
            b.put(b"b", b"1")
        assert db.stats()["files"] > 1
        assert spy.calls == []
        db.sync()  # an explicit sync still flushes: every file written (the rotations closed the others
        assert len(spy.calls) == db.stats()["files"]  # unflushed, sync="never"), each once
        db.sync()
        assert len(spy.calls) == db.stats()["files"] + 1  # then the active file alone


def test_a_writer_that_fsyncs_makes_every_writers_rotations_durable(store_path, monkeypatch):
    """A sync="always" writer fsyncs its active file after releasing the lock; if a sync="never"
    writer rotated in between, the records it had just written are in the file that writer closed.
    So once any writer of the store fsyncs, every rotation fsyncs the file it closes, the one it
    creates and the directory."""
    never = DB(store_path, max_file_size=4096)
    try:
        spy = FsyncSpy(monkeypatch)
        for i in range(60):
            never.put(b"a%d" % i, b"x" * 100)  # rotates, and no writer fsyncs: nothing is
        assert never.stats()["files"] > 1 and spy.calls == []
        with DB(store_path, sync="always", max_file_size=4096) as always:
            always.put(b"last", b"written by the fsyncing writer")
            calls = len(spy.calls)
            files = never.stats()["files"]
            never.put(b"rotate", b"y" * 4096)  # cannot fit: this sync="never" writer rotates
            assert never.stats()["files"] == files + 1
            closed = spy.contents[calls:]
            assert any(b"written by the fsyncing writer" in c for c in closed), "closed file not fsynced"
            assert len(closed) >= 3  # the closed file, the new file and the directory
    finally:
        never.close()
    # The mark stays with the store (in its state page): later writers keep doing it.
    with DB(store_path, max_file_size=4096) as again:
        calls = len(spy.calls)
        for i in range(60):
            again.put(b"b%d" % i, b"x" * 100)
        assert len(spy.calls) > calls


def test_sync_interval_fsyncs_at_most_that_often(store_path, monkeypatch):
    now = [time.time()]
    patch_engine(monkeypatch, "_time", lambda: now[0])
    with DB(store_path, sync=3600) as db:
        spy = FsyncSpy(monkeypatch)
        for i in range(30):
            now[0] += 10
            db.put(b"k%d" % i, b"v")
        assert len(spy.calls) <= 1  # 300 seconds: at most one fsync
        synced = len(spy.calls)
        now[0] += 3600
        db.put(b"later", b"v")
        assert len(spy.calls) == synced + 1  # the interval has passed: this write is synced
        assert b"later" in spy.contents[-1]
        for i in range(10):
            now[0] += 10
            db.put(b"again%d" % i, b"v")
        # The interval is shared by every process (the last sync time lives in the shared state).
        with DB(store_path, sync=3600) as other:
            other.put(b"other", b"v")
            assert len(spy.calls) == synced + 1
        n = len(spy.calls)
        db.close()  # closing flushes what the interval left unsynced
        assert len(spy.calls) == n + 1


def test_sync_zero_means_every_write(store_path, monkeypatch):
    with DB(store_path, sync=0) as db:
        spy = FsyncSpy(monkeypatch)
        for i in range(5):
            db.put(b"k%d" % i, b"v")
        assert len(spy.calls) >= 5


# ------------------------------------------------------------------ OS errors while writing


def test_short_writes_are_completed(store_path, monkeypatch):
    real_pwrite = os.pwrite

    def short_pwrite(fd, data, offset):
        return real_pwrite(fd, bytes(memoryview(data)[:7]), offset)

    with DB(store_path) as db:
        monkeypatch.setattr(os, "pwrite", short_pwrite)
        patch_engine(monkeypatch, "_pwrite", short_pwrite)
        db.put(b"k", b"a value much longer than seven bytes")
        with db.batch() as b:
            b.put(b"b1", b"x" * 100)
            b.put(b"b2", b"y" * 100)
        monkeypatch.setattr(os, "pwrite", real_pwrite)
        patch_engine(monkeypatch, "_pwrite", real_pwrite)
        assert db[b"k"] == b"a value much longer than seven bytes"
    with DB(store_path) as db:
        assert db[b"k"] == b"a value much longer than seven bytes"
        assert db[b"b1"] == b"x" * 100 and db[b"b2"] == b"y" * 100


def test_disk_full_mid_write(store_path, monkeypatch):
    real_pwrite = os.pwrite
    with DB(store_path) as db, DB(store_path, read_only=True) as reader:
        db.put(b"before", b"safe")
        token = db.change_token()

        def full_pwrite(fd, data, offset):
            # Half of the record reaches the file, then the disk is full.
            real_pwrite(fd, bytes(memoryview(data)[: len(data) // 2]), offset)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "pwrite", full_pwrite)
        patch_engine(monkeypatch, "_pwrite", full_pwrite)
        with pytest.raises(StorageError) as info:
            db.put(b"lost", b"z" * 500)
        assert info.value.errno == errno.ENOSPC
        assert "disk is full" in str(info.value)
        with pytest.raises(StorageError), db.batch() as b:
            b.put(b"lost-batch", b"z" * 500)
        monkeypatch.setattr(os, "pwrite", real_pwrite)
        patch_engine(monkeypatch, "_pwrite", real_pwrite)
        # Nothing was published, and the store keeps working.
        assert db.change_token() == reader.change_token() == token
        assert b"lost" not in db and b"lost-batch" not in db
        assert reader.get(b"lost") is None
        db.put(b"after", b"ok")
        assert reader.get(b"after") == b"ok"
        assert db[b"before"] == b"safe"
    with DB(store_path) as db:
        assert dict(db.items()) == {b"before": b"safe", b"after": b"ok"}
    assert check(store_path).ok


def test_disk_full_during_a_put_behind_other_writers(store_path, monkeypatch):
    """The unindexed append (a put that finds others' records not yet indexed) withdraws its intent."""
    real_pwrite = os.pwrite
    with DB(store_path) as a, DB(store_path) as b:
        a.put(b"first", b"1")
        assert b[b"first"] == b"1"
        acquire = b._lock.acquire
        disk_full = []

        def others_write_first() -> None:
            a.put(b"second", b"2")  # lands after b's catch-up, before b takes the lock
            disk_full.append(True)  # then the disk fills up
            acquire()

        def full_pwrite(fd, data, offset):
            if not disk_full:
                return real_pwrite(fd, data, offset)
            real_pwrite(fd, bytes(memoryview(data)[: len(data) // 2]), offset)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(b._lock, "acquire", others_write_first)
        patch_engine(monkeypatch, "_pwrite", full_pwrite)
        monkeypatch.setattr(os, "pwrite", full_pwrite)
        with pytest.raises(StorageError) as info:
            b.put(b"lost", b"z" * 500)
        assert info.value.errno == errno.ENOSPC
        assert b._seen != b._state.tail.value  # it went the unindexed way
        patch_engine(monkeypatch, "_pwrite", real_pwrite)
        monkeypatch.setattr(os, "pwrite", real_pwrite)
        monkeypatch.setattr(b._lock, "acquire", acquire)
        st = b._state
        assert st.intent.value == st.tail.value  # nothing announced is left behind
        b.put(b"after", b"ok")
        for db in (a, b):
            assert db.get(b"lost") is None
            assert dict(db.items()) == {b"first": b"1", b"second": b"2", b"after": b"ok"}
    with DB(store_path) as db:
        assert dict(db.items()) == {b"first": b"1", b"second": b"2", b"after": b"ok"}
    assert check(store_path).ok


def test_disk_full_while_starting_a_new_file(store_path, monkeypatch):
    real_write_all = kv_backend.db_write.write_all

    def no_space_for_headers(fd, data, offset):
        if offset == 0:  # the header of a new data file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_all(fd, data, offset)

    with DB(store_path, max_file_size=4096) as db, DB(store_path, max_file_size=4096) as other:
        written = {}
        for i in range(15):
            db.put(b"k%d" % i, b"v" * 200)
            written[b"k%d" % i] = b"v" * 200
        patch_engine(monkeypatch, "write_all", no_space_for_headers)
        with pytest.raises(StorageError) as info:
            for i in range(15, 40):
                db.put(b"k%d" % i, b"v" * 200)
                written[b"k%d" % i] = b"v" * 200
        assert info.value.errno == errno.ENOSPC
        patch_engine(monkeypatch, "write_all", real_write_all)
        assert dict(db.items()) == written
        db.put(b"after", b"1")
        other.put(b"after-other", b"2")
        written.update({b"after": b"1", b"after-other": b"2"})
        assert dict(db.items()) == dict(other.items()) == written
    with DB(store_path) as db:
        assert dict(db.items()) == written
    assert check(store_path).ok


def test_nan_ttl_is_rejected(db):
    with pytest.raises(ValueError):
        db.put(b"k", b"v", ttl=float("nan"))
    db.put(b"k", b"v")
    with pytest.raises(ValueError):
        db.expire(b"k", float("nan"))
    assert db.ttl(b"k") is None


def test_arguments_of_the_wrong_type_raise_kv_errors(db, tmp_path):
    """docs/engine.md and docs/store.md: all errors derive from KVError. A ttl, expires_at or incr
    delta of the wrong type, or a serializer that is none, raised a bare TypeError that an
    `except KVError` missed; they are now KVErrors that are still TypeErrors."""
    from kv_backend import InvalidArgumentError, InvalidValueError, KVError, Store
    from kv_backend.errors import ConfigurationError

    db.put(b"k", b"1")
    with Store(str(tmp_path / "s")) as store:
        calls = [
            (InvalidArgumentError, lambda: db.put(b"k", b"v", ttl="5")),
            (InvalidArgumentError, lambda: db.put(b"k", b"v", expires_at="soon")),
            (InvalidArgumentError, lambda: db.put(b"k", b"v", ttl=5, expires_at=time.time() + 5)),
            (InvalidArgumentError, lambda: db.expire(b"k", "5")),
            (InvalidArgumentError, lambda: db.put_if_absent(b"new", b"v", ttl=[5])),
            (InvalidValueError, lambda: db.incr(b"k", 1.5)),
            (InvalidArgumentError, lambda: store.set("a", 1, ttl="5")),
            (InvalidArgumentError, lambda: Store(str(tmp_path / "t"), serializer=5)),
        ]
        for error, call in calls:
            with pytest.raises(error) as caught:
                call()
            assert isinstance(caught.value, KVError) and isinstance(caught.value, TypeError)
        assert issubclass(InvalidArgumentError, ConfigurationError)
        assert db.get(b"k") == b"1" and db.get(b"new") is None and "a" not in store
