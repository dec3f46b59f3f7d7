"""Store[key]'s inlined read answers only for a sound, current plain record; every other case reads
as the full path (DB.get) does: the same value, the same error, never another key's value."""

from __future__ import annotations

import os
import time

import pytest
from helpers import data_files, run_python
from hypothesis import given, settings
from hypothesis import strategies as st

from kv_backend import Store
from kv_backend.errors import CorruptionError, DatabaseClosedError
from kv_backend.serializers import DeserializationError


def _record_offset(path: str, needle: bytes) -> tuple[str, int]:
    """(data file, offset) of the first occurrence of ``needle`` in the store's data files."""
    for f in data_files(path):
        data = open(f, "rb").read()  # noqa: SIM115 - read at once
        pos = data.find(needle)
        if pos >= 0:
            return f, pos
    raise AssertionError(f"{needle!r} not in any data file")


def test_a_damaged_value_raises_and_neighbours_read(tmp_path):
    path = str(tmp_path / "s")
    with Store(path, serializer="raw") as s:
        s["a"] = b"value-of-a"
        s["b"] = b"value-of-b"
        assert s["a"] == b"value-of-a"  # served by the inlined read
    f, pos = _record_offset(path, b"value-of-a")
    with open(f, "r+b") as fh:
        fh.seek(pos)
        fh.write(b"V")
    with Store(path, serializer="raw") as s:
        with pytest.raises(CorruptionError):
            s["a"]
        assert s["b"] == b"value-of-b"


def test_a_key_directory_entry_pointing_at_another_key_raises(tmp_path):
    """The key check: a sound record of another key (as a damaged hint entry would give) is not returned."""
    with Store(str(tmp_path / "s"), serializer="raw") as s:
        s["a"] = b"A"
        s["b"] = b"B"
        kd = s.db._view[0]
        kd[b"a"] = kd[b"b"]
        with pytest.raises(CorruptionError):
            s["a"]
        assert s["b"] == b"B"


def test_expired_records_and_batches(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.set("short", 1, ttl=0.05)
        s.set("long", 2, ttl=3600)
        with s.batch() as b:
            b["batched"] = [3]
        assert s["short"] == 1 and s["long"] == 2 and s["batched"] == [3]
        time.sleep(0.1)
        with pytest.raises(KeyError):
            s["short"]
        assert s["long"] == 2 and s["batched"] == [3]


def test_another_process_writes_and_merges_between_reads(tmp_path):
    path = str(tmp_path / "s")
    with Store(path, max_file_size=4096) as s:
        for i in range(200):
            s[f"k{i}"] = i
        assert s["k5"] == 5
        run_python(
            """
            import sys
            from kv_backend import Store
            with Store(sys.argv[1], max_file_size=4096) as s:
                for i in range(200):
                    s[f"k{i}"] = -i
                for i in range(0, 200, 2):
                    del s[f"k{i}"]
                s.db.merge()
            """,
            path,
        )
        for i in range(200):
            if i % 2:
                assert s[f"k{i}"] == -i
            else:
                with pytest.raises(KeyError):
                    s[f"k{i}"]


def test_after_close_every_key_raises_the_closed_error(tmp_path):
    s = Store(str(tmp_path / "s"))
    s["a"] = 1
    s.close()
    for key in ("a", "absent", "", "x" * 100_000, "\udcff"):
        with pytest.raises(DatabaseClosedError):
            s[key]


def test_an_undecodable_value_raises_deserialization_error(tmp_path):
    with Store(str(tmp_path / "s"), serializer="raw") as raw:
        raw["a"] = b"not a pickle"
    with Store(str(tmp_path / "s")) as s, pytest.raises(DeserializationError):
        s["a"]


def test_bytes_keys_and_str_subclasses_take_the_full_path(tmp_path):
    class Name(str):
        pass

    with Store(str(tmp_path / "s")) as s:
        s["k"] = 1
        assert s[Name("k")] == 1
    with Store(str(tmp_path / "b"), key_type=bytes) as b:
        b[b"k"] = 2
        assert b[b"k"] == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "del", "batch"]), st.integers(0, 15), st.integers()), max_size=40
    )
)
def test_inlined_and_full_reads_agree(tmp_path_factory, ops):
    path = str(tmp_path_factory.mktemp("agree") / "s")
    model: dict[str, int] = {}
    with Store(path, max_file_size=4096) as s:
        for op, k, v in ops:
            key = f"key{k}"
            if op == "put":
                s[key] = v
                model[key] = v
            elif op == "del":
                s.pop(key, None)
                model.pop(key, None)
            else:
                with s.batch() as b:
                    b[key] = v
                model[key] = v
        for k in range(16):
            key = f"key{k}"
            if key in model:
                assert s[key] == s._getitem(key) == model[key]
            else:
                for read in (s.__getitem__, s._getitem):
                    with pytest.raises(KeyError):
                        read(key)
    assert os.path.isdir(path)


@pytest.mark.parametrize("commit", [False, True])
def test_a_read_paused_before_another_threads_transaction_never_returns_its_writes(tmp_path, commit):
    """The inlined read passed its check, then another thread's transaction wrote the key: the
    record it finds carries the batch flag, so it reads again by the full path, which waits."""
    from test_transactions_race10 import _pause_lookups, _race

    with Store(str(tmp_path / "s")) as s:
        s["k"] = "old"
        pauser = _pause_lookups(s.db, b"k")
        got = _race(s.db, pauser, lambda: s["k"], lambda: s.__setitem__("k", "new"), commit)
        assert got == ("new" if commit else "old")
        assert s["k"] == got
