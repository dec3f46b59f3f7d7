"""kv_backend.dbm.open and kv_backend.shelve.open on a path whose write lock this thread holds through
another handle (inside a Store's transaction() or locked(), or a modify() callback).

The open would wait for that lock for ever, so it is refused; but it raised kv_backend.dbm.error
with errno EIO, an I/O error to any ``except OSError:`` (one that retries, say), where the same
mistake through a database already open, and the opening of a Store or DB, raise TransactionError,
as docs/store.md says. The opens raise TransactionError too now.
"""

from __future__ import annotations

import pytest

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend import Store
from kv_backend.errors import TransactionError


@pytest.mark.parametrize("flag", ["r", "w", "c", "n"])
def test_opening_inside_a_transaction_on_the_path_raises_transaction_error(tmp_path, flag):
    path = str(tmp_path / "s")
    with Store(path) as s:
        s["k"] = 1
        with s.transaction():
            with pytest.raises(TransactionError) as info:
                kdbm.open(path, flag)
            assert not isinstance(info.value, OSError)
            with pytest.raises(TransactionError):
                kshelve.open(path, flag)
        with s.locked(), pytest.raises(TransactionError):
            kdbm.open(path, flag)
        assert s["k"] == 1  # nothing was emptied, whatever the flag
    with kdbm.open(path, "r") as db:  # and outside, the open works
        assert db.keys() == [b"k"]
