"""Store's yes/no arguments take True or False only: a truthy "no" from a config file meant yes.

s.keys(reverse="no") failed only once iterated (in the engine), while reversed() of that view walked
forwards (it flipped "no" to False before the engine saw it) and len() answered; JSONSerializer
(sort_keys="no") sorted the keys.
"""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import InvalidArgumentError
from kv_backend.serializers import JSONSerializer


@pytest.mark.parametrize("view", ["keys", "items", "values"])
@pytest.mark.parametrize("reverse", ["no", "false", 1, 0, None])
def test_a_view_refuses_a_reverse_that_is_not_a_bool(tmp_path, view, reverse):
    with Store(str(tmp_path / "s")) as s:
        s.update({"a": 1, "b": 2})
        with pytest.raises(InvalidArgumentError, match="reverse must be True or False"):
            getattr(s, view)(reverse=reverse)
        assert list(reversed(getattr(s, view)(reverse=False))) == list(getattr(s, view)(reverse=True))


@pytest.mark.parametrize("sort_keys", ["no", 1, None])
def test_json_serializer_refuses_a_sort_keys_that_is_not_a_bool(tmp_path, sort_keys):
    with pytest.raises(InvalidArgumentError, match="sort_keys must be True or False"):
        JSONSerializer(sort_keys=sort_keys)
    with Store(str(tmp_path / "s"), JSONSerializer(sort_keys=False)) as s:
        s["d"] = {"b": 1, "a": 2}
        assert s.db.get(b"d") == b'{"b":1,"a":2}'
