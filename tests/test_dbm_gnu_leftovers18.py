"""kv_backend.dbm and dbm.gnu: the module's ``open_flags``, and ``nextkey()`` of a key not in the database."""

from __future__ import annotations

import pytest

import kv_backend.dbm as kdbm


def test_the_module_lists_its_flag_characters_as_dbm_gnu_does(tmp_path):
    """``dbm.gnu.open_flags`` lists the characters its ``open`` takes; the module had no such name."""
    assert kdbm.open_flags == "rwcnfsu" and "open_flags" in kdbm.__all__
    path = str(tmp_path / "d")
    for first in "cwnr":
        for modifier in ["", *kdbm.open_flags[4:]]:
            kdbm.open(path, first + modifier).close()  # each listed character is taken
    with pytest.raises(ValueError):
        kdbm.open(path, "cx")


def test_a_walk_goes_on_past_a_key_deleted_under_it(tmp_path):
    """A firstkey()/nextkey() walk that deletes the key it is at (or meets one another process
    deleted) goes on from where the key was; dbm.gnu's nextkey() gives None there."""
    with kdbm.open(str(tmp_path / "d"), "c") as db:
        for k in (b"a", b"b", b"c", b"d"):
            db[k] = b"v"
        seen = []
        k = db.firstkey()
        while k is not None:
            seen.append(k)
            del db[k]
            k = db.nextkey(k)
        assert seen == [b"a", b"b", b"c", b"d"] and len(db) == 0
        db[b"m"] = b"v"
        assert db.nextkey(b"a") == b"m" and db.nextkey(b"") == b"m" and db.nextkey(b"m") is None
