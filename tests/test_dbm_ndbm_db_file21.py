"""A ``dbm.ndbm`` database kept in ``path.db`` is refused at ``path``, also by a Python without ``_dbm``.

The stdlib's ``dbm.whichdb`` recognises a ``path.db`` file (``dbm.ndbm`` on Berkeley DB: Debian's Python,
macOS's) only by opening it with ``dbm.ndbm``; an interpreter built without that module answers None,
"nothing there". ``kv_backend.shelve.open(path)`` then made a new, empty shelf beside a shelf that a
system Python had written there, without a word: the program saw its data gone. Such a file is now
recognised by its Berkeley DB header, refused with every flag (as ``dbm.dumb``'s files are) and left as
it is, and ``kv_backend.dbm.whichdb`` names it.
"""

from __future__ import annotations

import os
import subprocess

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve

#: The first bytes of a Berkeley DB hash file: version 2 and later (the magic at byte 12, as Linux's
#: Berkeley DB 5 writes it), and 1.85 (the magic first, as macOS's).
HEADERS = {
    "db5": bytes.fromhex("00000000010000000000000061150600090000000010000000080000"),
    "db185-big-endian": bytes.fromhex("0006156100000002000004d2") + bytes(16),
}


@pytest.mark.parametrize("header", list(HEADERS), ids=list(HEADERS))
@pytest.mark.parametrize("flag", ["c", "n", "w", "r"])
def test_a_berkeley_db_file_beside_the_path_is_refused(tmp_path, header, flag):
    path = tmp_path / "state"
    (tmp_path / "state.db").write_bytes(HEADERS[header] + bytes(4096))
    with pytest.raises(kv_dbm.error, match=r"is a dbm\.ndbm database"):
        kv_shelve.open(str(path), flag)
    with pytest.raises(kv_dbm.error, match=r"is a dbm\.ndbm database"):
        kv_dbm.open(str(path), flag)
    assert kv_dbm.whichdb(str(path)) == "dbm.ndbm"
    assert sorted(os.listdir(tmp_path)) == ["state.db"]  # nothing made, nothing touched


def test_another_file_named_like_it_does_not_stop_a_new_database(tmp_path):
    # An SQLite file (or any other) at path.db is no dbm database of path.
    (tmp_path / "app.db").write_bytes(b"SQLite format 3\x00" + bytes(4096))
    (tmp_path / "empty.db").write_bytes(b"")
    for name in ("app", "empty"):
        with kv_shelve.open(str(tmp_path / name)) as shelf:
            shelf["k"] = [1]
        assert kv_dbm.whichdb(str(tmp_path / name)) == "kv_backend.dbm"


def _python_with_ndbm() -> str | None:
    for python in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(python):
            probe = subprocess.run(
                [python, "-c", "import dbm.ndbm; print(dbm.ndbm.library)"], capture_output=True, text=True
            )
            if probe.returncode == 0 and "Berkeley" in probe.stdout:
                return python
    return None


def test_a_shelf_a_system_python_wrote_with_ndbm_is_refused(tmp_path):
    python = _python_with_ndbm()
    if python is None:
        pytest.skip("no other Python with a dbm.ndbm on Berkeley DB here")
    path = str(tmp_path / "state")
    subprocess.run(
        [
            python,
            "-c",
            f"import dbm.ndbm, shelve\nwith shelve.Shelf(dbm.ndbm.open({path!r}, 'c')) as s: s['k'] = 1",
        ],
        check=True,
    )
    assert os.listdir(tmp_path) == ["state.db"]
    with pytest.raises(kv_dbm.error, match=r"is a dbm\.ndbm database"):
        kv_shelve.open(path)
    assert os.listdir(tmp_path) == ["state.db"]
