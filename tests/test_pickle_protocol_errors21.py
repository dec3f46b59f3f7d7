"""A bad pickle protocol raises the same errors through ``PickleSerializer`` and through a shelf.

``PickleSerializer(protocol="2")`` raised a ConfigurationError that is no ``TypeError``, where a shelf
(and pickle itself, and so the stdlib's shelve) raise one; and ``PickleSerializer`` refused an integer
of another type (numpy's) that a shelf and pickle take. Both now check a protocol as pickle does, with
pickle's exceptions (which the project's errors subclass), raised before anything is created.
"""

from __future__ import annotations

import pickle
import shelve

import pytest

import kv_backend.shelve as kv_shelve
from kv_backend import Store
from kv_backend.errors import ConfigurationError, InvalidArgumentError
from kv_backend.serializers import PickleSerializer


class Integer:
    """An integer type that is not an int (as numpy.int64 is not)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Integer({self.n})"


def _pickles_error(protocol: object) -> type[Exception]:
    try:
        pickle.dumps(1, protocol)  # type: ignore[arg-type]
    except Exception as exc:
        return type(exc)
    raise AssertionError(f"pickle took protocol {protocol!r}")


@pytest.mark.parametrize(
    ("protocol", "error"),
    [
        (pickle.HIGHEST_PROTOCOL + 1, ConfigurationError),
        (Integer(99), ConfigurationError),
        ("2", InvalidArgumentError),
        (2.0, InvalidArgumentError),
        (object(), InvalidArgumentError),
    ],
    ids=["too-high", "too-high-index", "str", "float", "object"],
)
def test_both_front_ends_raise_one_error_that_is_pickles_own(tmp_path, protocol, error):
    with pytest.raises(error) as from_serializer:
        PickleSerializer(protocol)
    with pytest.raises(error) as from_shelf:
        kv_shelve.open(str(tmp_path / "shelf"), "c", protocol)
    assert type(from_serializer.value) is type(from_shelf.value) is error
    assert str(from_serializer.value) == str(from_shelf.value)
    assert "pickle protocol must be" in str(from_shelf.value)
    # Code written for pickle (or the stdlib's shelve, which pickles with it) catches it too.
    assert isinstance(from_shelf.value, _pickles_error(protocol))
    assert isinstance(from_shelf.value, ConfigurationError)  # as every other bad option
    assert not (tmp_path / "shelf").exists()


@pytest.mark.parametrize("n", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_the_serializer_takes_an_integer_type_as_a_shelf_does(tmp_path, n):
    with Store(str(tmp_path / "s"), PickleSerializer(Integer(n))) as store:
        store["x"] = {"a": [1]}
        assert store.db[b"x"] == pickle.dumps({"a": [1]}, n)
        assert type(store.serializer.protocol) is int and store.serializer.protocol == n
    assert repr(PickleSerializer(Integer(n))) == f"PickleSerializer(protocol={n})"


def test_a_bool_is_a_protocol_for_a_shelf_as_for_the_stdlib_but_not_for_the_serializer(tmp_path):
    # shelve.open(path, "c", True) pickles with protocol 1 in the stdlib: a shelf does the same.
    with (
        kv_shelve.open(str(tmp_path / "kv"), "c", True) as shelf,
        shelve.open(str(tmp_path / "std"), "c", True) as std,
    ):
        shelf["x"] = std["x"] = (1, 2)
        assert shelf.dict[b"x"] == pickle.dumps((1, 2), 1)
    with pytest.raises(InvalidArgumentError, match=r"pickle protocol must be an int .* not True"):
        PickleSerializer(True)
