"""A power failure between the two steps of the cut of a batch without its COMMIT that ends the published
part of a file (the STATE page's end moved back inside it by damage): recovery publishes the batch's start
as the file's end, then overwrites the batch with zeros (the active file) or cuts the file there (the file
before a dead rotation's new file).

The page was not flushed before the second step, and the page is otherwise never written to disk: a power
failure that kept the zeros or the cut and lost the page's new end left zeros inside the published part, or
a file shorter than its published end, which every reader reported as damage (lost acknowledged records).
The page now reaches the disk before the file changes. The tests run the cut, stop it right after the file
changed (a crash), and put back the page as the disk last held it.
"""

from __future__ import annotations

import os

import pytest
from puts_and_batch22 import PUTS
from test_page_end_open_batch21 import _damaged
from test_rotated_page_batch21 import _store

from kv_backend import DB, db_open
from kv_backend.check import check
from kv_backend.salvage import salvage
from kv_backend.state import SharedState, published_tail


class _Crash(BaseException):
    """The process dies here."""


class _PowerFailure:
    """The STATE page as the disk holds it: as before the test's writer opened, or as that last flushed it."""

    def __init__(self, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state = os.path.join(path, "STATE")
        with open(self.state, "rb") as f:
            self.on_disk = f.read()
        flush = getattr(SharedState, "flush", None)

        def flushed(page: SharedState) -> None:
            if flush is not None:
                flush(page)
            with open(self.state, "rb") as f:
                self.on_disk = f.read()

        monkeypatch.setattr(SharedState, "flush", flushed, raising=False)

    def crash_after(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        """Die right after the first call of ``owner.name``, which changes the data file."""
        real = getattr(owner, name)

        def then_crash(*args: object) -> None:
            real(*args)
            raise _Crash

        monkeypatch.setattr(owner, name, then_crash)

    def strike(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.undo()
        with open(self.state, "r+b") as f:
            f.write(self.on_disk)


def _no_damage(path: str, tmp_path, want: dict[bytes, bytes]) -> None:
    with DB(path, read_only=True) as db:
        assert ({k: db.get(k) for k in db}, db.stats()["corrupt_records"]) == (want, 0)
    assert check(path).problems == []
    report = salvage(path, str(tmp_path / "salvaged"))
    assert report.regions == [] and report.records_skipped == 0
    with DB(path) as db:
        assert ({k: db.get(k) for k in db}, db.stats()["corrupt_records"]) == (want, 0)
        db.merge(wait=True)
    assert check(path).problems == []


@pytest.mark.parametrize("inside", [1, 2])
def test_the_active_files_batch_overwritten_with_zeros(store_path, tmp_path, monkeypatch, inside):
    major, start = _damaged(store_path, inside, "zeroed")
    power = _PowerFailure(store_path, monkeypatch)
    power.crash_after(monkeypatch, db_open, "write_zeros")
    with pytest.raises(_Crash):
        DB(store_path)
    power.strike(monkeypatch)
    tail = published_tail(store_path)
    _no_damage(store_path, tmp_path, PUTS)
    assert tail == (major, start)


@pytest.mark.parametrize("inside", [1, 2])
def test_the_closing_files_batch_cut_off(store_path, tmp_path, monkeypatch, inside):
    major, start, _ = _store(store_path, inside, bytes(100))
    power = _PowerFailure(store_path, monkeypatch)
    power.crash_after(monkeypatch, os, "ftruncate")
    with pytest.raises(_Crash):
        DB(store_path)
    power.strike(monkeypatch)
    tail = published_tail(store_path)
    _no_damage(store_path, tmp_path, PUTS)
    assert tail == (major, start)
