"""What docs/store.md says of kv_backend.shelve's DbfilenameShelf: the stdlib's class, storing with the
interpreter's dbm, where open() and KVShelf make a kv_backend store (#4)."""

from __future__ import annotations

import dbm

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve


def test_dbfilename_shelf_uses_the_interpreters_dbm_and_open_a_store(tmp_path):
    theirs, ours, direct = (str(tmp_path / name) for name in ("theirs", "ours", "direct"))
    with kshelve.DbfilenameShelf(theirs) as sh:
        sh["k"] = 1
    assert kdbm.whichdb(theirs) == dbm.whichdb(theirs) not in (None, "", "kv_backend.dbm")
    with kshelve.open(ours) as sh, kshelve.KVShelf(direct) as kv:
        sh["k"] = kv["k"] = 1
        assert type(sh) is type(kv) is kshelve.KVShelf
    assert kdbm.whichdb(ours) == kdbm.whichdb(direct) == "kv_backend.dbm"
