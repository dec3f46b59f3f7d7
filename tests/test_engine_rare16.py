"""The rare crash-plus-damage cases of the engine's readers: a closed data file cut inside its header,
the file before a dead rotation and the next one both shorter than a header without a STATE page, a
data file whose version field reads 0, and damage past the end of a STATE page that lags the records
after it. Every reader (replay read-only and read-write, kvb check, salvage, a backup and its restore,
merge, the format reader of test_format_reader11) follows one rule (docs/file-format.md)."""

from __future__ import annotations

import logging
import os

import pytest
import test_format_reader11 as reader
from helpers import data_files
from test_engine_review13 import _patch, _salvaged_matches_db

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


def _view(store: str, *, read_only: bool) -> tuple[dict, int]:
    out: dict = {}
    with DB(store, read_only=read_only) as db:
        for key in sorted(db.keys()):
            try:
                out[key] = db.get(key)
            except CorruptionError:
                out[key] = "damaged"
        return out, db.stats()["corrupt_records"]


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
    assert _view(store_path, read_only=True) == (want, 0)
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
