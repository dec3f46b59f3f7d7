"""A rotation that died (the next data file holds its header, part of it, or damaged bytes) in a store
that is damaged too: every reader (replay, tail recovery, kvb check, salvage, a backup and the store
restored from it, the format reader) follows one rule, recovery's (docs/file-format.md, "The file
before the active one"; docs/protocol.md, "Tail recovery")."""

from __future__ import annotations

import os

import pytest
import test_format_reader11 as reader
from test_engine_review13 import _offsets, _salvaged_matches_db

from kv_backend import DB, BackupError, CorruptionError
from kv_backend import record as rec
from kv_backend.backup import restore
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.state import published_tail


def _store_with_dead_rotation(store: str, head: bytes) -> str:
    """Three keys (``a`` written twice, its newest record last), then a rotation that died with the
    STATE page naming the file: the next data file holds ``head``. Return the named file's path."""
    with DB(store) as db:
        db.put(b"a", b"old")
        db.put(b"b", b"x" * 50)
        db.put(b"a", b"new" * 20)
    major, _ = published_tail(store)
    with open(os.path.join(store, data_name((major + 1, 0))), "wb") as f:
        f.write(head)
    return os.path.join(store, data_name((major, 0)))


def _view(store: str, *, read_only: bool) -> tuple[dict, int]:
    out: dict = {}
    with DB(store, read_only=read_only) as db:
        for key in sorted(db.keys()):
            try:
                out[key] = db.get(key)
            except CorruptionError:
                out[key] = "damaged"
        return out, db.stats()["corrupt_records"]


def _reader_view(store: str) -> dict:
    return {k: "damaged" if v == reader.DAMAGED else v[0] for k, v in reader.read_store(store).items()}


@pytest.mark.parametrize("head", [b"", rec.FILE_HEADER_BYTES[:5]], ids=["empty", "part"])
def test_the_active_file_before_a_part_header_file_that_lost_bytes_is_read_as_recovery_reads_it(
    store_path, tmp_path, head
):
    """The page names a file that lost bytes (cut inside its last record), and a rotation that died left
    the next file without its whole header: recovery removes that file and reads the one before as the
    active file, whose end it reads from the bytes (the cut record a torn write: ``a`` reads its older
    value). Read-only replay and the format reader took it for a file a rotation did not finish
    closing and read the cut record as damage (CorruptionError for ``a``)."""
    path = _store_with_dead_rotation(store_path, head)
    os.truncate(path, published_tail(store_path)[1] - 10)
    want = {b"a": b"old", b"b": b"x" * 50}
    assert _view(store_path, read_only=True) == (want, 0)
    assert _reader_view(store_path) == want
    assert check(store_path).ok
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert _view(str(tmp_path / "restored"), read_only=True) == (want, 0)
    assert _view(store_path, read_only=False) == (want, 0)
    assert check(store_path).ok


def test_the_file_before_a_header_only_file_that_lost_bytes_is_all_published(store_path, tmp_path):
    """The page names a file that lost bytes, and a rotation that died left the next file holding its
    header: recovery adopts that file and closes the one before whole (all of it was published), so
    the record cut at its end is damage. The backup left the new file out and scanned the cut file as
    the active one: it counted no damage, and the store restored from it read ``a``'s older value."""
    path = _store_with_dead_rotation(store_path, rec.FILE_HEADER_BYTES)
    os.truncate(path, published_tail(store_path)[1] - 10)
    assert [p.path for p in check(store_path).problems] == [path]
    assert _view(store_path, read_only=True) == ({b"a": "damaged", b"b": b"x" * 50}, 1)
    assert _reader_view(store_path) == {b"a": "damaged", b"b": b"x" * 50}
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 1
    with pytest.raises(BackupError):
        restore(url, str(tmp_path / "restored"))
    assert _view(store_path, read_only=False) == ({b"a": "damaged", b"b": b"x" * 50}, 1)
    assert [p.path for p in check(store_path).problems] == [path]


def test_zeros_at_the_end_of_a_published_file_before_a_dead_rotation_are_damage(store_path, tmp_path):
    """As above, with the lost bytes' place taken by zeros from a record's start to the end of the
    file: they lie inside the published part, so they are damage (recovery keeps them, and replay
    reports them, once the new file is adopted), while kvb check, read-only replay and salvage took
    them for the reserved zeros of an unclosed file, and kvb check changed its mind after a writer
    opened the store."""
    path = _store_with_dead_rotation(store_path, rec.FILE_HEADER_BYTES)
    at = _offsets(path)[b"a"]  # (the newest record of a, the last one)
    with open(path, "r+b") as f:
        f.truncate(published_tail(store_path)[1] - 10)
        f.seek(at)
        f.write(bytes(os.path.getsize(path) - at))
    before = [(p.path, p.offset) for p in check(store_path).problems]
    assert before == [(path, at)]
    assert _view(store_path, read_only=True) == ({b"a": b"old", b"b": b"x" * 50}, 1)
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    assert _view(store_path, read_only=False) == ({b"a": b"old", b"b": b"x" * 50}, 1)
    assert [(p.path, p.offset) for p in check(store_path).problems] == before


def test_a_backup_counts_damage_to_the_header_of_a_dead_rotation_s_new_file(store_path, tmp_path):
    """With a page, a backup left out the new file of a rotation that died (its header alone), so
    damage to that header, which kvb check reports (recovery adopts the file as it is), was not
    counted, and the restore took the backup for clean."""
    _store_with_dead_rotation(store_path, b"KVB\xffATA\x00" + rec.FILE_HEADER_BYTES[8:])
    newest = os.path.join(store_path, data_name((published_tail(store_path)[0] + 1, 0)))
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(newest, 0)]
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 1
    with pytest.raises(BackupError):
        restore(url, str(tmp_path / "restored"))


def test_a_clean_dead_rotation_is_backed_up_and_restored_whole(store_path, tmp_path):
    """The new file of a rotation that died, holding its header, is copied (so that the file before it
    reads as closed in the restored store as here); the restored store reads as the source."""
    _store_with_dead_rotation(store_path, rec.FILE_HEADER_BYTES)
    url = f"file://{tmp_path / 'backups'}"
    want = _view(store_path, read_only=True)
    with DB(store_path, read_only=True) as db:
        assert db.backup(url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert want == ({b"a": b"new" * 20, b"b": b"x" * 50}, 0)
    assert _view(str(tmp_path / "restored"), read_only=True) == want
    assert check(str(tmp_path / "restored")).ok
    with DB(str(tmp_path / "restored")) as db:
        db.put(b"c", b"y")
    assert check(str(tmp_path / "restored")).ok


@pytest.mark.parametrize("page", [True, False], ids=["page", "no-page"])
def test_a_part_header_file_of_damaged_bytes_holds_nothing_for_every_reader(store_path, tmp_path, page):
    """A rotation's new file shorter than a header whose bytes are not those of a header: recovery
    removes it (with a page) or gives it its header (without one), whatever its bytes, and it holds no
    record; kvb check reported a damaged header before a writer opened the store and nothing after,
    and a backup counted it (without a page) though the restore's check did not."""
    _store_with_dead_rotation(store_path, b"K\xffB\x00D")
    if not page:
        os.unlink(os.path.join(store_path, "STATE"))
    report = check(store_path)
    assert report.ok and any("without its header" in note for note in report.notes)
    want = _view(store_path, read_only=True)
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 0
    restore(f"file://{tmp_path / 'backups'}", str(tmp_path / "restored"))
    assert _view(str(tmp_path / "restored"), read_only=True) == want
    assert _view(store_path, read_only=False) == want
    assert check(store_path).ok


@pytest.mark.parametrize(
    "left", [b"", rec.FILE_HEADER_BYTES[:5], b"K\xffB\x00D"], ids=["empty", "part", "damaged"]
)
@pytest.mark.parametrize("after", [b"", b"KV\xffD\x00"], ids=["alone", "dead-rotation"])
def test_the_active_file_cut_inside_its_header_holds_nothing_for_every_reader(
    store_path, tmp_path, left, after
):
    """The file the page names cut inside its header (as an active file cut anywhere, its end is read
    from its bytes: nothing there), alone or before a dead rotation's part-header file: recovery gives
    it its header again (and removes the other). kvb check reported a damaged header when its bytes
    were not part of a header (and nothing once a writer had opened the store), and a restore took a
    backup counting it as damage for clean."""
    path = _store_with_dead_rotation(store_path, after)
    if not after:
        os.unlink(os.path.join(store_path, data_name((published_tail(store_path)[0] + 1, 0))))
    with open(path, "wb") as f:
        f.write(left)
    assert check(store_path).ok
    url = f"file://{tmp_path / 'backups'}"
    with DB(store_path, read_only=True) as db:
        want = dict(db.items())
        assert db.backup(url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert _view(str(tmp_path / "restored"), read_only=True) == (want, 0)
    assert _view(store_path, read_only=False) == (want, 0)
    assert check(store_path).ok


@pytest.mark.parametrize("page", [True, False], ids=["page", "no-page"])
def test_a_part_header_file_naming_another_version_does_not_stop_a_read_only_open(store_path, page):
    """A rotation's new file of 12 bytes whose version field is damaged: it holds nothing (recovery
    removes it or completes its header, and kvb check notes it), but a read-only open refused the
    store as one of another format version."""
    _store_with_dead_rotation(store_path, rec.FILE_HEADER_BYTES[:8] + (33).to_bytes(4, "little"))
    if not page:
        os.unlink(os.path.join(store_path, "STATE"))
    assert check(store_path).ok
    want = ({b"a": b"new" * 20, b"b": b"x" * 50}, 0)
    assert _view(store_path, read_only=True) == want
    assert _view(store_path, read_only=False) == want
    assert check(store_path).ok


@pytest.mark.parametrize(
    "left", [b"", rec.FILE_HEADER_BYTES[:5], b"K\xffB\x00D"], ids=["empty", "part", "damaged"]
)
@pytest.mark.parametrize(
    "head", [rec.FILE_HEADER_BYTES[:5], rec.FILE_HEADER_BYTES], ids=["part-header", "header"]
)
def test_without_a_page_the_file_before_a_dead_rotation_cut_inside_its_header_gets_it_back(
    store_path, tmp_path, left, head
):
    """Without a STATE page, the file before a dead rotation's new file cut inside its own
    header: it holds nothing (kvb check notes it), but recovery closed it as it was and completed the
    new file, so it became a closed file without a header, a damaged header to kvb check from then
    on. Recovery gives it its header again."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%02d" % i, b"v" * 200)  # (several files)
    path = _store_with_dead_rotation(store_path, head)
    os.unlink(os.path.join(store_path, "STATE"))
    with open(path, "wb") as f:
        f.write(left)
    assert check(store_path).ok
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 0
    want = _view(store_path, read_only=True)
    assert len(want[0]) > 10
    assert _view(store_path, read_only=False) == want
    assert check(store_path).ok
    with DB(store_path) as db:
        db.put(b"new", b"1")
    assert check(store_path).ok
