"""A read-only open of a store whose STATE page names a data file that newer files follow, with records
after its published end: a power failure kept records that ``sync="always"`` had fsynced and
acknowledged, and the rotation after them, but not the page that published them. The read-only open
read that file only up to the page's end, and every file after it whole: an acknowledged overwrite
there read as the older value, a key written there only was absent, with nothing reported (kvb check
and a writer's open keep those records, as docs/file-format.md, "The file before the active one",
says every reader does). It now reads on after that end as recovery keeps it; and a backup's snapshot
copied that file up to the page's end only, so that the restored store gave the older value.
"""

from __future__ import annotations

import os

from test_format_reader11 import read_store

from kv_backend import DB
from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.files import STATE_FILE, list_data_files


def _lagged(store_path: str) -> dict[bytes, bytes]:
    """The store as a power failure leaves it: records after the page's end, and a rotation; its contents."""
    state = os.path.join(store_path, STATE_FILE)
    with DB(store_path, max_file_size=4096) as db:  # (sync="always" fsyncs the same bytes)
        db.put(b"x", b"old")
        db.put(b"pad", b"p" * 2000)
        with open(state, "rb") as f:
            page = f.read()  # the page as the disk kept it
        db.put(b"x", b"new")
        with db.batch() as b:
            b.put(b"y", b"batch")
            b.delete(b"pad")
        db.put(b"pad2", b"q" * 3000)  # rotates: the next file holds records
        db.put(b"w", b"next file")
    assert len(list_data_files(store_path)) == 2
    with open(state, "wb") as f:
        f.write(page)
    return {b"x": b"new", b"y": b"batch", b"pad2": b"q" * 3000, b"w": b"next file"}


def test_a_page_a_power_failure_kept_behind_acknowledged_records_and_a_rotation(store_path):
    want = _lagged(store_path)
    assert {k: v[0] for k, v in read_store(store_path).items()} == want
    assert check(store_path).ok
    with DB(store_path, read_only=True) as reader:
        assert dict(reader.items()) == want
        assert reader.stats()["corrupt_records"] == 0
        with DB(store_path, max_file_size=4096) as db:  # its recovery rebuilds the page
            assert dict(db.items()) == want
            db.put(b"x", b"newer")
            db.put(b"pad3", b"r" * 3000)  # rotates again
        assert dict(reader.items()) == {**want, b"x": b"newer", b"pad3": b"r" * 3000}
        assert reader.stats()["corrupt_records"] == 0


def test_a_backup_of_such_a_store_copies_those_records(store_path, tmp_path):
    """The backup's snapshot copied the file the page names only up to the page's end, and the newer
    files whole: the restored store gave the older value."""
    want = _lagged(store_path)
    report = backup_store(store_path, (tmp_path / "backups").as_uri())
    assert report.damaged_records == 0
    restore((tmp_path / "backups").as_uri(), str(tmp_path / "restored"))
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert dict(db.items()) == want
