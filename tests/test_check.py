"""kv_backend.check.check and `kvb check`: what counts as damage, what is only a note."""

from __future__ import annotations

import os

import pytest
from helpers import data_files, fingerprint, run_kvb

from kv_backend import DB, record
from kv_backend.check import Problem, check
from kv_backend.cli import main
from kv_backend.errors import NotAStoreError, StoreNotFoundError
from kv_backend.files import data_name, hint_name, list_data_files
from kv_backend.hint import write_hints


def flip(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([b ^ 0x10]))


@pytest.fixture
def store(store_path):
    """A store of 3+ files: 80 puts, a batch of 3, and 5 deletes."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(80):
            db.put(b"k%02d" % i, b"v" * 100)
        with db.batch() as b:
            b.put(b"b1", b"1")
            b.put(b"b2", b"2")
            b.delete(b"k00")
        for i in range(1, 6):
            db.delete(b"k%02d" % i)
    assert len(list_data_files(store_path)) >= 3
    return store_path


def test_clean_store(store):
    before = fingerprint(store)
    report = check(store)
    assert report.ok
    assert report.problems == [] and report.notes == []
    assert report.files == len(list_data_files(store))
    assert report.records == 80 + 3 + 5  # a batch counts its records, not its COMMIT
    assert report.bytes + report.reserved == sum(os.path.getsize(p) for p in data_files(store))
    assert fingerprint(store) == before  # check only reads


def test_empty_store(store_path):
    DB(store_path).close()
    report = check(store_path)
    assert report.ok and report.records == 0 and report.files == 1


def test_torn_tail_of_the_newest_file_is_a_note(store):
    """A record cut short at the very end of the newest file (no reserved zeros after it)."""
    path = data_files(store)[-1]
    with open(path, "rb") as f:
        buf = f.read()
    size = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).end  # writers reserve zeros past it
    with open(path, "r+b") as f:
        f.seek(size)
        f.write(record.encode(record.PUT, b"torn", b"x" * 50)[:30])
        f.truncate()
    report = check(store)
    assert report.ok
    assert len(report.notes) == 1
    assert f"{path} @ {size}" in report.notes[0]
    assert "unfinished write" in report.notes[0]


def test_unfinished_write_before_reserved_zeros_is_a_note(store):
    """A writer killed half-way through its record: the rest of the reserved space is still zeros."""
    path = data_files(store)[-1]
    with open(path, "rb") as f:
        buf = f.read()
    size = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).end
    assert len(buf) > size + 100 and not buf[size:].strip(b"\0")  # the writer reserved zeros
    with open(path, "r+b") as f:
        f.seek(size)
        f.write(record.encode(record.PUT, b"torn", b"x" * 50)[:30])
    report = check(store)
    assert report.ok, report.problems
    assert len(report.notes) == 1 and f"{path} @ {size}" in report.notes[0]


def test_checksum_mismatch_anywhere_is_a_problem(store):
    for path in (data_files(store)[0], data_files(store)[-1]):
        with open(path, "rb") as f:
            buf = f.read()
        entries = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries
        offset, size = entries[1][2], entries[1][3]
        flip(path, offset + size - 1)
    report = check(store)
    assert not report.ok
    assert [(p.path, p.what) for p in report.problems] == [
        (data_files(store)[0], "checksum mismatch"),
        (data_files(store)[-1], "checksum mismatch"),
    ]


def test_truncated_closed_file_is_a_problem(store):
    path = data_files(store)[0]
    size = os.path.getsize(path)
    os.truncate(path, size - 10)
    report = check(store)
    assert not report.ok
    (problem,) = report.problems
    assert problem.path == path
    assert "truncated record" in problem.what
    assert problem.offset < size - 10


def test_damaged_file_header_is_a_problem(store):
    path = data_files(store)[1]
    flip(path, 2)
    report = check(store)
    assert report.problems == [Problem(path, 0, "missing or damaged file header")]


def _write_hint_file(path: str, data_size: int, entries) -> None:
    write_hints(
        path,
        data_size,
        [key for key, _, _, _ in entries],
        [off << 32 | size for _, off, size, _ in entries],
        [exp for _, _, _, exp in entries],
    )


def test_hint_files(store):
    """A hint file that matches its data file passes; a stale or damaged one is a note, and ignored."""
    first = list_data_files(store)[0]
    dpath = os.path.join(store, data_name(first))
    with open(dpath, "rb") as f:
        buf = f.read()
    entries = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries
    hpath = os.path.join(store, hint_name(first))
    good = [(key, off, size, exp) for rtype, key, off, size, exp in entries if rtype == record.PUT]
    _write_hint_file(hpath, len(buf), good)
    assert check(store).notes == []
    with DB(store) as db:
        assert db[b"k10"] == b"v" * 100
        assert b"k00" not in db
    # A hint file written for another size of its data file is stale; the data file is replayed.
    _write_hint_file(hpath, len(buf) + 1, [(b"k10", 16, 5, 0.0)])
    report = check(store)
    assert report.ok and len(report.notes) == 1 and hpath in report.notes[0]
    with DB(store) as db:
        assert db[b"k10"] == b"v" * 100
    # A damaged hint file (one byte of its body changed): ignored as a whole.
    _write_hint_file(hpath, len(buf), good)
    flip(hpath, os.path.getsize(hpath) - 1)
    report = check(store)
    assert report.ok and len(report.notes) == 1
    with DB(store) as db:
        assert db[b"k10"] == b"v" * 100
        assert len(db) == 80 - 6 + 2


def test_not_a_store(tmp_path):
    with pytest.raises(StoreNotFoundError):
        check(str(tmp_path / "missing"))
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(NotAStoreError):
        check(str(path))
    assert not (tmp_path / "missing").exists()


def test_kvb_check_exit_codes(store):
    ok = run_kvb("check", store)
    assert ok.returncode == 0, ok.stderr
    assert "ok: no damaged records" in ok.stdout
    assert f"{len(list_data_files(store))} files, 88 records" in ok.stdout

    path = data_files(store)[0]
    flip(path, record.FILE_HEADER_SIZE + 30)  # inside the first record's value
    bad = run_kvb("check", store)
    assert bad.returncode == 1
    assert f"DAMAGED: {path} @ {record.FILE_HEADER_SIZE}: checksum mismatch" in bad.stdout
    assert "1 damaged spot(s)" in bad.stdout


def test_kvb_check_missing_store(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("kvb: ")


def test_kvb_check_prints_notes(store, capsys):
    with open(data_files(store)[-1], "ab") as f:
        f.write(b"\x01\x02\x03")
    assert main(["check", store]) == 0
    out = capsys.readouterr().out
    assert "note: " in out and "unfinished write" in out
    assert "ok: no damaged records" in out
