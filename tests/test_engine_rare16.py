"""The rare crash-plus-damage cases of the engine's readers: a closed data file cut inside its header,
the file before a dead rotation and the next one both shorter than a header without a STATE page, a
data file whose version field reads 0, damage past the end of a STATE page that lags the records
after it; and what a fuzzing of such cases found besides (a page naming a file that is gone, a merge
output as the newest file or before a part-header file, batches and COMMITs rule 2 reads in published
data). Every reader (replay read-only and read-write, kvb check, salvage, a backup and its restore,
merge, the format reader of test_format_reader11) follows one rule (docs/file-format.md)."""

from __future__ import annotations

import logging
import os

import pytest
import test_format_reader11 as reader
from helpers import data_files
from test_engine_review13 import _offsets, _patch, _salvaged_matches_db
from test_rotation_damage15 import _reader_view, _view

from kv_backend import DB, BackupError, CorruptionError
from kv_backend import record as rec
from kv_backend.backup import restore
from kv_backend.check import LOST_FILE, check
from kv_backend.files import data_name
from kv_backend.salvage import salvage
from kv_backend.state import published_tail


def _several_files(store: str) -> None:
    with DB(store, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%02d" % i, b"v%02d" % i * 60)


@pytest.mark.parametrize("which", ["named before a dead rotation", "older"])
def test_a_closed_file_cut_inside_its_header_is_reported_by_every_reader(store_path, tmp_path, caplog, which):
    """A closed data file cut inside its header lost the records it held (where the STATE page names
    it, before a dead rotation's new file holding its whole header, the page says they were
    published up to its end). kvb check, salvage and a backup reported it, but replay counted
    nothing (no corrupt_records, no warning), and merge deleted the file: its keys read their older
    values, the loss silent for every user of the store. Replay now reports it as a damaged region,
    and merge refuses the store while it is there."""
    _several_files(store_path)
    major, _ = published_tail(store_path)
    if which == "older":
        cut = data_files(store_path)[0]
    else:
        with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
            f.write(rec.FILE_HEADER_BYTES)
        cut = os.path.join(store_path, data_name((major, 0)))
    lost = {k for k, _ in reader.read_store(store_path).items()}
    os.truncate(cut, 5)
    lost -= set(reader.read_store(store_path))
    assert lost  # (keys written only there: they read as absent now)
    assert [(p.path, p.offset, p.what) for p in check(store_path).problems] == [(cut, 0, LOST_FILE)]
    with caplog.at_level(logging.WARNING, logger="kv_backend.db"):
        want, corrupt = _view(store_path, read_only=True)
    assert corrupt == 1 and "shorter than its header" in caplog.text
    assert not lost & set(want)
    report = salvage(store_path, str(tmp_path / "copy"))
    assert not report.clean and [r.path for r in report.regions] == [cut]
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 1
    with pytest.raises(BackupError, match="is damaged"):
        restore(url, str(tmp_path / "restored"))
    assert _view(store_path, read_only=False) == (want, 1)  # (recovery leaves it as it is)
    assert os.path.getsize(cut) == 5
    with DB(store_path) as db, pytest.raises(CorruptionError, match="shorter than its header"):
        db.merge(wait=True)
    assert os.path.getsize(cut) == 5
    assert [p.path for p in check(store_path).problems] == [cut]
    reader.assert_same(store_path)


@pytest.mark.parametrize("left", [b"", b"KVB", b"K\xffB\x00D"], ids=["empty", "part", "damaged"])
@pytest.mark.parametrize("head", [b"", rec.FILE_HEADER_BYTES[:5]], ids=["empty", "part-header"])
def test_without_a_page_a_file_before_a_part_header_file_both_cut_inside_their_headers(
    store_path, tmp_path, left, head
):
    """Without a STATE page, the file before a dead rotation's new file and that file both shorter
    than a header: the first is the active file (a rotation that died did not close it), so both
    hold nothing, whatever their bytes, and recovery gives both their header. Replay, kvb check, a
    backup and the format reader agreed; salvage reported the first as a damaged region (not a
    clean copy)."""
    _several_files(store_path)
    major, _ = published_tail(store_path)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(head)
    with open(os.path.join(store_path, data_name((major, 0))), "wb") as f:
        f.write(left)
    os.unlink(os.path.join(store_path, "STATE"))
    assert check(store_path).ok and len(check(store_path).notes) == 2
    want = _view(store_path, read_only=True)
    assert want[1] == 0 and len(want[0]) > 20
    report = salvage(store_path, str(tmp_path / "copy"))
    assert report.clean, str(report)
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 0
    reader.assert_same(store_path)
    assert _view(store_path, read_only=False) == want
    assert check(store_path).ok and not check(store_path).notes


@pytest.mark.parametrize("which", ["closed", "active"])
def test_a_version_field_of_0_is_a_damaged_header_not_another_version(store_path, tmp_path, which):
    """A data file whose version field reads 0 (a zeroed block: no version writes 0) made the store
    refuse to open as one of another format version. It is a damaged header, as a damaged magic is:
    every reader reads its records (each has its own CRC) and reports the header."""
    _several_files(store_path)
    with DB(store_path, read_only=True) as db:
        want = dict(db.items())
    damaged = data_files(store_path)[0 if which == "closed" else -1]
    _patch(damaged, 8, bytes(4))
    assert _view(store_path, read_only=True) == (want, 1)  # (the damaged header, as kvb check counts it)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(damaged, 0)]
    report = salvage(store_path, str(tmp_path / "copy"))
    assert [(r.path, r.offset) for r in report.regions] == [(damaged, 0)]
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == want
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    reader.assert_same(store_path)
    with DB(store_path) as db:
        assert dict(db.items()) == want
        db.put(b"after", b"open")
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(damaged, 0)]


def _past_the_page(store: str, data: bytes) -> tuple[str, int]:
    """Write ``data`` at the published end of the active file (the page lags it); (path, that end)."""
    major, end = published_tail(store)
    path = os.path.join(store, data_name((major, 0)))
    _patch(path, end, data)
    return path, end


def _damaged(key: bytes, value: bytes) -> bytes:
    bad = bytearray(rec.encode(rec.PUT, key, value))
    bad[-1] ^= 1
    return bytes(bad)


@pytest.mark.parametrize("damage", ["checksum", "zeros"])
@pytest.mark.parametrize("keep", [False, True], ids=["cut", "page-removed"])
def test_kvb_check_reports_records_past_a_lagging_page_that_recovery_cuts(store_path, damage, keep):
    """Past the end the STATE page publishes, a record that does not check out (or a block of zeros)
    with records that check out after it: a killed writer cannot leave that, so the page lags records
    written after its end (after a power failure they may have been acknowledged). Tail recovery cuts
    them with the damaged record, silently by design; kvb check called it an unfinished write, a note.
    It reports it as a problem now, saying the next writer cuts them and how to keep them; without
    the page, recovery keeps them and the damaged record is damage."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    first = rec.encode(rec.PUT, b"f", b"first")
    hole = _damaged(b"x", b"yyyy") if damage == "checksum" else bytes(30)
    path, end = _past_the_page(store_path, first + hole + rec.encode(rec.PUT, b"g", b"good"))
    at = end + len(first)
    (problem,) = check(store_path).problems
    assert (problem.path, problem.offset) == (path, at)
    assert "cuts them off" in problem.what and "remove the STATE file" in problem.what
    if keep:
        os.unlink(os.path.join(store_path, "STATE"))
        assert [(p.path, p.offset) for p in check(store_path).problems] == [(path, at)]
    want = {b"a": b"1", b"f": b"first"} | ({b"g": b"good"} if keep else {})
    view, corrupt = _view(store_path, read_only=False)
    assert {k: v for k, v in view.items() if v != "damaged"} == want and corrupt == keep
    assert [p.offset for p in check(store_path).problems] == ([at] if keep else [])


def test_kvb_check_still_notes_a_torn_last_write_past_the_page(store_path):
    """A torn last write past the published end (lengths sound, nothing but zeros after where they
    point): what a killed writer leaves, a note, not damage; recovery cuts it."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    torn = rec.encode(rec.PUT, b"t", b"v" * 40)
    _past_the_page(store_path, rec.encode(rec.PUT, b"f", b"first") + torn[:30] + bytes(len(torn) - 30))
    report = check(store_path)
    assert report.ok and len(report.notes) == 1 and "unfinished write" in report.notes[0]
    assert _view(store_path, read_only=False) == ({b"a": b"1", b"f": b"first"}, 0)
    assert check(store_path).ok and not check(store_path).notes


def test_a_backup_counts_a_header_naming_another_version_as_check_does(store_path, tmp_path):
    """A closed data file whose version field came to name another format version while a process
    had the store open: kvb check reports the header (the store no longer opens), and a restore of a
    backup refuses it, but the backup counted no damage (its scan checked the magic alone)."""
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%02d" % i, b"v" * 100)
        closed = data_files(store_path)[0]
        _patch(closed, 8, (3).to_bytes(4, "little"))
        assert [(p.path, p.offset) for p in check(store_path).problems] == [(closed, 8)]
        assert db.backup(url).damaged_records == 1
    with pytest.raises(BackupError, match="format version 3"):
        restore(url, str(tmp_path / "restored"))


def test_the_file_before_an_active_file_cut_inside_its_header_is_closed_for_every_reader(
    store_path, tmp_path
):
    """The STATE page names the active file, cut inside its header (it lost bytes: its end is read from
    them, nothing there), and the last record of the file before it is damaged. Recovery and replay
    take that file for closed (damage at its end is damage: its key raises CorruptionError), but kvb
    check, salvage and the format reader took it for the active file (the newest shorter than a header
    made them step back, as after a rotation that died), so that the damage was an unfinished write,
    a note, and the key read its older value."""
    from test_engine_agree15 import _flip_last_record

    _several_files(store_path)
    *_, before, active = data_files(store_path)
    at = _flip_last_record(before)
    key = {v: k for k, v in _offsets(before).items()}[at]
    os.truncate(active, 5)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(before, at)]
    view, corrupt = _view(store_path, read_only=True)
    assert view[key] == "damaged" and corrupt == 1
    assert _reader_view(store_path) == view
    report = salvage(store_path, str(tmp_path / "copy"))
    assert key in report.damaged_keys
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    assert _view(store_path, read_only=False) == (view, 1)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(before, at)]


def test_salvage_reads_a_commit_without_its_batch_in_published_data_as_replay_does(store_path, tmp_path):
    """Without a STATE page, a COMMIT of count 2 outside any batch with a record after it: the data goes
    on past it (a record that checks out follows), and in published data such a COMMIT does nothing
    (rule 2: records it closed that are gone were damaged, and count where they lie). Replay and kvb
    check found nothing wrong; salvage counted the COMMIT as a skipped record, so its copy was not
    clean."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    _past_the_page(store_path, rec.encode_commit(2) + rec.encode(rec.PUT, b"b", b"2"))
    os.unlink(os.path.join(store_path, "STATE"))
    assert check(store_path).ok
    assert _view(store_path, read_only=True) == ({b"a": b"1", b"b": b"2"}, 0)
    report = salvage(store_path, str(tmp_path / "copy"))
    assert report.clean, str(report)
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))
    reader.assert_same(store_path)


def test_salvage_ignores_a_batch_a_plain_record_interrupts_as_replay_does(store_path, tmp_path):
    """Without a STATE page, two batch records without their COMMIT, then a plain record: the data goes
    on to that record, and the format ignores a batch a record without the batch flag interrupts, as
    a whole. Replay and kvb check did; salvage counted its two records as skipped, so that its copy
    of a store kvb check finds sound was not clean."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    batch = b"".join(rec.encode(rec.PUT, b"w%d" % i, b"z", flags=rec.FLAG_BATCH) for i in range(2))
    _past_the_page(store_path, batch + rec.encode(rec.PUT, b"b", b"2"))
    os.unlink(os.path.join(store_path, "STATE"))
    assert check(store_path).ok
    assert _view(store_path, read_only=True) == ({b"a": b"1", b"b": b"2"}, 0)
    report = salvage(store_path, str(tmp_path / "copy"))
    assert report.clean, str(report)
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))
    reader.assert_same(store_path)


def _merged_store(store: str, *, after: bool = True) -> str:
    """A store whose oldest data file is a merge output with its hint file (and a write ``after`` the
    merge); return that file's path."""
    with DB(store, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%02d" % (i % 25), b"%03d" % i * 30)
        db.merge(wait=True)
        if after:
            db.put(b"after", b"merge")
    merged = next(p for p in data_files(store) if not p.endswith("-000.data"))
    assert os.path.exists(merged[: -len(".data")] + ".hint")
    return merged


@pytest.mark.parametrize(
    "header", [b"KVBD\xffTA\x00", rec.FILE_HEADER_BYTES[:8] + bytes(4)], ids=["magic", "v0"]
)
def test_salvage_reports_the_damaged_header_of_a_file_read_through_its_hint_file(
    store_path, tmp_path, header
):
    """A merged file whose header is damaged and whose hint file checks out: kvb check and a backup
    report the header; salvage, reading the file through its hint file, reported nothing (a clean
    copy of a store kvb check finds damaged)."""
    merged = _merged_store(store_path)
    _patch(merged, 0, header)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(merged, 0)]
    report = salvage(store_path, str(tmp_path / "copy"))
    assert [(r.path, r.offset) for r in report.regions] == [(merged, 0)] and not report.damaged_keys
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))


@pytest.mark.parametrize("newest", [b"", rec.FILE_HEADER_BYTES[:5]], ids=["empty", "part"])
def test_a_merge_output_before_a_part_header_file_is_closed_for_every_reader(store_path, tmp_path, newest):
    """Without a STATE page, a merge output followed only by a file shorter than a header (recovery
    was creating the active file after the merge, and died): the merge output is closed, so a record
    cut at its end is damage for replay and recovery, but kvb check took it for the active file (a
    newest file shorter than a header made it step back) and noted an unfinished write; a backup
    did not count a merge output cut inside its header, which kvb check reports."""
    merged = _merged_store(store_path, after=False)
    for p in data_files(store_path):
        if p != merged:
            os.unlink(p)
    major = int(os.path.basename(merged)[:10])
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(newest)
    os.unlink(os.path.join(store_path, "STATE"))
    os.unlink(merged[: -len(".data")] + ".hint")
    os.truncate(merged, os.path.getsize(merged) - 7)
    view, corrupt = _view(store_path, read_only=True)
    assert corrupt == 1 and "damaged" in view.values()
    problems = [(p.path, p.offset) for p in check(store_path).problems]
    assert len(problems) == 1 and problems[0][0] == merged
    assert _view(store_path, read_only=False) == (view, 1)
    assert [(p.path, p.offset) for p in check(store_path).problems] == problems
    os.truncate(merged, 9)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(merged, 0)]
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 1
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1


def test_a_newest_merge_output_is_closed_for_every_reader(store_path, tmp_path):
    """Without a STATE page, a merge output that is the newest data file (no active file yet: every
    file is closed, and tail recovery creates the active file) whose last record is cut: damage for
    recovery, and for the format reader, but read-only replay, kvb check, salvage and a backup took
    the merge output for the active file, its cut record for an unfinished write (a note; its key
    read an older value) until a writer had opened the store."""
    merged = _merged_store(store_path, after=False)
    for p in data_files(store_path):
        if p != merged:
            os.unlink(p)
    os.unlink(os.path.join(store_path, "STATE"))
    os.unlink(merged[: -len(".data")] + ".hint")
    os.truncate(merged, os.path.getsize(merged) - 7)
    (problem,) = check(store_path).problems
    assert problem.path == merged and not check(store_path).notes
    view, corrupt = _view(store_path, read_only=True)
    assert corrupt == 1 and _reader_view(store_path) == view
    report = salvage(store_path, str(tmp_path / "copy"))
    assert [(r.path, r.offset) for r in report.regions] == [(merged, problem.offset)]
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    assert _view(store_path, read_only=False) == (view, 1)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(merged, problem.offset)]


def test_a_part_header_file_after_a_closed_file_where_the_page_names_neither(store_path, tmp_path):
    """The STATE page names a file that is gone (the active file lost), and the newest file left holds
    part of its header: recovery gives it its header and keeps the file before it closed (the page
    does not name it), so a damaged last record there is damage. kvb check and salvage took that file
    for the active one (a newest file shorter than a header made them step back, whatever the page
    named): the damage was an unfinished write; and a backup counted the part-header file as a file
    that lost its records, which kvb check notes as holding nothing."""
    from test_engine_agree15 import _flip_last_record

    _several_files(store_path)
    *_, before, newest, active = data_files(store_path)
    at = _flip_last_record(before)
    os.unlink(active)
    os.truncate(newest, 2)
    assert published_tail(store_path)[0] == int(os.path.basename(newest)[:10]) + 1
    report = check(store_path)
    assert [(p.path, p.offset) for p in report.problems] == [(before, at)] and len(report.notes) == 1
    view, corrupt = _view(store_path, read_only=True)
    assert corrupt == 1 and _reader_view(store_path) == view
    assert [(r.path, r.offset) for r in salvage(store_path, str(tmp_path / "copy")).regions] == [(before, at)]
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    assert _view(store_path, read_only=False) == (view, 1)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(before, at)]


def test_where_the_page_names_a_file_that_is_gone_the_newest_end_is_read_from_its_bytes(store_path):
    """The STATE page names a file that is gone (the active file lost): the newest file left is the
    active one with no published end, its end read from its bytes (docs/file-format.md, step 2), by
    tail recovery, kvb check and the format reader, so zeros at its end are reserved space. A
    read-only open took it for a closed file, read whole: the zeros were a damaged region
    (corrupt_records 1, a warning) until a writer had opened the store."""
    _several_files(store_path)
    *_, newest, active = data_files(store_path)
    at = max(_offsets(newest).values())
    _patch(newest, at, bytes(os.path.getsize(newest) - at))
    os.unlink(active)
    assert check(store_path).ok
    view, corrupt = _view(store_path, read_only=True)
    assert corrupt == 0 and _reader_view(store_path) == view
    assert _view(store_path, read_only=False) == (view, 0)
    assert check(store_path).ok


def test_salvage_reads_a_commit_counting_fewer_records_than_its_batch_as_replay_does(store_path, tmp_path):
    """Without a STATE page, three batch records and a COMMIT of count 2 that a record follows: in
    published data the COMMIT applies the last two (rule 2), and the first is no record of the batch;
    replay and kvb check found nothing wrong, but salvage counted it as skipped (not a clean copy)."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
    batch = b"".join(rec.encode(rec.PUT, b"w%d" % i, b"z", flags=rec.FLAG_BATCH) for i in range(3))
    _past_the_page(store_path, batch + rec.encode_commit(2) + rec.encode(rec.PUT, b"b", b"2"))
    os.unlink(os.path.join(store_path, "STATE"))
    assert check(store_path).ok
    view, corrupt = _view(store_path, read_only=True)
    assert corrupt == 0 and b"w0" not in view and view[b"w2"] == b"z"
    report = salvage(store_path, str(tmp_path / "copy"))
    assert report.clean, str(report)
    _salvaged_matches_db(store_path, str(tmp_path / "copy2"))
    reader.assert_same(store_path)
