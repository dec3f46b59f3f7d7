"""``auto_merge=0`` turns automatic merging off, as None does, wherever an auto_merge is given.

A ``kvb://`` URL took ``auto_merge=0`` as off while ``DB``, ``Store``, ``Structures`` and the
Django OPTIONS refused 0, with an error ("a fraction between 0 and 1") that did not say how to
turn it off. 0 (a merge once no bytes are dead is no threshold) is off everywhere now, and the
error for another value names both ways.
"""

from __future__ import annotations

import pytest

from kv_backend import DB, ConfigurationError, Store
from kv_backend.structures import Structures


def _overwrite(db: DB) -> None:
    """2 MB written over one key in 256 KiB files: closed files nearly all dead, past auto_merge's
    floor, so a rotation with an auto_merge threshold starts a merge."""
    for _ in range(400):
        db.put(b"k", b"x" * 5000)


@pytest.mark.parametrize("off", [0, 0.0, None])
def test_db_takes_zero_as_no_auto_merge(tmp_path, off):
    with DB(str(tmp_path / "s"), auto_merge=off, max_file_size=1 << 18) as db:
        assert db.auto_merge is None
        _overwrite(db)
        assert db._merge_thread is None and db.stats()["files"] > 6


def test_the_same_writes_with_an_auto_merge_start_one(tmp_path):
    with DB(str(tmp_path / "s"), auto_merge=0.5, max_file_size=1 << 18) as db:
        _overwrite(db)
        thread = db._merge_thread
        assert thread is not None
        thread.join(30)


def test_store_and_structures_take_zero_as_no_auto_merge(tmp_path):
    with Store(str(tmp_path / "store"), auto_merge=0) as store:
        assert store.db.auto_merge is None
    structures = Structures(str(tmp_path / "structures"), auto_merge=0)
    try:
        assert structures.db.auto_merge is None
    finally:
        structures.close()


@pytest.mark.parametrize("bad", [1, 50, -0.5, 1.5, "0.5", True, float("nan")])
def test_a_bad_auto_merge_says_what_turns_it_off(tmp_path, bad):
    with pytest.raises(
        ConfigurationError, match=r"auto_merge must be a fraction between 0 and 1 .*None or 0 "
    ):
        DB(str(tmp_path / "s"), auto_merge=bad)
    assert not (tmp_path / "s").exists()
