"""CPython's own shelve mapping tests, run on shelves stored by kv_backend.dbm.

``test.test_shelve`` builds its file-backed mapping tests from a dbm module
(``TestShelveFileBase`` + ``mapping_tests.BasicTestMappingProtocol``): here the
stdlib ``shelve.open`` creates every shelf through ``kv_backend.dbm``, so the
stdlib's own expectations of a shelf (every mapping method, every pickle
protocol) are checked against our storage. The ``test`` package ships with
CPython but some distributions leave it out: then this module is skipped
(and fails under CI).
"""

from __future__ import annotations

import os
import pickle

import pytest

import kv_backend.dbm

try:
    from test import mapping_tests, test_shelve
except ImportError as exc:  # e.g. Debian without libpython3-testsuite
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"CPython's test package is not installed ({exc})", allow_module_level=True)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CPython tests create their files under the current directory


for _proto in range(pickle.HIGHEST_PROTOCOL + 1):
    _name = f"TestProto{_proto}KVDbmShelve"
    globals()[_name] = type(
        _name,
        (test_shelve.TestShelveFileBase, mapping_tests.BasicTestMappingProtocol),
        {"dbm_mod": kv_backend.dbm, "_args": {"protocol": _proto}},
    )


class TestShelveKVDbm(test_shelve.TestCase):
    """CPython's shelve.open tests, with kv_backend.dbm as the dbm that new shelves are created with."""

    def setUp(self):
        super().setUp()
        self.addCleanup(setattr, test_shelve.dbm, "_defaultmod", test_shelve.dbm._defaultmod)
        test_shelve.dbm._defaultmod = kv_backend.dbm


def test_the_shelves_are_kv_backend_stores(tmp_path):
    import dbm
    import shelve

    old = dbm._defaultmod
    dbm._defaultmod = kv_backend.dbm
    try:
        with shelve.open(str(tmp_path / "s")) as s:
            s["k"] = [1]
    finally:
        dbm._defaultmod = old
    assert kv_backend.dbm.whichdb(str(tmp_path / "s")) == "kv_backend.dbm"
