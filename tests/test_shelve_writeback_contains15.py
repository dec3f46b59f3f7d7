"""``key in shelf`` for a writeback shelf's cached entry that another process deleted (#4).

A shelf with ``writeback=True`` serves a cached entry from its cache until
``sync()`` (``shelf[key]``, ``get``, and ``del``, which succeeds), even once another
process has deleted the key; but ``key in shelf`` looked at the database only and
said False, so ``if key in shelf`` and ``shelf[key]`` disagreed about one key.
(The stdlib's shelf has this inconsistency, and its ``get`` follows ``in``, where the
database changes underneath it, through ``shelf.dict``.) ``in`` now agrees with the
reads; after ``sync()`` the entry is gone unless this process changed it.
"""

from __future__ import annotations

import pytest

import kv_backend.shelve as kv_shelve


def test_a_cached_entry_another_process_deleted_is_present_until_sync(tmp_path):
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path) as setup:
        setup.update({"read": [1], "changed": [2]})
    with kv_shelve.open(path, writeback=True) as ours:
        assert ours["read"] == [1] and ours["changed"] == [2]  # now cached
        ours["changed"].append(3)
        with kv_shelve.open(path) as other:  # another handle, as another process's
            del other["read"], other["changed"]
        for key, value in (("read", [1]), ("changed", [2, 3])):
            assert key in ours
            assert ours[key] == value and ours.get(key) == value
            assert key in ours.keys()  # noqa: SIM118 - the keys view's own __contains__
        ours.sync()
        assert "read" not in ours and ours.get("read") is None  # only read: not written back
        assert "changed" in ours and ours["changed"] == [2, 3]  # changed: written back


def test_without_writeback_in_follows_the_database(tmp_path):
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path) as ours, kv_shelve.open(path) as other:
        ours["k"] = 1
        assert ours["k"] == 1
        del other["k"]
        assert "k" not in ours and ours.get("k") is None


@pytest.mark.parametrize("use", ["in", "getitem", "get"])
def test_after_a_close_whose_write_back_failed_reads_raise(tmp_path, use):
    """The cache survived a close() whose write-back raised, and served reads on the closed shelf."""
    shelf = kv_shelve.open(str(tmp_path / "shelf"), writeback=True)
    shelf["k"] = [1]
    shelf["k"].append(lambda: None)  # cached, and no longer picklable
    with pytest.raises(TypeError):
        shelf.close()
    read = {"in": lambda: "k" in shelf, "getitem": lambda: shelf["k"], "get": lambda: shelf.get("k")}[use]
    with pytest.raises(ValueError, match="closed shelf"):
        read()
    with kv_shelve.open(str(tmp_path / "shelf"), "r") as again:
        assert again["k"] == [1]  # what was stored before stays
