"""Structures.sort(groups=True) with one get pattern given as a number (found by mypy --strict)."""

from __future__ import annotations

import pytest

from kv_backend.errors import InvalidArgumentError
from kv_backend.structures import Structures


@pytest.fixture
def s(store_path):
    st = Structures(store_path)
    yield st
    st.close()


@pytest.mark.parametrize("pattern", [5, 2.5, b"#", bytearray(b"#"), memoryview(b"#")])
def test_one_get_pattern_of_any_name_type_is_refused_with_the_projects_error(s, pattern):
    """A number is a name, so one GET pattern; sort(groups=True) raised a bare TypeError
    ("object of type 'int' has no len()") for it, where a str or bytes pattern got the message."""
    s.rpush("l", 2, 1)
    with pytest.raises(InvalidArgumentError, match="needs two get patterns or more"):
        s.sort("l", get=pattern, groups=True)


def test_two_patterns_from_any_iterable_group_the_values(s):
    s.rpush("l", 2, 1)
    s.mset({"w_1": "a", "w_2": "b"})
    expected = [(b"1", b"a"), (b"2", b"b")]
    assert s.sort("l", get=("#", "w_*"), groups=True) == expected
    assert s.sort("l", get=iter(["#", "w_*"]), groups=True) == expected  # as any other name list
