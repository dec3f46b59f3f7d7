"""The in-process Structures API: arguments of the wrong type raise the project's errors."""

from __future__ import annotations

import pytest

from kv_backend.errors import InvalidArgumentError
from kv_backend.structures import Structures


@pytest.fixture
def s(tmp_path):
    with Structures(str(tmp_path / "db")) as st:
        yield st


def test_zincrby_of_a_member_of_the_wrong_type_is_an_invalid_argument(s):
    """zincrby built a dict of the member: a list or dict member raised ``unhashable type``."""
    for member in ([1], {}, None):
        with pytest.raises(InvalidArgumentError):
            s.zincrby("z", 1, member)
    assert s.zincrby("z", 2, "m") == 2.0 and s.zincrby("z", 1.5, "m") == 3.5

