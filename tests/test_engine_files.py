"""Damaged, truncated and hand-made files: what the engine keeps, what it refuses, what it reports."""

from __future__ import annotations

import os
import random
import shutil

import pytest
from helpers import run_kvb

from kv_backend import DB, record
from kv_backend.check import Problem, check
from kv_backend.cli import main as cli_main
from kv_backend.errors import CorruptionError
from kv_backend.files import STATE_FILE, data_name, hint_name, list_data_files
from kv_backend.hint import write_hints
from kv_backend.state import SharedState, pack_tail, unpack_tail


def data_files(store: str) -> list[str]:
    return [os.path.join(store, data_name(f)) for f in list_data_files(store)]


def scan_file(path: str) -> list[tuple[int, bytes, int, int, float]]:
    with open(path, "rb") as f:
        buf = f.read()
    return record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries


def published(store: str) -> tuple[tuple[int, int], int]:
    """The active file id and end offset the STATE page publishes."""
    st = SharedState(os.path.join(store, STATE_FILE), writable=False)
    try:
        major, end = unpack_tail(st.tail.value)
    finally:
        st.close()
    return (major, 0), end


def set_intent(store: str, end: int) -> None:
    """Announce a write that will end at ``end``, as a writer does before appending."""
    st = SharedState(os.path.join(store, STATE_FILE), writable=True)
    try:
        major, _ = unpack_tail(st.tail.value)
        st.intent.value = pack_tail(major, end)
    finally:
        st.close()


def logical_end(path: str) -> int:
    """The end of the last record of a data file (writers reserve zeros past it)."""
    with open(path, "rb") as f:
        buf = f.read()
    return record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).end


def append(path: str, data: bytes, *, keep_reserved: bool = False) -> None:
    """Write ``data`` right after the last record, dropping (or keeping) the reserved zeros after it."""
    end = logical_end(path)
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(data)
        if not keep_reserved:
            f.truncate()


def clean_past_tail(store: str) -> bool:
    """True if nothing but reserved zeros follows the published end of the active file."""
    fid, end = published(store)
    with open(os.path.join(store, data_name(fid)), "rb") as f:
        f.seek(end)
        return not f.read().strip(b"\0")


# ------------------------------------------------------------------ truncated tails


def _build_log(store: str, rnd: random.Random) -> list[tuple[str, int, list[tuple[str, bytes, bytes]]]]:
    """Write a mix of puts, overwrites, deletes and batches; return (file, end, ops) for every write."""
    log = []
    with DB(store, max_file_size=4096) as db:
        for i in range(70):
            choice = rnd.random()
            if choice < 0.6:
                key = b"k%d" % rnd.randrange(25)
                value = os.urandom(rnd.randrange(0, 200))
                db.put(key, value)
                ops = [("put", key, value)]
            elif choice < 0.75:
                key = b"k%d" % rnd.randrange(25)
                if key not in db:
                    continue
                db.delete(key)
                ops = [("delete", key, b"")]
            else:
                ops = [("put", b"b%d:%d" % (i, j), os.urandom(40)) for j in range(4)]
                ops.append(("delete", b"k%d" % rnd.randrange(25), b""))
                with db.batch() as b:
                    for op, key, value in ops:
                        b.put(key, value) if op == "put" else b.delete(key)
            stats = db.stats()
            log.append((stats["active_file"], stats["active_end"], ops))
    return log


def test_truncated_tail_keeps_every_complete_record(tmp_path):
    rnd = random.Random(1234)
    original = str(tmp_path / "original")
    log = _build_log(original, rnd)
    files = data_files(original)
    assert len(files) >= 3
    active = os.path.basename(files[-1])
    size = logical_end(files[-1])
    boundaries = [end for f, end, _ in log if f == active]
    assert boundaries[-1] == size
    cuts = {
        record.FILE_HEADER_SIZE,
        size - 1,
        size + 100,
        boundaries[len(boundaries) // 2],
        boundaries[-2] + 1,
    }
    cuts.update(rnd.randrange(record.FILE_HEADER_SIZE, size) for _ in range(10))
    for n, cut in enumerate(sorted(cuts)):
        store = str(tmp_path / f"cut{n}")
        shutil.copytree(original, store)
        os.truncate(os.path.join(store, active), cut)
        expected: dict[bytes, bytes] = {}
        for f, end, ops in log:
            if f == active and end > cut:
                break
            for op, key, value in ops:
                if op == "put":
                    expected[key] = value
                else:
                    expected.pop(key, None)
        # A reader before any writer came by, then a writer that repairs the tail.
        with DB(store, read_only=True) as ro:
            assert dict(ro.items()) == expected, f"cut at {cut}"
        with DB(store, max_file_size=4096) as db:
            assert dict(db.items()) == expected, f"cut at {cut}"
            db.put(b"after-cut", b"new")
            expected[b"after-cut"] = b"new"
        with DB(store, max_file_size=4096) as db:
            assert dict(db.items()) == expected, f"cut at {cut}"
        report = check(store)
        assert report.ok, (cut, report.problems)


def test_cut_inside_the_file_header(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    os.truncate(data_files(store_path)[-1], 5)
    with DB(store_path) as db:
        assert len(db) == 0
        db.put(b"k2", b"v2")
    with DB(store_path) as db:
        assert dict(db.items()) == {b"k2": b"v2"}


@pytest.mark.parametrize("header_bytes", [0, 5])
def test_rotation_that_stopped_before_the_next_files_header_is_forgotten(store_path, header_bytes):
    """A rotation that failed (disk full) or died right after creating the next data file
    leaves it without a header and unpublished: the next writer removes it, even on a full
    disk, and the previous file stays the active one."""
    with DB(store_path) as db:
        for i in range(10):
            db.put(b"k%d" % i, b"v" * 20)
    before = data_files(store_path)
    major = list_data_files(store_path)[-1][0]
    leftover = os.path.join(store_path, data_name((major + 1, 0)))
    with open(leftover, "wb") as f:
        f.write(record.FILE_HEADER_BYTES[:header_bytes])
    with DB(store_path) as db:
        assert not os.path.exists(leftover) and data_files(store_path) == before
        assert len(db) == 10
        db.put(b"after", b"1")
    with DB(store_path, read_only=True) as db:
        assert len(db) == 11 and db[b"after"] == b"1"
    assert check(store_path).ok


def test_reader_that_listed_a_headerless_leftover_follows_the_file_that_replaces_it(store_path):
    """A reader opened while a dead rotation's headerless file was there holds that file;
    the writer that removes it and the rotation that creates a new file of the same name
    must not leave the reader indexing the removed one (stale values, deleted keys back)."""
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"x", b"old")
        db.put(b"gone", b"1")
    major = list_data_files(store_path)[-1][0]
    open(os.path.join(store_path, data_name((major + 1, 0))), "wb").close()
    with DB(store_path, read_only=True) as ro, DB(store_path, max_file_size=4096) as db:
        while list_data_files(store_path)[-1][0] == major:
            db.put(b"fill%d" % len(db), b"f" * 200)  # rotates into a new (major + 1, 0)
        db.put(b"x", b"new")
        db.delete(b"gone")
        assert ro.get(b"x") == b"new" and b"gone" not in ro
        assert dict(ro.items()) == dict(db.items())


@pytest.mark.parametrize("cut", ["mid-record", "file-header"])
def test_next_writer_cleans_a_truncated_tail(store_path, cut):
    with DB(store_path) as db:
        for i in range(10):
            db.put(b"k%d" % i, b"v" * 20)
    path = data_files(store_path)[-1]
    ends = [offset + size for _, _, offset, size, _ in scan_file(path)]
    # Cut 30 bytes into the 6th record (its torn rest is longer than the next write), or into the header.
    os.truncate(path, ends[4] + 30 if cut == "mid-record" else 5)
    with DB(store_path) as db:
        db.put(b"n", b"1")  # 24 bytes
        assert clean_past_tail(store_path)
    report = check(store_path)
    assert report.ok and report.notes == [], (report.problems, report.notes)


def test_torn_header_with_huge_lengths(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    # A header whose length fields point far past the end of the file.
    header = record.HEADER.pack(0, record.PUT, 0, 10, 1 << 31, 0.0)
    append(data_files(store_path)[-1], header)
    with DB(store_path, read_only=True) as ro:
        assert dict(ro.items()) == {b"k": b"v"}
    with DB(store_path) as db:
        assert dict(db.items()) == {b"k": b"v"}
        db.put(b"k2", b"v2")
    with DB(store_path) as db:
        assert dict(db.items()) == {b"k": b"v", b"k2": b"v2"}


def test_records_and_batches_bigger_than_the_replay_chunk(store_path):
    big = os.urandom(9 << 20)  # replay reads 8 MiB chunks
    parts = {b"part%d" % i: os.urandom(2 << 20) for i in range(5)}
    with DB(store_path) as db, DB(store_path, read_only=True) as other:
        db.put(b"before", b"1")
        db.put(b"big", big)
        with db.batch() as b:
            for k, v in parts.items():
                b.put(k, v)
        db.put(b"after", b"2")
        assert other.get(b"big") == big
        assert all(other.get(k) == v for k, v in parts.items())
        assert other.get(b"after") == b"2"
    with DB(store_path) as db:
        assert db[b"big"] == big
        assert all(db.get(k) == v for k, v in parts.items())
        assert db[b"after"] == b"2" and db[b"before"] == b"1"


# ------------------------------------------------------------------ bit flips


def _store_with_closed_files(store: str) -> dict[bytes, bytes]:
    values = {b"key%03d" % i: os.urandom(100) for i in range(100)}
    with DB(store, max_file_size=4096) as db:
        for k, v in values.items():
            db.put(k, v)
    assert len(list_data_files(store)) >= 3
    return values


@pytest.mark.parametrize("where", ["value", "crc", "value-end"])
def test_bit_flip_in_a_closed_file(store_path, where, capsys):
    values = _store_with_closed_files(store_path)
    rnd = random.Random(where)
    path = data_files(store_path)[0]
    _, key, offset, size, _ = rnd.choice(scan_file(path))
    pos = {
        "value": offset + record.HEADER_SIZE + len(key) + 50,
        "crc": offset + 1,
        "value-end": offset + size - 1,
    }[where]
    with open(path, "r+b") as f:
        f.seek(pos)
        byte = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([byte ^ (1 << rnd.randrange(8))]))

    with DB(store_path) as db:
        with pytest.raises(CorruptionError) as info:
            db.get(key)
        assert info.value.path == path
        assert info.value.offset == offset
        assert path in str(info.value) and "kvb check" in str(info.value)
        with pytest.raises(CorruptionError):
            db[key]
        for k, v in values.items():
            if k != key:
                assert db.get(k) == v
        assert key in db  # the key exists; its value cannot be returned
        assert db.stats()["corrupt_records"] == 1
        # Writing the key again repairs it (the new record lives in the active file).
        db.put(key, b"rewritten")
        assert db[key] == b"rewritten"

    report = check(store_path)
    assert not report.ok
    assert report.problems == [Problem(path, offset, "checksum mismatch")]
    if where == "value":  # through `python -m kv_backend check` once, in this process otherwise
        cli = run_kvb("check", store_path)
        code, out = cli.returncode, cli.stdout + cli.stderr
    else:
        code, out = cli_main(["check", store_path]), capsys.readouterr().out
    assert code == 1, out
    assert f"DAMAGED: {path} @ {offset}: checksum mismatch" in out


def test_bit_flip_in_the_expiry_field_is_reported(store_path):
    values = _store_with_closed_files(store_path)
    path = data_files(store_path)[0]
    _, key, offset, _, expiry = scan_file(path)[3]
    assert expiry == 0.0
    with open(path, "r+b") as f:
        f.seek(offset + 14)  # the low byte of the expiry float: 0.0 becomes a tiny positive time
        f.write(b"\x01")
    report = check(store_path)
    assert report.problems == [Problem(path, offset, "checksum mismatch")]
    with DB(store_path) as db:
        assert all(db.get(k) == v for k, v in values.items() if k != key)
        with pytest.raises(CorruptionError):
            db.get(key)


_DAMAGE = {
    # what is damaged: (key of the record, offset in it, XOR mask, key that must raise or None)
    "batch flag of a plain record": (b"x", 5, 0x01, b"x"),
    "batch flag of a batch's first record": (b"b1", 5, 0x01, b"b1"),
    "batch flag of a batch's middle record": (b"b2", 5, 0x01, b"b2"),
    "type of a plain record": (b"x", 4, 0x04, b"x"),
    "count of a COMMIT": (b"", 22, 0x02, None),
    "type of a COMMIT": (b"", 4, 0x04, None),
}


@pytest.mark.parametrize("what", list(_DAMAGE))
def test_damage_to_the_fields_that_frame_records_loses_nothing_else(store_path, what):
    """A bit flip in a closed file's batch flag, type or COMMIT count is one damaged record:
    its key raises on reading (never an older value), batches and every later record of the
    file are still read, and a merge keeps all of them."""
    key, where, mask, raising = _DAMAGE[what]
    expected = {b"x": b"new", b"b1": b"1", b"b2": b"2", b"b3": b"3", b"last": b"L"}
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"x", b"old")
        db.put(b"b2", b"old")
        while len(list_data_files(store_path)) < 2:
            db.put(b"fill%d" % len(db), b"f" * 200)
        with db.batch() as b:
            for k in (b"b1", b"b2", b"b3"):
                b.put(k, expected[k])
        db.put(b"x", b"new")
        db.put(b"last", b"L")
        while len(list_data_files(store_path)) < 3:
            db.put(b"fill%d" % len(db), b"f" * 200)
        expected.update((k, v) for k, v in db.items() if k.startswith(b"fill"))
    path = data_files(store_path)[1]
    with open(path, "rb") as f:
        buf = f.read()
    records = {k: (off, size) for _, k, off, size, _ in record.scan(buf, 16, len(buf)).entries}
    # The COMMIT record (no key) follows the batch's last record.
    offset = records[key][0] if key else sum(records[b"b3"])
    with open(path, "r+b") as f:
        f.seek(offset + where)
        byte = f.read(1)[0]
        f.seek(offset + where)
        f.write(bytes([byte ^ mask]))
    assert check(store_path).problems == [Problem(path, offset, "checksum mismatch")]

    def check_reads(db: DB) -> None:
        for k, v in expected.items():
            if k != raising:
                assert db.get(k) == v, k
            else:
                with pytest.raises(CorruptionError):
                    db.get(k)

    with DB(store_path, read_only=True) as ro:
        check_reads(ro)
    with DB(store_path) as db:
        check_reads(db)
        report = db.merge()
        assert report.corrupt_kept == (1 if raising else 0)
        check_reads(db)  # (kept as it is: the key still raises, never back to its older value)
    with DB(store_path) as db:
        check_reads(db)


def test_get_never_returns_the_value_of_another_key(store_path):
    values = _store_with_closed_files(store_path)
    fid = list_data_files(store_path)[0]
    path = os.path.join(store_path, data_name(fid))
    entries = scan_file(path)
    (_, k0, off0, size0, exp0), (_, k1, off1, size1, exp1) = entries[0], entries[1]
    # A hint file with sound checksums whose first two entries point at each other's records.
    hints = [(k0, off1, size1, exp1), (k1, off0, size0, exp0)]
    hints += [(k, off, size, exp) for _, k, off, size, exp in entries[2:]]
    write_hints(
        os.path.join(store_path, hint_name(fid)),
        os.path.getsize(path),
        [k for k, _, _, _ in hints],
        [off << 32 | size for _, off, size, _ in hints],
        [exp for _, _, _, exp in hints],
    )
    with DB(store_path) as db:
        for key in (k0, k1):
            try:
                got = db.get(key)
            except CorruptionError:
                continue
            assert got == values[key], f"{key!r} returned the value of another key"


def test_damaged_file_header_is_reported_by_check(store_path):
    _store_with_closed_files(store_path)
    path = data_files(store_path)[1]
    with open(path, "r+b") as f:
        f.write(b"NOTMAGIC")
    report = check(store_path)
    assert [p.path for p in report.problems] == [path]
    assert report.problems[0].offset == 0


# ------------------------------------------------------------------ a dead writer's tail


GARBAGE = {
    "random": lambda: random.Random(7).randbytes(300),
    "torn-record": lambda: record.encode(record.PUT, b"ghost", b"boo" * 50)[:-20],
    "bad-crc": lambda: b"\0\0\0\0" + record.encode(record.PUT, b"ghost", b"boo")[4:],
    "uncommitted-batch": lambda: b"".join(
        record.encode(record.PUT, b"ghost%d" % j, b"boo", flags=record.FLAG_BATCH) for j in range(3)
    ),
    "batch-bad-count": lambda: (
        record.encode(record.PUT, b"ghost", b"boo", flags=record.FLAG_BATCH) + record.encode_commit(2)
    ),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_dead_writers_tail_is_cut_and_never_returned(store_path, kind):
    with DB(store_path) as db:
        for i in range(10):
            db.put(b"k%d" % i, b"v%d" % i)
    writer = DB(store_path)
    reader = DB(store_path, read_only=True)
    try:
        fid, end = published(store_path)
        garbage = GARBAGE[kind]()
        path = os.path.join(store_path, data_name(fid))
        assert clean_past_tail(store_path) and logical_end(path) == end
        # A writer announced its write, appended these bytes and died before publishing.
        set_intent(store_path, end + len(garbage))
        append(path, garbage, keep_reserved=True)
        ghosts = [b"ghost", b"ghost0", b"ghost1", b"ghost2"]
        for db in (reader, writer):
            assert all(db.get(g) is None for g in ghosts)
            assert len(db) == 10
        with DB(store_path, read_only=True) as fresh:
            assert all(fresh.get(g) is None for g in ghosts)
            assert len(fresh) == 10
        writer.put(b"next", b"write")
        assert published(store_path) == (fid, end + len(record.encode(record.PUT, b"next", b"write")))
        assert clean_past_tail(store_path)
        for db in (reader, writer):
            assert all(db.get(g) is None for g in ghosts)
            assert db.get(b"next") == b"write"
            assert len(db) == 11
    finally:
        writer.close()
        reader.close()
    with DB(store_path) as db:
        assert sorted(db.keys()) == sorted([b"k%d" % i for i in range(10)] + [b"next"])
    report = check(store_path)
    assert report.ok and report.notes == []


def test_complete_record_of_a_dead_writer_is_kept_consistently(store_path):
    """A writer died after appending a whole record but before publishing it: every process agrees."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
    reader = DB(store_path, read_only=True)
    try:
        fid, end = published(store_path)
        rec = record.encode(record.PUT, b"unpublished", b"x")
        set_intent(store_path, end + len(rec))
        append(os.path.join(store_path, data_name(fid)), rec, keep_reserved=True)
        assert reader.get(b"unpublished") is None  # not published yet: not visible
        with DB(store_path) as writer:
            writer.put(b"k2", b"v2")
            kept = writer.get(b"unpublished")
            assert kept in (None, b"x")
        assert reader.get(b"unpublished") == kept
        with DB(store_path, read_only=True) as fresh:
            assert fresh.get(b"unpublished") == kept
            assert fresh[b"k2"] == b"v2"
    finally:
        reader.close()


# ------------------------------------------------------------------ the STATE file


def test_deleting_the_state_file_between_runs_is_harmless(store_path):
    expected = {}
    with DB(store_path, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%d" % i, b"v" * 150)
            expected[b"k%d" % i] = b"v" * 150
        with db.batch() as b:
            b.put(b"batched", b"1")
            b.delete(b"k0")
        expected[b"batched"] = b"1"
        del expected[b"k0"]
    os.unlink(os.path.join(store_path, STATE_FILE))
    with DB(store_path, read_only=True) as ro:
        assert dict(ro.items()) == expected
    with DB(store_path, max_file_size=4096) as db:
        assert dict(db.items()) == expected
        db.put(b"new", b"1")
        expected[b"new"] = b"1"
    os.unlink(os.path.join(store_path, STATE_FILE))
    append(data_files(store_path)[-1], b"torn tail")
    with DB(store_path, max_file_size=4096) as db:
        assert dict(db.items()) == expected
        db.put(b"newer", b"2")
        expected[b"newer"] = b"2"
    with DB(store_path) as db:
        assert dict(db.items()) == expected
    assert check(store_path).ok


def test_reader_opened_without_state_file_sees_later_writes(store_path):
    with DB(store_path) as db:
        db.put(b"a", b"1")
    os.unlink(os.path.join(store_path, STATE_FILE))
    with DB(store_path, read_only=True) as reader:
        assert reader.get(b"a") == b"1"
        with DB(store_path) as writer:
            writer.put(b"b", b"2")
        assert reader.get(b"b") == b"2"


def test_read_only_open_of_a_copied_store_without_runtime_files(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    # A store copied file by file (or shipped read-only) may lack the LOCK and STATE runtime files.
    os.unlink(os.path.join(store_path, "LOCK"))
    os.unlink(os.path.join(store_path, STATE_FILE))
    with DB(store_path, read_only=True) as ro:
        assert ro[b"k"] == b"v"
    # At most the empty runtime files were added; the data is untouched.
    assert set(os.listdir(store_path)) - {"LOCK", STATE_FILE} == {"0000000001-000.data", "KVB_FORMAT"}


def test_sync_always_survives_a_stale_state_page(store_path):
    with DB(store_path, sync="always") as db:
        db.put(b"a", b"1")
    with open(os.path.join(store_path, STATE_FILE), "rb") as f:
        old_state = f.read()
    with DB(store_path, sync="always") as db:
        for i in range(10):
            db.put(b"b%d" % i, b"fsynced")
    # Power loss: the data file was fsynced before each put returned; STATE (never fsynced) was not.
    with open(os.path.join(store_path, STATE_FILE), "wb") as f:
        f.write(old_state)
    with DB(store_path, sync="always") as db:
        db.put(b"c", b"after")
    with DB(store_path) as db:
        assert dict(db.items()) == {b"a": b"1", b"c": b"after", **{b"b%d" % i: b"fsynced" for i in range(10)}}


# ------------------------------------------------------------------ uncommitted batches


def _batch_records(n: int, prefix: bytes = b"uncommitted") -> bytes:
    return b"".join(
        record.encode(record.PUT, prefix + b"%d" % j, b"value", flags=record.FLAG_BATCH) for j in range(n)
    )


def test_uncommitted_batch_at_the_tail_is_invisible(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with db.batch() as b:
            b.put(b"committed", b"1")
    path = data_files(store_path)[-1]
    append(path, _batch_records(4))
    os.unlink(os.path.join(store_path, STATE_FILE))  # replay the whole file from scratch
    with DB(store_path, read_only=True) as ro:
        assert dict(ro.items()) == {b"k": b"v", b"committed": b"1"}
    with DB(store_path) as db:
        assert dict(db.items()) == {b"k": b"v", b"committed": b"1"}
        db.put(b"after", b"1")
    with DB(store_path) as db:
        assert dict(db.items()) == {b"k": b"v", b"committed": b"1", b"after": b"1"}
    assert check(store_path).ok


def test_uncommitted_batch_in_the_middle_of_the_log_is_skipped(store_path):
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"k", b"v")
    path = data_files(store_path)[-1]
    # An unfinished batch, then plain records and a whole batch written after it.
    append(path, _batch_records(3) + record.encode(record.PUT, b"later", b"L"))
    append(
        path,
        record.encode(record.PUT, b"good", b"G", flags=record.FLAG_BATCH)
        + record.encode(record.DELETE, b"k", b"", flags=record.FLAG_BATCH)
        + record.encode_commit(2),
    )
    os.unlink(os.path.join(store_path, STATE_FILE))
    expected = {b"later": b"L", b"good": b"G"}
    with DB(store_path, read_only=True) as ro:
        assert dict(ro.items()) == expected
    with DB(store_path, max_file_size=4096) as db:
        assert dict(db.items()) == expected
        for i in range(20):
            db.put(b"fill%d" % i, b"f" * 300)  # the file with the hand-made records is closed now
    assert len(list_data_files(store_path)) > 1
    with DB(store_path) as db:
        assert {k: v for k, v in db.items() if not k.startswith(b"fill")} == expected


def test_put_behind_other_writers_appends_at_the_tail_and_replays_in_log_order(store_path):
    """A put does not index other processes' records first; its own is indexed after theirs."""
    a = DB(store_path, max_file_size=4096)
    b = DB(store_path, max_file_size=4096)
    try:
        a.put(b"k", b"a1")
        assert b.get(b"k") == b"a1"  # b is caught up
        a.put(b"k", b"a2")
        # a writes again after b's catch-up outside the lock, before b takes the lock.
        acquire = b._lock.acquire

        def acquire_after_a_writes() -> None:
            a.put(b"other", b"x")
            acquire()

        b._lock.acquire = acquire_after_a_writes  # type: ignore[method-assign]
        b.put(b"k", b"b1")
        b._lock.acquire = acquire  # type: ignore[method-assign]
        fid, end = published(store_path)
        assert b._seen != (fid[0] << 40) | end  # appended without replaying a's record under the lock
        assert scan_file(os.path.join(store_path, data_name(fid)))[-2:][0][1] == b"other"
        for db in (b, a):
            assert db.get(b"k") == b"b1" and db.get(b"other") == b"x" and len(db) == 2
        a.put(b"x", b"y")
        b.put(b"t", b"v", ttl=100)
        assert 90 < b.ttl(b"t") <= 100 and 90 < a.ttl(b"t") <= 100
        # Near a full file the ordinary path runs: it rotates, and both sides follow.
        for i in range(200):
            (a if i % 3 else b).put(b"r%d" % (i % 7), b"%d" % i * 10)
        assert len(list_data_files(store_path)) > 1
        expected = {b"r%d" % (i % 7): b"%d" % i * 10 for i in range(200)}
        for db in (a, b):
            assert {k: db[k] for k in expected} == expected
        assert a.stats()["live_bytes"] == b.stats()["live_bytes"]
    finally:
        a.close()
        b.close()
    with DB(store_path, read_only=True) as fresh:
        assert fresh[b"k"] == b"b1" and fresh[b"r6"] == expected[b"r6"] and len(fresh) == 11
    assert check(store_path).ok


def test_store_created_by_another_process_between_two_looks(store_path, monkeypatch):
    """A process that finds no marker, then sees the one another process just wrote, opens the store."""
    import kv_backend.files as files

    os.makedirs(store_path)
    real_listdir = os.listdir

    def listdir_after_another_process_created_the_store(path):
        monkeypatch.setattr(files.os, "listdir", real_listdir)
        with DB(store_path) as other:  # the other process wins the race to create the store
            other.put(b"from-other", b"1")
        return real_listdir(path)

    monkeypatch.setattr(files.os, "listdir", listdir_after_another_process_created_the_store)
    with DB(store_path) as db:
        assert db[b"from-other"] == b"1"
        db.put(b"mine", b"2")
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == {b"from-other": b"1", b"mine": b"2"}
