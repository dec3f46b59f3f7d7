"""A plain ``Store`` imports only what it uses.

``import kv_backend`` imported ``dataclasses`` (with ``inspect``, ``ast``, ``dis``: for the dataclass of
a merge's report), ``logging`` (for the engine's rare warnings), ``json`` and ``inspect`` (for the JSON
serializer and for checking a serializer class), and ``decimal`` (to accept a ``Decimal`` ttl);
``kv_backend.shelve`` added ``hashlib`` (for the fingerprints of a writeback cache): about a fifth of
the package's import time, paid by every process that opens a pickle ``Store``. Each is now imported
at its first use, and every public name still works.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from decimal import Decimal

from helpers import run_python

from kv_backend import DB, Store

LEFT_OUT = ["ast", "dataclasses", "decimal", "dis", "hashlib", "inspect", "json", "logging"]


def test_a_pickle_store_and_a_shelf_import_none_of_them(tmp_path):
    out = run_python(
        f"""
        import json as _json_for_the_report, sys
        del sys.modules["json"]  # (this report's own use of it aside)
        import kv_backend, kv_backend.shelve

        with kv_backend.Store({str(tmp_path / "s")!r}) as store:
            store["k"] = {{"a": [1, 2.5]}}
            store.set("t", 1, ttl=60)
            assert store["k"] == {{"a": [1, 2.5]}} and dict(store.items(prefix="k")) == {{"k": store["k"]}}
        with kv_backend.shelve.open({str(tmp_path / "shelf")!r}, "c") as shelf:
            shelf["k"] = [1]
        print(_json_for_the_report.dumps(sorted(m for m in {LEFT_OUT!r} if m in sys.modules)))
        """
    ).stdout
    assert json.loads(out) == []


def test_the_merge_report_is_still_the_dataclass_of_kv_backend_merge(store_path):
    import kv_backend.merge
    from kv_backend.merge import MergeReport

    assert kv_backend.merge.MergeReport is MergeReport
    assert MergeReport.__module__ == "kv_backend.merge" and MergeReport.__qualname__ == "MergeReport"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.put(b"k", b"w")
        report = db.merge()
    assert type(report) is MergeReport and dataclasses.is_dataclass(report)
    assert dataclasses.asdict(report)["records_kept"] == 1
    assert pickle.loads(pickle.dumps(report)) == report
    assert "merged" in str(report)
    assert "MergeReport" in dir(kv_backend.merge)
    names: dict[str, object] = {}
    exec("from kv_backend.merge import *", names)
    assert names["MergeReport"] is MergeReport and names["merge"] is kv_backend.merge.merge


def test_what_moved_still_works_where_it_is_used(tmp_path):
    # (The engine's warnings, logged with logging imported at the first: test_lost_file_warning18.py.)
    # a Decimal ttl, a JSON store, a serializer class refused, a shelf's writeback cache
    with Store(tmp_path / "json", serializer="json") as store:
        store.set("k", [1], ttl=Decimal("60.5"))
        assert store["k"] == [1] and 59 < store.ttl("k") <= 60.5

    class Plain:
        def dumps(self, value):
            return b""

        def loads(self, data):
            return None

    try:
        Store(tmp_path / "x", serializer=Plain)
    except ValueError as exc:
        assert "pass an instance" in str(exc)
    else:
        raise AssertionError("a serializer class was taken")
    import kv_backend.shelve

    with kv_backend.shelve.open(str(tmp_path / "shelf"), "c", writeback=True) as shelf:
        shelf["k"] = [1]
        shelf["k"].append(2)
    with kv_backend.shelve.open(str(tmp_path / "shelf"), "r") as shelf:
        assert shelf["k"] == [1, 2]
