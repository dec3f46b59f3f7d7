"""Names in a store's directory that only look like its files (#2)."""

from __future__ import annotations

import os

from kv_backend import DB
from kv_backend.files import parse_data_name


def test_a_data_file_name_with_a_line_break_at_its_end_is_not_a_data_file(store_path):
    """The data file pattern ended in ``$``, which also matches before a final line break: a stray
    ``0000000001-000.data\\n`` in the directory counted as the store's first data file a second time,
    and the next merge failed saying it could not open the merged files. It is any other file now."""
    assert parse_data_name("0000000001-000.data\n") is None
    assert parse_data_name("0000000001-000.data") == (1, 0)
    with DB(store_path) as db:
        for i in range(10):
            db.put(b"k%d" % i, b"v%d" % i)
    first = min(n for n in os.listdir(store_path) if n.endswith(".data"))
    with open(os.path.join(store_path, first + "\n"), "wb") as f:
        f.write(b"not a data file")
    with DB(store_path) as db:
        assert db.stats()["files"] == 1 and len(db) == 10
        db.put(b"x", b"y")
        db.merge()
        assert dict(db.items()) == {**{b"k%d" % i: b"v%d" % i for i in range(10)}, b"x": b"y"}
    assert os.path.exists(os.path.join(store_path, first + "\n"))  # left as it was
