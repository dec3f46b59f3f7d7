"""What docs/store.md says of dict keys that JSON turns into the same string (#4).

``{1: "a", "1": "b"}`` stored with the JSON serializer comes back as
``{"1": "b"}``: JSON object keys are strings, both keys are written as ``"1"``,
and reading keeps the later one without an error. The docs said only that
non-str keys come back as strings, which hid the loss.
"""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.serializers import JSONSerializer, SerializationError


@pytest.mark.parametrize(
    ("value", "read_back"),
    [
        ({1: "a", "1": "b"}, {"1": "b"}),
        ({"1": "b", 1: "a"}, {"1": "a"}),
        ({None: 1, "null": 2}, {"null": 2}),
        ({True: 1, "true": 2}, {"true": 2}),
    ],
)
def test_keys_that_become_one_string_keep_the_later(tmp_path, value, read_back):
    with Store(str(tmp_path / "s"), serializer="json") as s:
        s["k"] = value
        assert s["k"] == read_back


def test_sorted_keys_refuse_a_dict_mixing_key_types(tmp_path):
    with Store(str(tmp_path / "s"), serializer=JSONSerializer(sort_keys=True)) as s:
        with pytest.raises(SerializationError):
            s["k"] = {1: "a", "1": "b"}
        assert "k" not in s
