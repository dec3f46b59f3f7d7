"""A backup to, restore from, or listing of a local or memory backup URL imports no S3 driver.

Checking the storage options of the URL's filesystem imported aiobotocore (and s3fs) whatever the
URL, to see whether the filesystem was s3fs's: half a second of each ``kvb backup``, ``kvb restore``,
``kvb backups`` or ``kvb prune`` to a local directory (0.8 s where 0.2 s remain), and prune imported
them to look for S3's incomplete uploads. Where the filesystem is s3fs's, s3fs is imported already
(tests/test_backup_s3_options18.py and tests/test_backup_s3_uploads18.py check those paths).
"""

from __future__ import annotations

import json

import pytest
from helpers import run_python

DRIVERS = ("s3fs", "aiobotocore", "botocore")


@pytest.mark.parametrize("scheme", ["", "file://", "memory://"])
def test_local_and_memory_backups_import_no_s3_driver(tmp_path, scheme):
    url = f"{scheme}{tmp_path / 'backups'}"
    out = run_python(
        f"""
        import json, sys
        from kv_backend import DB
        from kv_backend.backup import list_backups, prune_backups, restore

        with DB({str(tmp_path / "store")!r}) as db:
            db.put(b"k", b"v")
            db.backup({url!r}, name="one")
            db.backup({url!r}, name="two")
        names = [i.name for i in list_backups({url!r})]
        restore({url!r}, {str(tmp_path / "restored")!r})
        pruned = prune_backups({url!r}, keep=1)
        with DB({str(tmp_path / "restored")!r}, read_only=True) as db:
            got = db[b"k"].decode()
        print(json.dumps([names, pruned, got, [m for m in {DRIVERS!r} if m in sys.modules]]))
        """
    )
    names, pruned, got, drivers = json.loads(out.stdout)
    assert sorted(names) == ["one", "two"] and pruned == ["one"] and got == "v"
    assert drivers == []
