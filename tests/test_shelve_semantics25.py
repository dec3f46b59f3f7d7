"""kv_backend.shelve beside the stdlib's shelve, argument by argument (docs/store.md)."""

from __future__ import annotations

import array
import json

import kv_backend.shelve as kshelve


def test_a_serializer_may_return_any_bytes_like_object(tmp_path):
    """Python 3.15's shelve hands the serializer's result to the dbm as it is, and dbm.sqlite3 stores an
    array.array; this shelf refused one with InvalidValueError, as kv_backend.dbm refused it as a value."""

    def dumps(obj, protocol):
        return array.array("b", json.dumps(obj).encode())

    with kshelve.open(str(tmp_path / "s"), serializer=dumps, deserializer=json.loads) as sh:
        sh["a"] = [1, 2]
        sh.update(b={"x": 1})
        assert sh.setdefault("c", 3) == 3
    with kshelve.open(str(tmp_path / "s"), "r", serializer=dumps, deserializer=json.loads) as sh:
        assert dict(sh.items()) == {"a": [1, 2], "b": {"x": 1}, "c": 3}
        assert sh.dict[b"a"] == b"[1, 2]"
