"""Engine review 13: damaged lengths in published data, torn tails told apart from them."""

from __future__ import annotations

import logging
import os
import random
import signal
import struct
import time

from helpers import data_files, exit_code, fork_child

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.filemaps import MAPS_HOLD_FD
from kv_backend.salvage import salvage


def _offsets(path: str) -> dict[bytes, int]:
    """The offset of the newest record of each key in the data file at ``path``."""
    with open(path, "rb") as f:
        buf = f.read()
    out, pos = {}, rec.FILE_HEADER_SIZE
    while pos + rec.HEADER_SIZE <= len(buf) and buf[pos : pos + rec.HEADER_SIZE].strip(b"\0"):
        _, _, _, klen, vlen, _ = rec.HEADER.unpack_from(buf, pos)
        out[buf[pos + rec.HEADER_SIZE : pos + rec.HEADER_SIZE + klen]] = pos
        pos += rec.HEADER_SIZE + klen + vlen
    return out


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def random_store(base: str, rnd: random.Random, writes: int) -> None:
    """A store of small files at ``base`` holding ``writes`` random puts, deletes and batches."""
    with DB(base, max_file_size=4096) as db:
        for _ in range(writes):
            key = b"k%d" % rnd.randrange(30)
            r = rnd.random()
            if r < 0.1:
                db.delete(key)
            elif r < 0.25:
                with db.batch() as b:
                    b.put(key, rnd.randbytes(rnd.randrange(100)))
                    b.delete(key + b"!")
                    b.put(key + b"?", rnd.randbytes(rnd.randrange(100)))
            else:
                db.put(key, rnd.randbytes(rnd.randrange(1, 300)))


def damage_record(name: str, r: tuple, rnd: random.Random, *, shorter: bool, zeros: tuple[int, ...]) -> None:
    """Damage the record ``r`` (the format reader's tuple) of data file ``name`` one random way: its
    key length, its value length (also ``shorter`` than it is), ``zeros`` over it, or one byte."""
    how = rnd.choice(["klen", "vlen", "zeros", "byte"])
    if how == "klen":
        klen = rnd.choice([0x7FFFFFFF, 70000, r[4] + rnd.randrange(1, 90)])
        _patch(name, r[0] + 6, struct.pack("<I", klen))
    elif how == "vlen":
        vlens = [0x3FFFFFFF, r[5] + rnd.randrange(1, 300)] + ([max(r[5] - 20, 0)] if shorter else [])
        _patch(name, r[0] + 10, struct.pack("<I", rnd.choice(vlens)))
    elif how == "zeros":
        _patch(name, r[0], bytes(rnd.choice(zeros)))
    else:
        _patch(name, r[0] + rnd.randrange(4, 22 + r[4] + r[5]), bytes([rnd.randrange(256)]))


def assert_readers_agree(path: str, copy: str, it: int) -> list:
    """DB (read-only) counts what kvb check reports, salvage (into ``copy``) copies what DB reads, and
    the independent reader reads what DB reads; returns kvb check's problems."""
    import test_format_reader11 as reader

    problems = check(path).problems
    with DB(path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == len(problems), (it, problems)
    _salvaged_matches_db(path, copy)
    reader.assert_same(path)
    return problems


def _damage_key_length(path: str, key: bytes) -> int:
    at = _offsets(path)[key]
    _patch(path, at + 6, struct.pack("<I", 0x7FFFFFFF))
    return at


def test_a_damaged_length_in_the_active_file_hides_nothing_and_is_not_written_over(store_path, caplog):
    """A damaged key length before the published end used to end the replay there: the keys after
    it read as missing, nothing reported it, and the next put wrote over them (kvb check then found
    nothing wrong). Reading now resumes at the next sound record, and the damage is reported."""
    with DB(store_path) as db:
        for i in range(10):
            db.put(b"k%d" % i, b"v%d" % i * 10)
    active = data_files(store_path)[-1]
    at = _damage_key_length(active, b"k2")
    with caplog.at_level(logging.WARNING, logger="kv_backend.db"), DB(store_path) as db:
        assert db.stats()["corrupt_records"] == 1
        want = [None if i == 2 else b"v%d" % i * 10 for i in range(10)]
        assert [db.get(b"k%d" % i) for i in range(10)] == want
        db.put(b"new", b"x")
    assert f"{active} @ {at}: damaged record header" in caplog.text
    with DB(store_path, read_only=True) as db:
        assert sorted(db.keys()) == sorted([b"k%d" % i for i in range(10) if i != 2] + [b"new"])
    report = check(store_path)
    assert [(p.path, p.offset) for p in report.problems] == [(active, at)]
    assert "damaged record header" in report.problems[0].what


def test_a_damaged_length_in_a_closed_file_is_read_past_by_db_check_and_salvage(store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(30):
            db.put(b"k%02d" % i, b"%d" % i * 20)
        with db.batch() as b:  # a batch cut by the damage: published, so it committed
            b.put(b"b1", b"one")
            b.put(b"b2", b"two")
        for i in range(30, 60):
            db.put(b"k%02d" % i, b"%d" % i * 20)
        db.put(b"k00", b"newest")
    closed = data_files(store_path)[0]
    assert b"b2" in _offsets(closed)
    at = _damage_key_length(closed, b"b2")
    lost = {b"b2"}
    with DB(store_path, max_file_size=4096) as db:
        assert db.stats()["corrupt_records"] == 1
        seen = dict(db.items())
    expected = {b"k%02d" % i: b"%d" % i * 20 for i in range(60)} | {b"k00": b"newest", b"b1": b"one"}
    assert seen == {k: v for k, v in expected.items() if k not in lost}
    report = check(store_path)
    assert [(p.path, p.offset) for p in report.problems] == [(closed, at)]
    copied = salvage(store_path, str(tmp_path / "copy"))
    assert [(r.path, r.offset) for r in copied.regions] == [(closed, at)]
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == seen


def test_a_record_inside_a_damaged_records_value_is_not_taken_for_a_record(store_path, tmp_path):
    """A value holding an encoded record (followed by other bytes): after a damaged header before
    it, the record's bytes are sound, but not confirmed by a sound record right after them."""
    fake = rec.encode(rec.PUT, b"fake", b"never written")
    with DB(store_path) as db:
        db.put(b"a", b"1")
        db.put(b"holder", b"<" + fake + b">" * 40)
        db.put(b"b", b"2")
        db.put(b"c", b"3")
    _damage_key_length(data_files(store_path)[-1], b"holder")
    with DB(store_path) as db:
        assert dict(db.items()) == {b"a": b"1", b"b": b"2", b"c": b"3"}
        assert db.stats()["corrupt_records"] == 1
    salvage(store_path, str(tmp_path / "copy"))
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == {b"a": b"1", b"b": b"2", b"c": b"3"}


def test_damage_after_a_batch_in_the_published_tail_keeps_the_batch(store_path):
    with DB(store_path) as db:
        with db.batch() as b:
            b.put(b"x", b"1")
            b.put(b"y", b"2")
        db.put(b"z", b"3")
    _patch(data_files(store_path)[-1], _offsets(data_files(store_path)[-1])[b"z"], bytes(22))
    with DB(store_path) as db:
        assert dict(db.items()) == {b"x": b"1", b"y": b"2"}
        assert db.stats()["corrupt_records"] == 1  # zeros where a published record was


def test_writers_killed_at_random_moments_leave_no_damage(store_path):
    """A torn tail (a writer SIGKILLed mid-append, mid-rotation or mid-batch) is never taken for
    damage: not by a reader that was open, nor by later readers and writers, nor by kvb check."""
    rnd = random.Random(13)
    DB(store_path, max_file_size=4096).close()
    reader = DB(store_path, read_only=True)
    try:
        for round_no in range(10):

            def writer(seed: int = round_no) -> None:
                r = random.Random(seed)
                with DB(store_path, max_file_size=4096) as db:
                    for i in range(100_000):
                        key = b"k%d" % r.randrange(50)
                        if i % 7 == 0:
                            with db.batch() as b:
                                b.put(key, os.urandom(r.randrange(300)))
                                b.delete(key + b"!")
                        else:
                            db.put(key, os.urandom(r.randrange(1, 600)))

            pid = fork_child(writer)
            time.sleep(rnd.uniform(0.005, 0.04))
            os.kill(pid, signal.SIGKILL)
            assert exit_code(pid) == -signal.SIGKILL
            assert len(reader) >= 0 and reader.stats()["corrupt_records"] == 0
            report = check(store_path)
            assert report.ok, report.problems
            with DB(store_path, read_only=True) as db:
                assert db.stats()["corrupt_records"] == 0
            with DB(store_path, max_file_size=4096) as db:
                assert db.stats()["corrupt_records"] == 0
                for key in list(db.keys()):
                    db.get(key)
            assert reader.stats()["corrupt_records"] == 0
    finally:
        reader.close()


def test_a_reader_out_of_file_descriptors_fails_clearly_and_recovers(store_path):
    """A process at its open-file limit when another process rotates to a new data file could not
    follow: the read raised a bare OSError (EMFILE), and every later call a bare EBADF, even once
    descriptors were free again (the file it had sealed was scanned again through its closed fd).
    It now raises StorageError (EMFILE) and works again once it can open the new file. Where the
    mappings keep no descriptor (see kv_backend.filemaps) the spare one is enough."""
    needs_descriptor = MAPS_HOLD_FD
    with DB(store_path, max_file_size=4096) as db:
        for i in range(20):
            db.put(b"k%d" % i, b"x" * 1000)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def reader() -> None:
        import errno
        import resource

        from kv_backend import StorageError

        db = DB(store_path, read_only=True)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = max(map(int, os.listdir("/proc/self/fd")))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 2, hard))
        spare = []
        while True:  # take every free descriptor below the limit but one
            try:
                spare.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        os.close(spare.pop())
        os.write(ready_w, b"r")
        os.read(go_r, 1)
        for _ in range(2):
            try:
                got = db.get(b"new")
            except StorageError as exc:
                assert needs_descriptor and exc.errno == errno.EMFILE, exc
            else:  # the new file's mapping keeps no descriptor: nothing to run out of
                assert not needs_descriptor, "the read did not need a new file"
                assert got == b"n" * 1000
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert db.get(b"new") == b"n" * 1000
        assert all(db.get(b"k%d" % i) == b"x" * 1000 for i in range(20))
        assert db.stats()["corrupt_records"] == 0
        db.close()

    pid = fork_child(reader)
    assert os.read(ready_r, 1) == b"r"
    with DB(store_path, max_file_size=4096) as db:
        for i in range(12):  # three rotations
            db.put(b"new" if i == 11 else b"pad%d" % i, b"n" * 1000)
    os.write(go_w, b"g")
    assert exit_code(pid) == 0
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)


def test_a_writer_out_of_file_descriptors_when_its_file_grows_raises_storage_error(store_path):
    """Growing the active file maps it again, which takes a descriptor where maps hold one (see
    kv_backend.filemaps): at the limit, that raised a bare OSError. It raises StorageError, and the
    next write succeeds. Where the mapping takes no descriptor, the write succeeds at the limit."""
    needs_descriptor = MAPS_HOLD_FD

    def writer() -> None:
        import errno
        import resource

        from kv_backend import StorageError

        db = DB(store_path)
        db.put(b"a", b"1")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = max(map(int, os.listdir("/proc/self/fd")))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))
        spare = []
        while True:
            try:
                spare.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        big = b"v" * (3 << 20)  # past what the file holds reserved: it grows, and is mapped again
        try:
            db.put(b"big", big)
        except StorageError as exc:
            assert needs_descriptor and exc.errno == errno.EMFILE, exc
        else:
            assert not needs_descriptor, "the file did not grow"
            assert db.get(b"big") == big
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        db.put(b"big", big)
        assert db.get(b"big") == big and db.get(b"a") == b"1"
        db.close()
        with DB(store_path) as again:
            assert again.get(b"big") == big and again.stats()["corrupt_records"] == 0

    assert exit_code(fork_child(writer)) == 0


def test_a_filesystem_that_refuses_file_locks_raises_storage_error_saying_so(store_path, monkeypatch):
    """flock failing with ENOLCK (or EOPNOTSUPP: some network and FUSE filesystems) escaped as a
    bare OSError with no path; a merge's lock leaked its descriptor. They raise StorageError naming
    the lock file and what to do, and the store works once locks do."""
    import errno
    import fcntl

    import kv_backend.locking as locking
    from kv_backend import StorageError

    def refuse(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(locking, "_flock", refuse)
    try:
        DB(store_path)
    except StorageError as exc:
        assert exc.errno == errno.ENOLCK and "LOCK" in str(exc) and "local filesystem" in str(exc)
    else:
        raise AssertionError("the store opened without its lock")
    monkeypatch.undo()
    with DB(store_path) as db:
        db.put(b"a", b"1")
        for patched in ((locking, "_flock"), (fcntl, "flock")):
            monkeypatch.setattr(*patched, refuse)
            for call in (lambda: db.put(b"b", b"2"), db.merge):
                try:
                    call()
                except StorageError as exc:
                    assert exc.errno == errno.ENOLCK, exc
            monkeypatch.undo()
        db.put(b"b", b"2")  # the thread lock was let go
        db.merge()
        assert dict(db.items()) == {b"a": b"1", b"b": b"2"}


def test_a_store_that_opens_near_the_file_limit_can_be_merged(store_path):
    """Merge opened every input at once, one more descriptor per data file than the open store
    already holds (its mappings, before Python 3.13): a store that opened, and that the open-file
    error says to merge, could not be. Inputs are now read one at a time."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(160):
            db.put(b"k%d" % (i % 8), b"%d" % i * 300)

    def merger() -> None:
        import resource

        db = DB(store_path, max_file_size=4096)
        assert db.stats()["files"] > 30
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        top = max(map(int, os.listdir("/proc/self/fd")))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + 12, hard))
        spare = []
        while True:
            try:
                spare.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        for _ in range(12):
            os.close(spare.pop())
        report = db.merge()
        assert report.files_after < 5, report
        assert dict(db.items()) == {b"k%d" % j: b"%d" % (152 + j) * 300 for j in range(8)}
        db.close()

    assert exit_code(fork_child(merger)) == 0
    with DB(store_path) as db:
        assert db.stats()["files"] < 6 and len(db) == 8


def test_wait_for_change_times_out_on_time_when_the_wall_clock_jumps_back(db, monkeypatch):
    """Its timeout was measured on the wall clock: set back by an hour (NTP, an operator) during a
    0.05 s wait, the wait lasted an hour. It is a duration, measured on the monotonic clock."""
    import threading

    import kv_backend.db as db_module
    import kv_backend.db_common as common

    real = time.time
    calls = [0]

    def jumping() -> float:
        calls[0] += 1
        return real() - (3600.0 if calls[0] > 1 else 0.0)

    for module in (common, db_module):
        if hasattr(module, "_time"):
            monkeypatch.setattr(module, "_time", jumping)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(db.wait_for_change(db.change_token(), 0.05)))
    waiter.start()
    waiter.join(2)
    timed_out = not waiter.is_alive()
    db.put(b"wake", b"up")  # ends the wait either way
    waiter.join(2)
    assert timed_out and result == [False]


def test_resync_finds_the_first_confirmed_record_across_its_read_windows(monkeypatch):
    """record.resync reads a window at a time: a record at any offset, across a window's edge
    included, is found, and a lone record followed by other bytes is not taken."""
    monkeypatch.setattr(rec, "_RESYNC_WINDOW", 40)
    rnd = random.Random(5)
    for trial in range(300):
        record = rec.encode(rec.PUT, b"k%d" % trial, rnd.randbytes(rnd.randrange(50)))
        after = rec.encode(rec.DELETE, b"x", b"") if trial % 3 else bytes(rnd.randrange(0, 60))
        junk = rnd.randbytes(rnd.randrange(0, 200))
        lone = rec.encode(rec.PUT, b"fake", b"v") + b"\xff" * 30 if trial % 5 == 0 else b""
        buf = bytes(16) + lone + junk + record + after
        want = 16 + len(lone) + len(junk)
        assert rec.resync(lambda o, n, buf=buf: buf[o : o + n], 15, len(buf)) == want, trial


def _salvaged_matches_db(store: str, copy: str) -> None:
    """What salvage copies is what DB reads (keys whose newest record is damaged aside)."""
    with DB(store, read_only=True) as db:
        want = {}
        for key in list(db.keys()):
            try:
                want[key] = db.get(key)
            except Exception:  # a damaged newest record: not copied
                continue
    salvage(store, copy)
    with DB(copy, read_only=True) as db:
        assert dict(db.items()) == want


def test_salvage_reads_a_batch_cut_by_a_damaged_header_as_replay_does(store_path, tmp_path):
    """A batch whose first record's key length is damaged: replay applies what follows it at the
    COMMIT (rule 2: a published COMMIT ends a batch that committed); salvage dropped it."""
    with DB(store_path) as db:
        db.put(b"a", b"old")
        with db.batch() as b:
            b.put(b"first", b"1")
            b.put(b"a", b"new")
            b.put(b"c", b"3")
        db.put(b"z", b"26")
    _damage_key_length(data_files(store_path)[-1], b"first")
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == {b"a": b"new", b"c": b"3", b"z": b"26"}
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))


def test_salvage_ends_published_records_at_the_published_end_as_replay_does(store_path, tmp_path):
    """In the active file, a damaged value length that reaches into the zeros reserved past the
    published end swallowed the records after it for salvage (and kvb check): replay reads no
    further than the published end, so it is a damaged length there, and both read on after it."""
    with DB(store_path) as db:
        for i in range(8):
            db.put(b"k%d" % i, b"v%d" % i)
    active = data_files(store_path)[-1]
    at = _offsets(active)[b"k3"]
    _patch(active, at + 10, struct.pack("<I", 5000))  # inside the file: its reserved zeros
    with DB(store_path, read_only=True) as db:
        assert sorted(db.keys()) == [b"k%d" % i for i in range(8)]
        assert [db.get(b"k%d" % i) for i in range(8) if i != 3] == [b"v%d" % i for i in range(8) if i != 3]
    assert [p.offset for p in check(store_path).problems] == [at]
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))


def test_a_damaged_value_length_that_still_fits_does_not_swallow_the_records_after_it(store_path, tmp_path):
    """A value length damaged into a smaller error (it still fits in the file) was trusted: replay
    stepped into the middle of the records after it and lost them, so their keys read older values
    while their newest records were intact. Lengths are trusted only when something sound follows
    where they point; else reading resumes at the next sound record, and the key reads as damaged."""
    from kv_backend import CorruptionError

    with DB(store_path, max_file_size=4096) as db:
        for gen in (b"old", b"new"):
            for i in range(10):
                db.put(b"k%d" % i, gen + b"%d" % i)
        db.put(b"pad", b"x" * 4000)
    closed = data_files(store_path)[0]
    at = _offsets(closed)[b"k2"]
    with open(closed, "rb") as f:
        vlen = rec.HEADER.unpack_from(f.read(), at)[4]
    _patch(closed, at + 10, struct.pack("<I", vlen + 100))
    others = [i for i in range(10) if i != 2]
    with DB(store_path) as db:
        assert [db.get(b"k%d" % i) for i in others] == [b"new%d" % i for i in others]
        try:
            db.get(b"k2")
        except CorruptionError:
            pass
        else:
            raise AssertionError("k2's newest record is damaged: reading it must raise")
        assert db.stats()["corrupt_records"] == 1
    assert [p.offset for p in check(store_path).problems] == [at]
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))


def test_replay_check_salvage_and_the_format_reader_agree_on_random_damage(tmp_path):
    """Random damage (lengths, zeros, single bytes; one to three spots) in the files of a store of
    every kind of write: DB (read-write and read-only) and the independent reader of
    docs/file-format.md read the same keys, kvb check reports what replay counts, and salvage
    copies what DB reads."""
    import shutil

    import test_format_reader11 as reader

    rnd = random.Random(13)
    base = str(tmp_path / "base")
    random_store(base, rnd, 250)
    for it in range(12):
        path = str(tmp_path / f"s{it}")
        shutil.copytree(base, path)
        for _ in range(rnd.choice([1, 1, 2, 3])):
            files = data_files(path)
            name = rnd.choice(files[:-1]) if rnd.random() < 0.7 else files[-1]
            walkable = reader.records(name)  # (up to earlier damage)
            if not walkable:
                continue
            damage_record(name, rnd.choice(walkable), rnd, shorter=False, zeros=(22, 100, 500))
        assert_readers_agree(path, str(tmp_path / f"copy{it}"), it)
