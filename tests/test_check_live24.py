"""kvb check and kvb salvage beside a live writer whose files are made while they list the store.

A directory listing is no snapshot: a file made while it runs may be missing from it while one made
after that file is listed (on ext4, whose listing follows the names' hashes, a listing beside a
writer rotating 4 KiB files lists a newest file without the one made just before it, a few times in
a thousand). kvb check listed the data files and read the STATE page after: where the listing ran
across the making of the active file ``A`` (missed) and of the next one (listed: a rotation that
had not published it yet, the page naming ``A``), it took the live page for one naming a file that
is gone, a damaged page, and read the store as without one (seen once in test_engine_rare17's
live-writer test); where the rotation had published, it noted ``A`` missing from the sequence of
names (a deleted file, it says) and checked nothing of it; kvb salvage, which read the page first,
noted it so too. Both now list the files again, after reading the page, where the first listing
misses one: every file made before the first listing ended, and the file the page names, is in the
second. These tests replay those listings deterministically: the listing of the store's directory
runs the writer's rotations while it lists, and leaves out the file the first of them made, as ext4
did.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.record import FILE_HEADER_BYTES
from kv_backend.salvage import salvage
from kv_backend.state import published_tail

_VALUE = b"v" * 300


def _rotate(db: DB, store: str) -> int:
    """Write to ``db`` until it publishes the next data file; its major id."""
    major = published_tail(store)[0]  # type: ignore[index]
    i = 0
    while published_tail(store)[0] == major:  # type: ignore[index]
        db.put(b"r%03d" % (i % 50), _VALUE)
        i += 1
    return major + 1


def _listing_across(monkeypatch, store: str, made_meanwhile) -> list[str]:
    """Make the first listing of ``store`` run ``made_meanwhile()`` (which makes data files and returns the
    one of them to leave out) while it lists, and return what it listed: the names there before and after,
    less that file. Every later listing is the directory's own. The names of what was left out are
    returned (one, once the listing ran)."""
    real = os.listdir
    left_out: list[str] = []
    ran: list[bool] = []

    def listing(path=".", *args, **kwargs):  # type: ignore[no-untyped-def]
        names = real(path, *args, **kwargs)
        if ran or not isinstance(path, str) or os.path.abspath(path) != os.path.abspath(store):
            return names
        ran.append(True)  # (before: the writer lists the files too)
        left_out.append(made_meanwhile())
        return [n for n in real(path) if n != left_out[0]]

    monkeypatch.setattr(os, "listdir", listing)
    return left_out


@pytest.fixture
def live(store_path):
    """A writer of a store of several 4 KiB data files, open."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%02d" % i, _VALUE)
        yield db


def test_check_does_not_take_the_live_page_for_a_damaged_one_when_the_listing_misses_the_active_file(
    store_path, live, monkeypatch
):
    """The listing runs while the writer rotates to file ``A`` and then starts its next rotation (the file
    ``A + 1`` made with its header, not yet published: the page names ``A``); ``A`` is missing from it,
    ``A + 1`` listed. Read after it, the page named a file the listing lacked, older than the newest:
    'a damaged page (it names A, which is gone...)'."""

    def made_meanwhile() -> str:
        active = _rotate(live, store_path)
        with open(os.path.join(store_path, data_name((active + 1, 0))), "wb") as f:
            f.write(FILE_HEADER_BYTES)  # (the next rotation, before it publishes the file)
        return data_name((active, 0))

    left_out = _listing_across(monkeypatch, store_path, made_meanwhile)
    report = check(store_path)
    assert left_out, "the check did not list the store"
    assert published_tail(store_path)[0] == int(left_out[0][:10])  # type: ignore[index]
    assert not any("damaged page" in n for n in report.notes), report.notes
    assert not any("missing" in n for n in report.notes), report.notes
    assert report.ok and report.files == len(list_data_files(store_path))


@pytest.mark.parametrize("rotations", [2, 3])
def test_check_does_not_note_a_file_missing_that_was_made_while_it_listed(
    store_path, live, monkeypatch, rotations
):
    """The listing runs across whole rotations, and misses the first file they made: kvb check noted it
    missing from the sequence (a deleted file, whose keys read older values) and checked nothing of it."""

    def made_meanwhile() -> str:
        first = _rotate(live, store_path)
        for _ in range(rotations - 1):
            _rotate(live, store_path)
        return data_name((first, 0))

    _listing_across(monkeypatch, store_path, made_meanwhile)
    report = check(store_path)
    assert not any("missing" in n for n in report.notes), report.notes
    assert not any("damaged page" in n for n in report.notes), report.notes
    assert report.ok and report.files == len(list_data_files(store_path))


def test_check_beside_a_merge_that_removes_the_active_file_while_it_lists(store_path, live, monkeypatch):
    """A merge runs while the listing does (rotating first, then removing the files it merged, the
    active file among them): the page, read after the listing, names the merge's new active file, and
    the files it removed leave no gap (its outputs take their place)."""

    def made_meanwhile() -> str:
        named = published_tail(store_path)[0]  # type: ignore[index]
        live.merge(wait=True)
        assert not os.path.exists(os.path.join(store_path, data_name((named, 0))))
        return ""

    _listing_across(monkeypatch, store_path, made_meanwhile)
    report = check(store_path)
    assert not any("damaged page" in n for n in report.notes), report.notes
    assert report.ok


def test_salvage_does_not_note_a_file_missing_that_was_made_while_it_listed(
    store_path, live, monkeypatch, tmp_path
):
    """kvb salvage noted the file made while it listed missing, as kvb check did; it copies every key of
    the store, that file's included."""

    def made_meanwhile() -> str:
        first = _rotate(live, store_path)
        _rotate(live, store_path)
        return data_name((first, 0))

    _listing_across(monkeypatch, store_path, made_meanwhile)
    report = salvage(store_path, str(tmp_path / "copy"))
    monkeypatch.undo()
    assert not any("missing" in n for n in report.notes), report.notes
    with DB(str(tmp_path / "copy"), read_only=True) as copy:
        assert dict(copy.items()) == dict(live.items())


def test_check_lists_again_where_the_listing_misses_the_only_file_before_the_newest(store_path, monkeypatch):
    """A store of one file, whose next rotation made the second while the listing ran (not yet published):
    listed without the first, the sequence of names has no gap to tell (it starts at the oldest file
    listed), but the page names the file missing."""
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"a", b"1")
    (major, _), names = published_tail(store_path), sorted(os.listdir(store_path))

    def made_meanwhile() -> str:
        with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
            f.write(FILE_HEADER_BYTES)  # (the rotation, before it publishes the file)
        return data_name((major, 0))

    assert data_name((major, 0)) in names
    _listing_across(monkeypatch, store_path, made_meanwhile)
    report = check(store_path)
    assert not any("damaged page" in n for n in report.notes), report.notes
    assert report.ok and report.files == 2
