"""A shelf's ``protocol`` may be any integer type, as the stdlib's takes it (pickle reads ``__index__``).

``kv_backend.shelve.open(path, protocol=numpy.int64(4))`` (a protocol read from an array, a config
library's own integer type) raised InvalidArgumentError, where the stdlib's shelve pickles with it.
"""

from __future__ import annotations

import pickle
import shelve

import pytest

import kv_backend.shelve as kv_shelve
from kv_backend.errors import ConfigurationError, InvalidArgumentError


class Integer:
    """An integer type that is not an int (as numpy.int64 is not)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


@pytest.mark.parametrize("n", [0, 2, pickle.HIGHEST_PROTOCOL, -1])
def test_an_integer_type_is_taken_as_its_int(tmp_path, n):
    with kv_shelve.open(str(tmp_path / "kv"), "c", protocol=Integer(n)) as shelf:
        shelf["x"] = {"a": [1]}
        stored = shelf.dict[b"x"]
        assert shelf["x"] == {"a": [1]}
    assert stored == pickle.dumps({"a": [1]}, n)
    with shelve.open(str(tmp_path / "std"), "c", protocol=Integer(n)) as std:
        std["x"] = {"a": [1]}  # (the stdlib takes it too)


def test_one_too_high_or_not_an_integer_is_still_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="<= "):
        kv_shelve.open(str(tmp_path / "kv"), "c", protocol=Integer(pickle.HIGHEST_PROTOCOL + 1))
    for bad in (2.0, "2", Integer):
        with pytest.raises(InvalidArgumentError, match="protocol must be an int"):
            kv_shelve.open(str(tmp_path / "kv"), "c", protocol=bad)
    assert not (tmp_path / "kv").exists()
