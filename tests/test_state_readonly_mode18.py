"""The STATE page that a read-only open makes in a store without one (a restored or copied store that
no writer opened yet: kvb get, kvb keys, manage.py kv_stats of a reading account) was created with
0o666 less the umask, while a writer's open makes it with the bits of the store's format file: under
umask 000 a store of 0600 files got a world-writable page, and any local user could write the
published end of the active file that every process of the store reads. It now gets the format
file's bits from a reader's open too, whatever the umask."""

from __future__ import annotations

import pytest
from helpers import mode_of, store_of_mode

from kv_backend import DB, owners


def _store_without_state(path, file_mode: int) -> str:
    return store_of_mode(path, file_mode, without="STATE")


def _state_mode(store: str) -> int:
    return mode_of(store, "STATE")


@pytest.mark.parametrize("file_mode", [0o600, 0o640])
@pytest.mark.parametrize("unnamed", [True, False])
def test_a_reader_makes_the_state_page_with_the_format_file_s_bits(
    tmp_path, umask_000, monkeypatch, file_mode, unnamed
):
    if not unnamed:  # (macOS, a file system without O_TMPFILE: the page is made by its name)
        monkeypatch.setattr(owners, "create_for_store_owner", lambda path, mode, size=0: None)
    store = _store_without_state(tmp_path / "store", file_mode)
    with DB(store, read_only=True) as db:
        assert db.get(b"k") == b"v"
    assert _state_mode(store) == file_mode
    with DB(store) as db:  # a writer opening later publishes through it
        db.put(b"k", b"w")
        with DB(store, read_only=True) as reader:
            assert reader.get(b"k") == b"w"
