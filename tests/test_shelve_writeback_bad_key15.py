"""An unhashable key on a writeback shelf with cached entries (#4).

``shelf[[1]]``, ``shelf.get([1])`` and ``shelf.setdefault([1], 0)`` raised the
shelf's ``InvalidKeyError`` ("shelf keys must be str, not list") without
writeback, or with an empty cache, but a bare ``TypeError: unhashable type:
'list'`` from the cache lookup once the cache held an entry. They now raise the
same error in every case.
"""

from __future__ import annotations

import pytest

import kv_backend.shelve as kv_shelve
from kv_backend.errors import InvalidKeyError


@pytest.mark.parametrize("op", ["getitem", "get", "setdefault"])
@pytest.mark.parametrize("writeback", [False, True])
def test_an_unhashable_key_gets_the_shelf_error_whatever_is_cached(tmp_path, op, writeback):
    with kv_shelve.open(str(tmp_path / "shelf"), writeback=writeback) as shelf:
        shelf["a"] = 1  # cached, with writeback
        call = {
            "getitem": lambda: shelf[[1]],
            "get": lambda: shelf.get([1]),
            "setdefault": lambda: shelf.setdefault([1], 0),
        }
        with pytest.raises(InvalidKeyError, match="shelf keys must be str, not list"):
            call[op]()
        assert dict(shelf) == {"a": 1}
