"""``kvb check`` and ``kvb salvage`` read a store's files without opening it, and ``kv_restore --replace``
swapped the store out and deleted it under them: they read the files of two stores (the page of one, the
files of the other, or files listed in one and read in the other), and a salvage's copy could hold keys of
both. They now hold the store's in-use lock (the shared ``flock`` on its directory) while they read, so a
swap refuses meanwhile, and take it on the store at the path where one was swapped in as they began.
"""

from __future__ import annotations

import pytest

import kv_backend.check
import kv_backend.salvage
import kv_backend.state
from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import exchange_paths
from kv_backend.salvage import salvage
from kv_backend.state import in_use, kept_unopened


def _store(path: str, keys: int) -> str:
    with DB(path) as db:
        for i in range(keys):
            db.put(b"k%03d" % i, b"v")
    return path


def test_a_check_keeps_the_store_in_use(tmp_path, monkeypatch):
    path = _store(str(tmp_path / "cache"), 10)
    seen = []
    one_pass = kv_backend.check._check

    def noting(at: str) -> kv_backend.check.CheckReport:
        seen.append(in_use(at))
        with kept_unopened(at) as unused:
            seen.append(unused)
        return one_pass(at)

    monkeypatch.setattr(kv_backend.check, "_check", noting)
    assert check(path).ok
    assert seen == [True, False]  # in use, and a swap refused
    assert not in_use(path)


def test_a_salvage_keeps_the_store_in_use(tmp_path, monkeypatch):
    path = _store(str(tmp_path / "cache"), 10)
    seen = []
    words = kv_backend.salvage.page_and_files

    def noting(at: str) -> tuple[object, object, object]:
        seen.append(in_use(at))
        return words(at)

    monkeypatch.setattr(kv_backend.salvage, "page_and_files", noting)
    assert salvage(path, str(tmp_path / "copy")).keys_copied == 10
    assert seen == [True]
    assert not in_use(path)


@pytest.mark.parametrize("tool", ["check", "salvage"])
def test_a_store_swapped_in_as_the_tool_begins_is_the_one_read(tmp_path, monkeypatch, tool):
    path = _store(str(tmp_path / "cache"), 10)
    restored = _store(str(tmp_path / "cache.restoring-1"), 25)
    held = kv_backend.state.directory_shared
    swaps = []

    def swapped_once_held(at: str) -> int:
        fd = held(at)
        if not swaps:
            swaps.append(exchange_paths(restored, path))
            if not swaps[0]:
                pytest.skip("this file system cannot exchange two directories in one step")
        return fd

    monkeypatch.setattr(kv_backend.state, "directory_shared", swapped_once_held)
    if tool == "check":
        assert check(path).records == 25
    else:
        assert salvage(path, str(tmp_path / "copy")).keys_copied == 25
    assert swaps == [True]
