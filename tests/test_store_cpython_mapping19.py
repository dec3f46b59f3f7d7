"""CPython's own mapping-protocol tests (``test.mapping_tests``) on Store, the shelf and dbm objects (#4).

``tests/test_shelve_cpython_suite.py`` runs them on shelves the stdlib's ``shelve.open`` makes through
``kv_backend.dbm``; here they run on the objects this project makes itself: a ``Store`` of each key
type and serializer, a ``kv_backend.shelve`` shelf with and without writeback, and a
``kv_backend.dbm`` database. Each mapping is a new store in the test's own directory.
The ``test`` package ships with CPython but some distributions leave it out: then this module
is skipped (and fails under CI).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import Store

try:
    from test import mapping_tests
except ImportError as exc:  # e.g. Debian without libpython3-testsuite
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"CPython's test package is not installed ({exc})", allow_module_level=True)


class _Stores:
    """Makes each new mapping a new store under a directory of the test's own, closed after it."""

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="kvb-mapping-")
        self.addCleanup(tmp.cleanup)
        self._dir, self._made = tmp.name, 0

    def _new_path(self) -> str:
        self._made += 1
        return os.path.join(self._dir, f"m{self._made}")

    def _keep(self, mapping):
        self.addCleanup(mapping.close)
        return mapping


class TestStorePickle(_Stores, mapping_tests.BasicTestMappingProtocol):
    def _empty_mapping(self):
        return self._keep(Store(self._new_path()))


class TestStoreJSON(_Stores, mapping_tests.BasicTestMappingProtocol):
    def _reference(self):
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}  # (JSON gives a tuple back as a list)

    def _empty_mapping(self):
        return self._keep(Store(self._new_path(), "json"))


class TestStoreBytesKeys(_Stores, mapping_tests.BasicTestMappingProtocol):
    def _reference(self):
        return {b"1": b"2", b"key1": b"value1", b"key2": b"\x00\xff"}

    def _empty_mapping(self):
        return self._keep(Store(self._new_path(), "raw", key_type=bytes))


class TestShelf(_Stores, mapping_tests.BasicTestMappingProtocol):
    def _empty_mapping(self):
        return self._keep(kv_shelve.open(self._new_path()))


class TestShelfWriteback(_Stores, mapping_tests.BasicTestMappingProtocol):
    def _empty_mapping(self):
        return self._keep(kv_shelve.open(self._new_path(), writeback=True))


class _ComparedAsMappings(kv_dbm.Database):
    """A database compared with ``==`` by its items. The tests compare two empty databases, which a
    ``Database`` answers by identity, as a ``dbm.gnu`` object does (docs/store.md); every other
    check runs on the class itself."""

    __eq__ = Mapping.__eq__
    __hash__ = None  # type: ignore[assignment]


class TestDbm(_Stores, mapping_tests.BasicTestMappingProtocol):
    def _reference(self):
        return {b"1": b"2", b"key1": b"value1", b"key2": b"\x00\xff"}

    def _empty_mapping(self):
        opened = kv_dbm.open(self._new_path(), "c")
        return self._keep(_ComparedAsMappings(opened.db, opened.flag))


def test_a_database_is_equal_only_to_itself_as_the_docs_say(tmp_path):
    with kv_dbm.open(str(tmp_path / "a"), "c") as a, kv_dbm.open(str(tmp_path / "b"), "c") as b:
        assert a != b and a == a
