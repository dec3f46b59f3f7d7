"""An object of a backup whose bytes changed in place (bit rot on the target, same size).

A backup skips a file whose object is present with the right size, without reading it: a damaged
object is shared by every later backup of the same data file. The restore's error says so, and how to
get a sound backup again: delete the object, and the next backup sends the file anew.
"""

from __future__ import annotations

import json
import os

import fsspec
import pytest

from kv_backend import DB, BackupError
from kv_backend.backup import restore


def test_a_rotten_object_says_later_backups_share_it_and_how_to_send_it_again(backup_url, tmp_path):
    store = str(tmp_path / "s")
    with DB(store, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"x" * 50)
        db.backup(backup_url, name="one")
        fs, root = fsspec.core.url_to_fs(backup_url)
        doc = json.loads(fs.cat_file(f"{root}/backups/one.json"))
        closed = doc["files"][0]  # the first data file: closed, so every later backup shares its object
        obj = f"{root}/{closed['stored_as']}"
        data = bytearray(fs.cat_file(obj))
        data[len(data) // 2] ^= 0x01  # same size: a later backup cannot tell without reading it
        fs.pipe_file(obj, bytes(data))

        db.put(b"later", b"1")
        two = db.backup(backup_url, name="two")
        assert two.files_skipped >= 1  # the damaged object was taken as present

        with pytest.raises(BackupError) as caught:
            restore(backup_url, str(tmp_path / "r1"))  # the newest, "two"
        message = str(caught.value)
        assert f"file {closed['name']} of backup two is damaged" in message
        assert "does not match the manifest" in message
        assert "later backups" in message and "reuse" in message
        assert f"delete {backup_url}/{closed['stored_as']}, then back up again" in message
        assert not (tmp_path / "r1").exists()

        # Following the advice: the next backup sends the file again and restores.
        fs.rm_file(obj)
        three = db.backup(backup_url, name="three")
        assert three.files_copied >= 1
    report = restore(backup_url, str(tmp_path / "r2"), name="three")
    assert report.records == 101
    with DB(str(tmp_path / "r2"), read_only=True) as copy:
        assert copy.get(b"later") == b"1"
        assert all(copy.get(b"k%03d" % i) == b"x" * 50 for i in range(100))
    assert os.path.isdir(tmp_path / "r2")
