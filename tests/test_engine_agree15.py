"""Engine readers agree on damaged data: the flags byte after a damaged header, a COMMIT that does
not match past the published end, and what a backup takes for an unfinished write."""

from __future__ import annotations

import os
import struct

import pytest
from helpers import data_files
from test_engine_review13 import _damage_key_length, _offsets, _patch, _salvaged_matches_db

from kv_backend import DB, BackupError
from kv_backend import record as rec
from kv_backend.backup import restore
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.salvage import salvage


def _set_flags(path: str, at: int, flags: int) -> None:
    """Give the record at ``at`` of data file ``path`` the flags byte ``flags``, its CRC matching."""
    with open(path, "rb") as f:
        f.seek(at)
        head = f.read(rec.HEADER_SIZE)
        _, _, _, klen, vlen, _ = rec.HEADER.unpack(head)
        f.seek(at + 4)
        body = bytearray(f.read(rec.HEADER_SIZE - 4 + klen + vlen))
    body[1] = flags
    _patch(path, at, rec.crc32(bytes(body)).to_bytes(4, "little") + bytes(body))


def test_reading_resumes_at_a_record_with_reserved_flag_bits_after_a_damaged_header(store_path, tmp_path):
    """A sound record whose flags byte has bits above bit 0 set (which readers ignore) right after a
    damaged header: the resynchronisation passed it over (it took only flags 0 or 1), so replay,
    kvb check and salvage lost its key while the format reader (and the normal reading, which
    ignores those bits) read it. Reading now resumes at it."""
    import test_format_reader11 as reader

    with DB(store_path) as db:
        for i in range(6):
            db.put(b"k%d" % i, b"v%d" % i * 8)
    active = data_files(store_path)[-1]
    at = _offsets(active)
    _set_flags(active, at[b"k3"], 0x82)
    _set_flags(active, at[b"k4"], 0x04)  # a plain record too: bit 0 clear
    _damage_key_length(active, b"k2")
    want = {b"k%d" % i: b"v%d" % i * 8 for i in range(6) if i != 2}
    assert {k: v[0] for k, v in reader.read_store(store_path).items()} == want
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == want
        assert db.stats()["corrupt_records"] == 1
    assert [p.offset for p in check(store_path).problems] == [at[b"k2"]]
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))
    reader.assert_same(store_path)


def test_reserved_flag_bits_do_not_change_what_a_record_means(store_path):
    """Bits 1..7 of the flags byte are reserved: a record that sets them reads as one without them
    (bit 0 still puts it in a batch), in replay and in the format reader alike."""
    import test_format_reader11 as reader

    with DB(store_path) as db:
        db.put(b"a", b"1")
        with db.batch() as b:
            b.put(b"b", b"2")
            b.put(b"c", b"3")
        db.put(b"d", b"4")
    active = data_files(store_path)[-1]
    at = _offsets(active)
    _set_flags(active, at[b"a"], 0x40)
    _set_flags(active, at[b"c"], 0x03)
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
    assert not check(store_path).problems
    reader.assert_same(store_path)


def _write_unpublished(store: str, data: bytes) -> None:
    """Write ``data`` at the published end of the active file: what a writer killed before it
    published its write leaves there."""
    from kv_backend.state import published_tail

    major, end = published_tail(store)
    _patch(os.path.join(store, data_name((major, 0))), end, data)


def _batch(pairs: list[tuple[bytes, bytes]], count: int) -> bytes:
    recs = [rec.encode(rec.PUT, k, v, flags=rec.FLAG_BATCH) for k, v in pairs]
    return b"".join(recs) + rec.encode_commit(count)


@pytest.mark.parametrize(
    "unpublished",
    [
        _batch([(b"b1", b"x"), (b"b2", b"y")], 3),  # a COMMIT that does not match its batch
        _batch([(b"b1", b"x"), (b"b2", b"y")], 1),
        rec.encode_commit(2),  # a COMMIT of count 2 that closes no batch
    ],
    ids=["count-above", "count-below", "no-batch"],
)
def test_salvage_stops_past_the_published_end_where_recovery_does(store_path, tmp_path, unpublished):
    """Past the published end of the active file, a COMMIT whose count does not match its batch (or
    that closes none) is where recovery ends the data (the tail of a write that never completed:
    what follows was never acknowledged, and the next writer cuts it). Salvage read on past it and
    copied the records after it, which the store itself no longer had once a writer opened it."""
    import test_format_reader11 as reader

    with DB(store_path) as db:
        db.put(b"a", b"1")
        db.put(b"b1", b"old")
    _write_unpublished(store_path, unpublished + rec.encode(rec.PUT, b"after", b"never acknowledged"))
    assert b"after" not in reader.read_store(store_path)
    salvage(store_path, str(tmp_path / "copy"))
    with DB(store_path) as db:  # recovery
        kept = dict(db.items())
    assert kept == {b"a": b"1", b"b1": b"old"}
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == kept
    assert not check(store_path).problems
    reader.assert_same(store_path)


def _flip_last_record(path: str) -> int:
    """Flip a bit in the value of the last record of data file ``path`` (a CRC mismatch with sound
    lengths that end at the file's end: what an unfinished last write can look like); its offset."""
    at = max(_offsets(path).values())
    with open(path, "rb") as f:
        buf = f.read()
    last = at + rec.HEADER_SIZE + sum(rec.HEADER.unpack_from(buf, at)[3:5]) - 1
    _patch(path, last, bytes([buf[last] ^ 0x10]))
    return at


@pytest.mark.parametrize("newest", ["records", "header only"])
def test_a_backup_counts_damage_at_the_end_of_the_file_before_the_active_one(store_path, tmp_path, newest):
    """A damaged last record of the file before the active one: the backup took it for an unfinished
    write (it took both newest files for files that may end in one) and reported no damage, while
    kvb check of the store reports it, and a restore of that backup refused it (when the active file
    holds records) or cut it off (when it holds only its header), so that its key read an older value.
    The file before the active one was closed by the rotation before the active file was published:
    it ends in no unfinished write, and a snapshot holds only published data."""
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % (i % 25), b"%03d" % i * 60)
        if newest == "header only":
            with db._lock:
                db._rotate(auto_merge=False)
        files = data_files(store_path)
        assert len(files) >= 3
        _flip_last_record(files[-2])
        problems = check(store_path).problems
        assert [p.path for p in problems] == [files[-2]]
        assert db.backup(url).damaged_records == len(problems)
    with pytest.raises(BackupError, match=f"file {os.path.basename(files[-2])} of backup .* is damaged"):
        restore(url, str(tmp_path / "restored"))


@pytest.mark.parametrize("where", ["active", "before the active one", "nowhere"])
def test_a_restored_store_reads_damage_at_the_end_of_a_file_as_the_store_did(store_path, tmp_path, where):
    """A restored copy had no STATE page, so the end of its newest files read as a write a crash may
    have torn: a damaged last record there passed the restore's check, and the first writer to open
    the copy cut it off, so that its key read its older value where the store raised CorruptionError.
    A backup whose snapshot held published records only now restores with a page publishing them."""
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % (i % 25), b"%03d" % i * 60)
        with db._lock:
            db._rotate(auto_merge=False)  # the active file holds only its header
        db.put(b"last", b"one")
        files = data_files(store_path)
        if where != "nowhere":
            _flip_last_record(files[-1] if where == "active" else files[-2])
        assert db.backup(url).damaged_records == len(check(store_path).problems) == (where != "nowhere")
    dest = str(tmp_path / "restored")
    if where != "nowhere":
        with pytest.raises(BackupError, match="is damaged at offset"):
            restore(url, dest)
        return
    restore(url, dest)
    with DB(store_path, read_only=True) as db:
        want = dict(db.items())
    with DB(dest) as db:
        assert dict(db.items()) == want
        db.put(b"after", b"restore")
    assert not check(dest).problems


def test_salvage_of_a_store_without_data_files_copies_nothing(tmp_path):
    """A store directory that holds no data file (all of them lost, or never written): salvage
    raised IndexError; it copies nothing, as replay reads nothing, and kvb check finds nothing."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "KVB_FORMAT").write_text("kv_backend store, format 1\n")
    report = salvage(str(src), str(tmp_path / "copy"))
    assert report.clean and report.keys_copied == 0
    assert not check(str(src)).problems
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == {}


def test_a_backup_reads_an_active_file_shorter_than_its_published_end_as_check_does(store_path, tmp_path):
    """An active file that lost bytes since its end was published (cut inside a record): the page no
    longer describes it, so kvb check and replay read its end from the bytes (a cut record there
    reads as a torn write). The backup scanned it up to the page's end as published data and
    counted that record as damage, which neither kvb check nor the restore's check reports."""
    import test_format_reader11 as reader

    with DB(store_path) as db:
        for i in range(10):
            db.put(b"k%d" % i, b"v%d" % i * 20)
    active = data_files(store_path)[-1]
    os.truncate(active, _offsets(active)[b"k9"] + 30)
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        want = dict(db.items())
        assert db.backup(url).damaged_records == len(check(store_path).problems) == 0
    assert want == {b"k%d" % i: b"v%d" % i * 20 for i in range(9)}
    assert {k: v[0] for k, v in reader.read_store(store_path).items()} == want
    restore(url, str(tmp_path / "restored"))
    with DB(str(tmp_path / "restored")) as db:
        assert dict(db.items()) == want


@pytest.mark.parametrize("version", [2, 3])  # (0 is damage: see test_engine_rare16)
def test_kvb_check_reports_a_data_file_header_naming_another_version(store_path, tmp_path, version):
    """A data file whose header names another format version (damage to its version field, or a file
    of another kv_backend): the store refuses to open for it, while kvb check reported nothing about
    the header. kvb check reports it; salvage copies the readable records and reports the header."""
    from kv_backend import NotAStoreError

    with DB(store_path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % i, b"%03d" % i * 30)
    closed = data_files(store_path)[0]
    _patch(closed, 8, version.to_bytes(4, "little"))
    with pytest.raises(NotAStoreError, match=f"format version {version}.*kvb check"):
        DB(store_path, read_only=True)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(closed, 8)]
    assert f"format version {version}" in check(store_path).problems[0].what
    report = salvage(store_path, str(tmp_path / "copy"))
    assert [(r.path, r.offset) for r in report.regions] == [(closed, 0)] and not report.clean
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == {b"k%02d" % i: b"%03d" % i * 30 for i in range(60)}


def test_the_format_reader_reads_past_a_damaged_magic_as_the_engine_does(store_path):
    """docs/file-format.md: a damaged magic is not refused (the records carry their own CRCs); the
    format reader refused such a file while the engine read its records."""
    import test_format_reader11 as reader

    with DB(store_path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % i, b"%03d" % i * 30)
    _patch(data_files(store_path)[0], 0, b"KVBDAT\xff\x00")
    assert len(reader.assert_same(store_path)) == 60
    assert [p.offset for p in check(store_path).problems] == [0]


def test_salvage_reads_a_merged_file_through_its_hint_file_as_the_engine_does(store_path, tmp_path):
    """A record of a merged file lying between two damaged headers: the engine reads it where the
    file's hint file says it is (the hint file checks out, and so does the record), while salvage
    replayed the data file, where reading resumes only at a record something sound follows: it
    dropped that key. Salvage now reads a merged file through a hint file that checks out, as the
    engine does, and takes a record it points to as damaged exactly when a read raises for it."""
    from kv_backend import CorruptionError

    with DB(store_path, max_file_size=4096) as db:
        for i in range(30):
            db.put(b"k%02d" % i, b"%03d" % i * 20)
        db.merge(wait=True)
        db.put(b"after", b"merge")
    merged = next(p for p in data_files(store_path) if not p.endswith("-000.data"))
    assert os.path.exists(merged[: -len(".data")] + ".hint")
    order = sorted(_offsets(merged).items(), key=lambda kv: kv[1])
    (before, at_before), (lone, _), (after, at_after) = order[10:13]
    for at in (at_before, at_after):
        _patch(merged, at + 6, struct.pack("<I", 0x7FFFFFFF))
    want: dict = {}
    with DB(store_path, read_only=True) as db:
        for key in list(db.keys()):
            try:
                want[key] = db.get(key)
            except CorruptionError:
                continue
    assert lone in want and before not in want and after not in want
    report = salvage(store_path, str(tmp_path / "copy"))
    assert sorted(report.damaged_keys) == sorted([before, after])
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == want


@pytest.mark.parametrize(
    "unpublished",
    [
        _batch([(b"b1", b"x"), (b"b2", b"y")], 3),  # a COMMIT that does not match, then more
        b"",  # a record that does not check out, then more
    ],
    ids=["commit", "checksum"],
)
def test_kvb_check_reads_past_the_published_end_as_recovery_does(store_path, unpublished):
    """Past the published end of the active file, tail recovery ends the data at the first record that
    does not check out (or a COMMIT that does not match) and cuts it with all that follows: the write
    of a writer that died before publishing it. kvb check read on there by the published rules and
    reported a record after it as damage (which the next writer then cut, so that kvb check found
    nothing wrong any more); it reports where recovery cuts (that records which check out follow the
    cut: test_engine_rare16), and nothing after it."""
    from kv_backend.state import published_tail

    with DB(store_path) as db:
        db.put(b"a", b"1")
    bad = bytearray(rec.encode(rec.PUT, b"x", b"yyyy"))
    bad[-1] ^= 1
    _write_unpublished(store_path, unpublished + bytes(bad) + rec.encode(rec.PUT, b"g", b"good"))
    report = check(store_path)
    assert [p.offset for p in report.problems] == [published_tail(store_path)[1]]
    assert "cuts them off" in report.problems[0].what and not report.notes
    with DB(store_path) as db:
        assert dict(db.items()) == {b"a": b"1"}
    assert check(store_path).ok and not check(store_path).notes


def test_kvb_check_reads_the_records_of_a_file_whose_magic_is_damaged(store_path, tmp_path):
    """A data file whose magic is damaged is read by the engine (every record carries its own CRC),
    but kvb check (and a backup's count) reported its header and skipped its records, so a damaged
    record there went unreported while reading its key raised CorruptionError."""
    from kv_backend import CorruptionError

    with DB(store_path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % i, b"%03d" % i * 30)
    closed = data_files(store_path)[0]
    at = _offsets(closed)[b"k03"]
    _patch(closed, 0, b"KVBDAT\xff\x00")
    _patch(closed, at + rec.HEADER_SIZE + 4, b"!")  # in k03's value
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 2  # (its header too, as kvb check counts it)
        with pytest.raises(CorruptionError):
            db.get(b"k03")
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 2
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(closed, 0), (closed, at)]


def _died_rotation(store: str, head: bytes, *, junk: bytes = b"") -> str:
    """Leave what a rotation that died leaves: the next data file holding ``head`` (part or all of a
    file header), the active file unclosed (its reserved zeros, ``junk`` written at its published
    end), and no STATE page (a store copied without it); return the unclosed file's path."""
    from kv_backend.state import published_tail

    major, end = published_tail(store)
    with open(os.path.join(store, data_name((major + 1, 0))), "wb") as f:
        f.write(head)
    path = os.path.join(store, data_name((major, 0)))
    _patch(path, end, junk)
    os.unlink(os.path.join(store, "STATE"))
    return path


@pytest.mark.parametrize("head", [b"", rec.FILE_HEADER_BYTES[:5]], ids=["empty", "part"])
def test_recovery_closes_the_file_before_a_new_file_without_its_whole_header(store_path, head):
    """Without a STATE page, after a rotation that died before the new file had its whole header,
    recovery gave that file its header and wrote there, but left the file before it unclosed: from
    then on its reserved zeros (1 MiB) were a damaged record header to kvb check and to every replay
    (corrupt_records 1, a warning at each open, merge refused). It is closed as when the new file holds
    its header."""
    with DB(store_path) as db:
        for i in range(20):
            db.put(b"k%02d" % i, b"v" * 50)
    _died_rotation(store_path, head)
    with DB(store_path) as db:
        db.put(b"new", b"x")
    assert check(store_path).ok, check(store_path).problems
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 0 and len(db) == 21
    with DB(store_path) as db:
        assert db.merge(wait=True).records_kept == 21  # (it refused: "a damaged record header")


def test_the_unclosed_file_of_a_rotation_that_died_is_read_alike_by_every_reader(store_path, tmp_path):
    """Without a STATE page, the file before a new file holding only its header ends in an unfinished
    write only if what follows its data can be one (reserved zeros, one torn record): replay and tail
    recovery read anything else there as published data (a damaged header), while kvb check, salvage
    and a backup took its end for an unfinished write wherever the data seemed to end."""
    import test_format_reader11 as reader

    with DB(store_path) as db:
        for i in range(20):
            db.put(b"k%02d" % i, b"v" * 50)
    path = _died_rotation(
        store_path, rec.FILE_HEADER_BYTES, junk=b"\x1f\xa2\x03^h\x19\xe2\x9cs\x1b\xb0\x12\x0f"
    )
    assert [p.path for p in check(store_path).problems] == [path]
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 1
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))
    reader.assert_same(store_path)  # (the read-only open first: the writer's recovers the tail)
    with DB(store_path) as db:
        assert db.stats()["corrupt_records"] == 1
    assert [p.path for p in check(store_path).problems] == [path]


def test_a_new_file_of_a_header_s_size_makes_the_file_before_it_unclosed_for_every_reader(store_path):
    """A rotation's new file of 16 bytes whose header is damaged: recovery and replay take it for the
    file of a rotation that died (by its size: it holds no record), kvb check and salvage did only when
    its bytes were exactly a header, and so read the reserved zeros of the file before it as damage."""
    with DB(store_path) as db:
        for i in range(20):
            db.put(b"k%02d" % i, b"v" * 50)
    _died_rotation(store_path, b"KVBDAT\xff\x00" + rec.FILE_HEADER_BYTES[8:])
    newest = data_files(store_path)[-1]
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 1 and len(db) == 20  # (its header, as kvb check counts it)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(newest, 0)]


def test_a_backup_without_a_page_counts_a_part_header_file_as_check_does(store_path, tmp_path):
    """Without a STATE page, a rotation's new file holding part of its header is noted by kvb check
    (it holds nothing, and recovery completes it), while a backup counted it as a damaged header."""
    with DB(store_path) as db:
        for i in range(20):
            db.put(b"k%02d" % i, b"v" * 50)
    _died_rotation(store_path, rec.FILE_HEADER_BYTES[:5])
    assert check(store_path).ok
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        want = dict(db.items())
        assert db.backup(url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    with DB(str(tmp_path / "restored")) as db:
        assert dict(db.items()) == want


def test_the_file_before_a_part_header_file_without_a_page_is_read_alike(store_path, tmp_path):
    """Without a STATE page, the file before a new file holding part of its header is one a rotation
    that died did not finish closing, for replay and recovery (junk after its data that cannot be a
    torn write is damage), while kvb check and salvage took it for the active file (the junk a note)."""
    with DB(store_path) as db:
        for i in range(20):
            db.put(b"k%02d" % i, b"v" * 50)
    path = _died_rotation(store_path, rec.FILE_HEADER_BYTES[:5], junk=b"\x95\x96\xca&\x00t\x99\xa7\xbb\xc6u?")
    assert [p.path for p in check(store_path).problems] == [path]
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 1
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))
    with DB(store_path) as db:
        assert db.stats()["corrupt_records"] == 1
    assert [p.path for p in check(store_path).problems] == [path]
