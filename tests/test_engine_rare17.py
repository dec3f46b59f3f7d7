"""The last silent-loss case of the engine's readers, and a count they disagreed on.

A data file the STATE page names before a newer file (a rotation that died after creating it), cut
exactly at a record boundary below its published end: the records it lost were acknowledged, and
every reader read the file as a sound one that never held them. Recovery now fills it with zeros up
to its published end and every reader reads it so before that (docs/file-format.md, "The file before
the active one"). And a newest merge output without a page, read through its hint file by a writer's
open, was replayed by a read-only one, which counted a damaged record the other did not. A page that
lags newer files (which hold records, or two rotations that died) was read four ways."""

from __future__ import annotations

import errno
import os
import sys

import pytest
import test_format_reader11 as reader
from helpers import data_files
from test_engine_agree15 import _flip_last_record
from test_engine_rare16 import _damaged, _merged_store
from test_engine_review13 import _offsets, _salvaged_matches_db
from test_rotation_damage15 import _reader_view, _view

from kv_backend import DB, BackupError, CorruptionError, StorageError
from kv_backend import record as rec
from kv_backend.backup import restore
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.salvage import salvage
from kv_backend.state import published_tail


def _store_cut_below_its_published_end(store: str, newest: str, cut: str) -> tuple[str, int, int]:
    """A store whose STATE page names a file that a newer one follows (``newest``: its header alone, or
    a record too), cut below its published end (``cut``: at the record boundary before the last
    record, between two records of a batch, inside the last record); (its path, the offset of the
    damage every reader reports, the published end)."""
    with DB(store) as db:
        db.put(b"a", b"old")
        db.put(b"b", b"x" * 50)
        with db.batch() as b:
            for i in range(3):
                b.put(b"w%d" % i, b"batch" * 4)
        db.put(b"a", b"new" * 20)
        db.put(b"c", b"only here")
    major, end = published_tail(store)
    path = os.path.join(store, data_name((major, 0)))
    later = rec.encode(rec.PUT, b"z", b"after") if newest == "records" else b""
    with open(os.path.join(store, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES + later)
    offsets = _offsets(path)
    at = {"boundary": offsets[b"c"], "batch": offsets[b"w2"], "record": offsets[b"c"]}[cut]
    os.truncate(path, at + 30 if cut == "record" else at)
    assert os.path.getsize(path) < end
    return path, at, end


@pytest.mark.parametrize("cut", ["boundary", "batch", "record"])
@pytest.mark.parametrize("newest", ["header", "records"])
def test_a_file_cut_below_its_published_end_before_a_newer_file_is_damage_for_every_reader(
    store_path, tmp_path, newest, cut
):
    """The page says its records were published up to its end (a rotation that died had created the
    next file, or a power failure kept the next file's records and not the page): cut at a record
    boundary, replay, kvb check, salvage, a backup and the format reader all read a sound file, and
    the records it lost (``c``, written only there; ``a``'s newest value) were gone with nobody saying
    so. Every reader now reads it as recovery leaves it, filled with zeros up to its published end:
    one damaged region where the loss starts, and merge refuses the store."""
    path, at, end = _store_cut_below_its_published_end(store_path, newest, cut)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(path, at)]
    view, corrupt = _view(store_path, read_only=True)
    assert corrupt == 1 and view.get(b"c", "damaged") == "damaged"  # (cut inside its value: damaged)
    assert _reader_view(store_path) == view
    if cut == "batch":  # (its COMMIT was published with it: the batch applies, by rule 3)
        assert view[b"w0"] == view[b"w1"] == b"batch" * 4 and b"w2" not in view
    report = salvage(store_path, str(tmp_path / "copy"))
    assert [(r.path, r.offset) for r in report.regions] == [(path, at)]
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 1
    with pytest.raises(BackupError, match="damaged"):
        restore(url, str(tmp_path / "restored"))
    assert _view(store_path, read_only=False) == (view, 1)
    assert os.path.getsize(path) == end  # (filled, so that the loss stays reported)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(path, at)]
    reader.assert_same(store_path)
    with DB(store_path) as db:
        if cut == "record":
            # (Cut inside its last record, whose lengths the published end confirms: a damaged record
            # merge keeps as it is, and says so, as any other whose lengths are sound.)
            assert db.merge(wait=True).corrupt_kept == 1
        else:
            with pytest.raises(CorruptionError):
                db.merge(wait=True)
    assert _view(store_path, read_only=True) == (view, 1)
    assert _reader_view(store_path) == view


def test_a_file_cut_inside_its_header_below_its_published_end_is_left_as_it_is(store_path):
    """Cut down to inside its header, the file lost all its records: a lost file every reader reports
    as such (test_engine_rare16), which recovery does not fill."""
    path, _, _ = _store_cut_below_its_published_end(store_path, "header", "boundary")
    os.truncate(path, 9)
    problems = [(p.path, p.offset) for p in check(store_path).problems]
    assert problems == [(path, 0)]
    assert _view(store_path, read_only=False)[1] == 1
    assert os.path.getsize(path) == 9 and [(p.path, p.offset) for p in check(store_path).problems] == problems


@pytest.mark.parametrize("newest", ["none", "part-header"])
def test_the_active_file_cut_below_its_published_end_is_not_filled(store_path, newest):
    """Where no newer file follows it (or only one shorter than a header, which holds nothing), the file
    the page names is the active one, whose end is read from its bytes when it lost some (a store
    copied while written: its STATE page copied later than the file): recovery does not fill it."""
    path, _, end = _store_cut_below_its_published_end(store_path, "header", "boundary")
    nxt = data_files(store_path)[-1]
    if newest == "none":
        os.unlink(nxt)
    else:
        os.truncate(nxt, 5)
    size = os.path.getsize(path)
    assert check(store_path).ok
    view = _view(store_path, read_only=True)
    assert view[1] == 0 and _reader_view(store_path) == view[0]
    assert _view(store_path, read_only=False) == view
    assert os.path.getsize(path) == size < end


@pytest.mark.parametrize("where", ["last", "middle"])
def test_a_newest_merge_output_with_its_hint_file_counts_alike_for_every_open(store_path, where):
    """Without a STATE page, a merge output that is the newest data file (every file closed) holding a
    damaged record, with its hint file: a writer's open reads it through the hint file (recovery has
    created the active file), which finds no damage until the record is read, but a read-only open
    replayed it as the active file and counted the record in corrupt_records (1, against 0). Both
    read it through its hint file now; the key raises CorruptionError either way, and kvb check
    reports the record."""
    merged = _merged_store(store_path, after=False)
    for p in data_files(store_path):
        if p != merged:
            os.unlink(p)
    os.unlink(os.path.join(store_path, "STATE"))
    offsets = _offsets(merged)
    if where == "last":
        at = _flip_last_record(merged)
    else:
        at = sorted(offsets.values())[3]
        with open(merged, "r+b") as f:
            f.seek(at + 30)
            f.write(b"\xff")
    key = {v: k for k, v in offsets.items()}[at]
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(merged, at)]
    view, corrupt = _view(store_path, read_only=True)
    assert view[key] == "damaged" and corrupt == 1  # (counted once a read met it)
    assert _reader_view(store_path) == view
    assert _view(store_path, read_only=False) == (view, 1)
    assert _view(store_path, read_only=True) == (view, 1)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(merged, at)]


def _bad_length(key: bytes, value: bytes) -> bytes:
    """A record whose key length is damaged (above 65536): its lengths say nothing of where the next
    record starts."""
    bad = bytearray(rec.encode(rec.PUT, key, value))
    bad[6:10] = (70000).to_bytes(4, "little")
    return bytes(bad)


@pytest.mark.parametrize("newer", ["records", "two headers", "damaged length"])
def test_a_page_that_lags_newer_files_is_read_as_recovery_reads_it(store_path, tmp_path, newer):
    """The STATE page names a file (its reserved zeros still after its published end) that newer files
    follow: two rotations that died, or, after a power failure, records in the next file that reached
    the disk while the page that published the rotation did not. Recovery closes the named file from
    its published end on (cutting its reserved zeros) and adopts the newest, whose end it reads from
    its bytes. kvb check and salvage read the named file as a closed one, whole, so its zeros were a
    damaged region (a problem that recovery then made disappear, salvage not clean, a backup clean);
    and a read-only open read the newest file only as far as the unpublished rules go, so a damaged
    header there hid the acknowledged records after it, with nothing counted."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    major, end = published_tail(store_path)
    named = os.path.join(store_path, data_name((major, 0)))
    assert os.path.getsize(named) > end  # (reserved zeros)
    head = rec.FILE_HEADER_BYTES
    files = {
        "records": [head + rec.encode(rec.PUT, b"b", b"2")],
        "two headers": [head, head],
        "damaged length": [
            head + rec.encode(rec.PUT, b"b", b"2") + _bad_length(b"x", b"y") + rec.encode(rec.PUT, b"c", b"3")
        ],
    }[newer]
    for i, data in enumerate(files):
        with open(os.path.join(store_path, data_name((major + 1 + i, 0))), "wb") as f:
            f.write(data)
    damaged = newer == "damaged length"
    problems = [(p.path, p.offset) for p in check(store_path).problems]
    assert problems == (
        [(data_files(store_path)[-1], 16 + len(rec.encode(rec.PUT, b"b", b"2")))] if damaged else []
    )
    view = _view(store_path, read_only=True)
    assert view[1] == damaged and (b"c" in view[0]) == damaged
    assert _reader_view(store_path) == view[0]
    report = salvage(store_path, str(tmp_path / "copy"))
    assert report.clean != damaged
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == damaged
    assert _view(store_path, read_only=False) == view
    assert os.path.getsize(named) == end
    assert [(p.path, p.offset) for p in check(store_path).problems] == problems
    reader.assert_same(store_path)


@pytest.mark.parametrize("end", [0, 3, 15])
def test_a_page_publishing_an_end_inside_a_file_header_is_not_valid(store_path, tmp_path, end):
    """A damaged STATE page whose tail names the active file with a published end inside its 16-byte
    header (no writer publishes one): every reader took it as valid, so read-only opens, kvb check and
    the format reader saw none of the active file's records, a backup counted the file as damaged, and
    the next writer's tail recovery cut every record of the active file off as past the published
    end: all of them acknowledged, lost with nothing reported. Such a page is not valid: readers read
    the store as without a page, and the next writer rebuilds it from the data files."""
    with DB(store_path) as db:
        for i in range(5):
            db.put(b"k%d" % i, b"v%d" % i)
    major, real_end = published_tail(store_path)
    want = {b"k%d" % i: b"v%d" % i for i in range(5)}
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(((major << 40) | end).to_bytes(8, sys.byteorder))
    assert published_tail(store_path) is None
    assert check(store_path).ok
    assert _view(store_path, read_only=True) == (want, 0)
    assert _reader_view(store_path) == want
    assert salvage(store_path, str(tmp_path / "copy")).keys_copied == 5
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert _view(str(tmp_path / "restored"), read_only=True) == (want, 0)
    assert _view(store_path, read_only=False) == (want, 0)
    assert published_tail(store_path) == (major, real_end)
    reader.assert_same(store_path)


def test_a_page_naming_an_older_file_with_an_end_inside_one_of_its_records_is_damaged(store_path, tmp_path):
    """A damaged STATE page whose tail names a closed data file older than the active one (damage to
    its major id), with a published end inside a sound record of that file, which no writer
    publishes: recovery took it for a rotation that died and cut that file at that end, losing the
    record there and every one after it in that closed file (all acknowledged), kvb check saying
    beforehand only that the next writer would cut them. Every reader, recovery first, now reads the
    store as without a page; kvb check notes the damaged page, and the next writer rebuilds it."""
    _several = [(b"k%02d" % i, b"v%02d" % i * 60) for i in range(40)]
    with DB(store_path, max_file_size=4096) as db:
        for key, value in _several:
            db.put(key, value)
    want = dict(_several)
    *_, older, _before, active = data_files(store_path)
    major, end = published_tail(store_path)
    sizes = {p: os.path.getsize(p) for p in data_files(store_path)}
    inside = sorted(_offsets(older).values())[-2] + 30
    older_major = int(os.path.basename(older)[:10])
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(((older_major << 40) | inside).to_bytes(8, sys.byteorder))
    report = check(store_path)
    assert report.ok and any("damaged page" in n for n in report.notes)
    assert _view(store_path, read_only=True) == (want, 0)
    assert _reader_view(store_path) == want
    assert salvage(store_path, str(tmp_path / "copy")).clean
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert _view(str(tmp_path / "restored"), read_only=True) == (want, 0)
    assert _view(store_path, read_only=False) == (want, 0)
    assert {p: os.path.getsize(p) for p in data_files(store_path) if p != active} == {
        p: s for p, s in sizes.items() if p != active
    }
    assert published_tail(store_path) == (major, end)
    assert check(store_path).ok and not check(store_path).notes
    reader.assert_same(store_path)


@pytest.mark.parametrize("middle", [b"", rec.FILE_HEADER_BYTES[:7]], ids=["empty", "part"])
def test_a_short_file_between_the_page_s_file_and_the_newest_holds_nothing(store_path, tmp_path, middle):
    """Two rotations that died after the file the STATE page names (a power failure kept them and not
    the page): the first new file shorter than a header, the second holding its header. Recovery
    adopted the newest and left the short one, which from then on read as a closed file that lost its
    records: kvb check reported it, merge refused the store, for a file that never held anything (and
    a backup, which leaves it out, counted nothing). Every reader takes it as holding nothing, and
    recovery removes it."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    major, _ = published_tail(store_path)
    short = os.path.join(store_path, data_name((major + 1, 0)))
    with open(short, "wb") as f:
        f.write(middle)
    with open(os.path.join(store_path, data_name((major + 2, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    report = check(store_path)
    assert report.ok and any(short in n for n in report.notes)
    assert _view(store_path, read_only=True) == ({b"a": b"1"}, 0)
    assert salvage(store_path, str(tmp_path / "copy")).clean
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 0
    with DB(store_path) as db:
        assert dict(db.items()) == {b"a": b"1"} and db.stats()["corrupt_records"] == 0
        db.put(b"b", b"2")
        db.merge(wait=True)
    assert not os.path.exists(short)
    assert check(store_path).ok and not check(store_path).notes
    reader.assert_same(store_path)


@pytest.mark.parametrize("lower", [1, 1 << 10])
def test_a_page_whose_end_lies_inside_a_record_of_the_active_file_is_damaged(store_path, tmp_path, lower):
    """A damaged STATE page whose published end (lowered by damage) lies inside a sound record of the
    active file, past the start of which no writer publishes: the next writer's recovery, finding no
    record start there, cut the file at that end, losing that record and every one after it (all
    acknowledged; reported as one damaged record, the loss after it unsaid). Every reader now takes
    such a page for damaged and reads the store as without one, and the writer rebuilds it."""
    with DB(store_path) as db:
        for i in range(40):
            db.put(b"k%02d" % i, b"\xee" * 60)
    major, end = published_tail(store_path)
    active = data_files(store_path)[-1]
    want = {b"k%02d" % i: b"\xee" * 60 for i in range(40)}
    at = max(o for o in _offsets(active).values() if o + 40 <= end - lower)
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(((major << 40) | (at + 30)).to_bytes(8, sys.byteorder))
    report = check(store_path)
    assert report.ok and any("damaged page" in n for n in report.notes)
    assert _view(store_path, read_only=True) == (want, 0)
    assert _reader_view(store_path) == want
    assert salvage(store_path, str(tmp_path / "copy")).clean
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 0
    assert _view(store_path, read_only=False) == (want, 0)
    assert published_tail(store_path) == (major, end)
    assert check(store_path).ok and not check(store_path).notes
    reader.assert_same(store_path)


def test_a_full_disk_while_recovery_fills_a_file_raises_storage_error(store_path, monkeypatch):
    """Where filling the file takes blocks the disk no longer has (a filesystem without holes), the
    writer's open raises StorageError saying the disk is full, and leaves the file as it was: a
    read-only open still reads the store, the loss still reported."""
    path, at, _ = _store_cut_below_its_published_end(store_path, "header", "boundary")
    size = os.path.getsize(path)
    real = os.ftruncate

    def full(fd: int, length: int) -> None:
        if length > os.fstat(fd).st_size:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, length)

    monkeypatch.setattr(os, "ftruncate", full)
    with pytest.raises(StorageError, match="disk is full"):
        DB(store_path)
    monkeypatch.setattr(os, "ftruncate", real)
    assert os.path.getsize(path) == size
    assert _view(store_path, read_only=True)[1] == 1
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(path, at)]


def test_a_backup_reads_a_page_naming_a_file_that_is_gone_as_kvb_check_does(store_path, tmp_path):
    """The STATE page names a file that is gone (older than the active one: damage to its major id)
    and a rotation that died left a newest file shorter than a header: a backup left the short file
    out and took every file after the gone one for one that may end in an unfinished write, where kvb
    check and replay read it otherwise. Such a page is damaged (read as without one, see
    test_dead_rotation_page19): the active file is the dead rotation's predecessor, which recovery
    closes, and its reserved zeros are no damage, for a backup as for kvb check and replay."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    major, end = published_tail(store_path)
    active = os.path.join(store_path, data_name((major, 0)))
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb"):
        pass
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write((((major - 1) << 40) | end).to_bytes(8, sys.byteorder))
    assert check(store_path).problems == []
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 0
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 0
    assert _view(store_path, read_only=False) == ({b"a": b"1"}, 0)
    assert os.path.getsize(active) == end
    assert check(store_path).problems == []


def test_kvb_check_reports_a_hint_entry_that_points_to_no_record_of_its_key(store_path, tmp_path):
    """A hint file that checks out (its CRC matching) whose entry for a key points elsewhere than that
    key's record: the engine reads the merged file through it, and reading the key raises
    CorruptionError; salvage reported a damaged region there; kvb check found nothing wrong (it
    checked the data file's records and the hint file's own checksum only). It reports the entry,
    and removing the hint file as it says makes the store whole."""
    import struct

    merged = _merged_store(store_path, after=False)
    hint = merged[: -len(".data")] + ".hint"
    with open(hint, "rb") as f:
        buf = bytearray(f.read())
    count = struct.unpack_from("<I", buf, 12)[0]
    at = 40 + 4 * count + 8 * 3  # (the location of the fourth entry)
    loc = struct.unpack_from("<Q", buf, at)[0]
    moved = (loc >> 32) + 1
    struct.pack_into("<Q", buf, at, (moved << 32) | (loc & 0xFFFFFFFF))
    struct.pack_into("<I", buf, 24, rec.crc32(bytes(buf[40:])))
    with open(hint, "wb") as f:
        f.write(buf)
    key = reader._hint_entries(bytes(buf), os.path.getsize(merged))[3][0]
    problems = check(store_path).problems
    assert [(p.path, p.offset) for p in problems] == [(merged, moved)] and key.decode() in problems[0].what
    assert [(r.path, r.offset) for r in salvage(store_path, str(tmp_path / "copy")).regions] == [
        (merged, moved)
    ]
    with DB(store_path, read_only=True) as db, pytest.raises(CorruptionError):
        db.get(key)
    os.unlink(hint)
    assert check(store_path).ok
    with DB(store_path, read_only=True) as db:
        assert db.get(key) is not None


def test_a_merged_file_cut_at_a_record_boundary_below_its_hint_file_s_size_is_damage(store_path, tmp_path):
    """A merged data file (it holds the only copy of the values it kept) cut exactly at a record
    boundary, its hint file intact: the hint file no longer matched the file's size, so every reader
    replayed the file as a sound one, and the keys whose records were cut off were gone with nothing
    reported (kvb check noted a stale hint file). The hint file, which checks out for the size it
    gives, says the file lost bytes: every reader reads it as if zeros followed them up to that size,
    recovery fills it so, and through the hint file each key lost raises CorruptionError."""
    merged = _merged_store(store_path)
    with DB(store_path, read_only=True) as db:
        before = dict(db.items())
    size = os.path.getsize(merged)
    offsets = _offsets(merged)
    cut = sorted(offsets.values())[-3]
    lost = {k for k, o in offsets.items() if o >= cut}
    os.truncate(merged, cut)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(merged, cut)]
    view, corrupt = _view(store_path, read_only=True)
    assert {k for k, v in view.items() if v == "damaged"} == lost and corrupt == 1
    assert {k: v for k, v in view.items() if k not in lost} == {
        k: v for k, v in before.items() if k not in lost
    }
    assert _reader_view(store_path) == view
    report = salvage(store_path, str(tmp_path / "copy"))
    assert set(report.damaged_keys) == lost
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 1
    with pytest.raises(BackupError, match="damaged"):
        restore(url, str(tmp_path / "restored"))
    assert _view(store_path, read_only=False) == (view, 1)
    assert os.path.getsize(merged) == size
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(merged, cut)]
    assert _reader_view(store_path) == view  # (through the hint file: a replay cannot name the keys)


def test_a_hint_file_whose_size_field_alone_is_larger_fills_nothing(store_path):
    """A hint file whose header gives a larger data size than its data file's (its header is outside its
    checksum) while every record it points to lies inside the data file: the hint file is damaged,
    not the data file, which is read as it is (the hint file ignored, as before)."""
    import struct

    merged = _merged_store(store_path)
    with DB(store_path, read_only=True) as db:
        before = dict(db.items())
    hint = merged[: -len(".data")] + ".hint"
    with open(hint, "r+b") as f:
        f.seek(16)
        f.write(struct.pack("<Q", os.path.getsize(merged) + 100))
    size = os.path.getsize(merged)
    report = check(store_path)
    assert report.ok and len(report.notes) == 1
    assert _view(store_path, read_only=False) == (before, 0)
    assert os.path.getsize(merged) == size


@pytest.mark.parametrize("damaged", [False, True])
def test_a_backup_reads_files_after_the_page_s_file_as_kvb_check_does(store_path, tmp_path, damaged):
    """The STATE page names a file that a file holding records follows (a power failure kept it and not
    the page), and then a newest file holding part of its header. Recovery closes the named file, keeps
    the file between closed (a damaged record at its end is damage), and gives the newest its header.
    A backup took the file between for one that may end in an unfinished write (a note, not counted)
    and the part-header file for a closed file that lost its records (counted)."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    major, _ = published_tail(store_path)
    between = os.path.join(store_path, data_name((major + 1, 0)))
    with open(between, "wb") as f:
        last = _damaged(b"c", b"3") if damaged else rec.encode(rec.PUT, b"c", b"3")
        f.write(rec.FILE_HEADER_BYTES + rec.encode(rec.PUT, b"b", b"2") + last)
    with open(os.path.join(store_path, data_name((major + 2, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES[:7])
    at = rec.FILE_HEADER_SIZE + len(rec.encode(rec.PUT, b"b", b"2"))
    problems = [(p.path, p.offset) for p in check(store_path).problems]
    assert problems == ([(between, at)] if damaged else [])
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == damaged
    want = {b"a": b"1", b"b": b"2", b"c": "damaged" if damaged else b"3"}
    assert _view(store_path, read_only=False) == (want, damaged)
    assert [(p.path, p.offset) for p in check(store_path).problems] == problems


def test_a_page_end_inside_a_commit_record_of_an_older_file_is_damaged(store_path):
    """As above, the published end inside the COMMIT that ends a batch of an older file, where the bytes
    are mostly zeros (its flags, key length, expiry) and could pass for reserved space, and where the
    unpublished rules end the data before the batch: the page is damaged all the same, and nothing of
    that file is cut."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(30):
            with db.batch() as b:
                b.put(b"k%02d" % i, b"v" * 90)
                b.put(b"j%02d" % i, b"w" * 90)
    with DB(store_path, read_only=True) as db:
        want = dict(db.items())
    older = data_files(store_path)[0]
    sizes = {p: os.path.getsize(p) for p in data_files(store_path)[:-1]}
    commit = next(r[0] for r in reader.records(older) if r[1] == rec.COMMIT)
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(((int(os.path.basename(older)[:10]) << 40) | (commit + 7)).to_bytes(8, sys.byteorder))
    report = check(store_path)
    assert report.ok and any("damaged page" in n for n in report.notes)
    assert _view(store_path, read_only=True) == (want, 0)
    assert _view(store_path, read_only=False) == (want, 0)
    assert {p: os.path.getsize(p) for p in data_files(store_path)[:-1]} == sizes
    reader.assert_same(store_path)


def test_opens_and_checks_beside_a_live_writer_never_take_its_page_for_a_damaged_one(store_path):
    """The bytes at the published end of a live store are what a writer is writing there (a record's
    first bytes, the rest of its header still zeros while the copy runs) or reserved zeros: read-only
    opens and kvb check next to a writer appending records and rotating (4 KiB files), killed at the
    end, never take the page for a damaged one (which would make them read the store as without a
    page), and a writer's open after the kill keeps every record the read-only opens saw."""
    import signal
    import time

    from helpers import exit_code, fork_child

    with DB(store_path, max_file_size=4096) as db:
        db.put(b"start", b"0")

    def writer() -> None:
        with DB(store_path, max_file_size=4096) as db:
            # (Values of 150 bytes, ~24 to a file, at most 40,000: with 1,500-byte values a fast
            # machine made ~10,000 files, and every read-only open ran out of descriptors.)
            for i in range(40_000):
                db.put(b"k%03d" % (i % 200), os.urandom(150))
            time.sleep(60)  # (killed before)

    pid = fork_child(writer)
    try:
        seen: set[bytes] = set()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            report = check(store_path)
            assert not any("damaged page" in n for n in report.notes), report.notes
            with DB(store_path, read_only=True) as db:
                assert db.stats()["corrupt_records"] == 0
                seen |= set(db.keys())
    finally:
        os.kill(pid, signal.SIGKILL)
        assert exit_code(pid) == -signal.SIGKILL
    assert len(seen) > 1
    with DB(store_path) as db:
        assert seen <= set(db.keys()) and db.stats()["corrupt_records"] == 0
    assert check(store_path).ok
