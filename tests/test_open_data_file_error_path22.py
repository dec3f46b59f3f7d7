"""An open that cannot open a data file names the file by its whole path.

It said "cannot open data file 0000000002-000.data: ..." with no store: in the log of a site or a
worker using several stores, nothing said which one. The line of kvb (and the error's message, and
so a management command's) now gives the path; and of a directory in a data file's place it says "Is a
directory", not the "No such device" that mapping it gave.
"""

from __future__ import annotations

import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.errors import StorageError


def test_a_data_file_that_cannot_be_opened_is_named_by_its_path(store_path, capsys):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(4):
            db.put(b"k%d" % i, b"v" * 3000)
    newest = sorted(n for n in os.listdir(store_path) if n.endswith(".data"))[-1]
    where = os.path.join(store_path, newest)
    os.unlink(where)
    os.mkdir(where)  # (a directory where the file was: no data file opens there)
    with pytest.raises(StorageError) as info:
        DB(store_path, read_only=True)
    # (the directory's mapping failed with "No such device", which said nothing of the cause)
    assert info.value.strerror == f"cannot open data file {where}: Is a directory.", info.value.strerror
    code, out, err = run(capsys, "stats", store_path)
    assert (code, out, err) == (2, "", f"kvb: cannot open data file {where}: Is a directory.\n")
