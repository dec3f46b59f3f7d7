"""``verify_backups`` and ``kvb backups --verify`` on an S3-protocol server (moto's, through s3fs): an
object changed in place, one deleted, and one cut short are each found, named with the backups that
share them, while the sound backups verify ok."""

from __future__ import annotations

import json

from helpers import run_kvb
from test_backup_s3 import s3, s3_server

from kv_backend import DB
from kv_backend.backup import verify_backups

__all__ = ["s3", "s3_server"]  # (fixtures)


def test_verify_on_s3_finds_each_kind_of_damage(s3, store_path):
    url, options, fs = s3
    with DB(store_path, max_file_size=4096) as db:
        for i in range(300):  # five data files: the first three closed, shared by both backups
            db.put(b"k%03d" % i, b"x" * 50)
        db.backup(url, name="one", **options)
        db.put(b"later", b"1")
        db.backup(url, name="two", **options)
    report = verify_backups(url, **options)
    assert report.ok and [str(b) for b in report.backups] == ["one  ok", "two  ok"]

    files = json.loads(fs.cat_file(f"{url}/backups/one.json"))["files"]
    rotten, gone, cut = (f"{url}/{e['stored_as']}" for e in files[:3])
    data = bytearray(fs.cat_file(rotten))
    data[100] ^= 0x01
    fs.pipe_file(rotten, bytes(data))
    fs.rm_file(gone)
    fs.pipe_file(cut, fs.cat_file(cut)[:-1])
    report = verify_backups(url, **options)
    found = {d.where: (d.problem, d.backups) for d in report.damaged_objects}
    assert found == {
        rotten: ("sha256 mismatch", ["one", "two"]),
        gone: ("missing", ["one", "two"]),
        cut: (f"size {files[2]['size'] - 1}, expected {files[2]['size']}", ["one", "two"]),
    }
    assert [b.status for b in report.backups] == ["damaged", "damaged"]

    argv = [f"--storage-option={k}={json.dumps(v)}" for k, v in options.items()]
    out = run_kvb("backups", url, "--verify", *argv)
    assert out.returncode == 1, out.stderr
    assert out.stdout.splitlines()[0].startswith("one  DAMAGED: object files/")
    assert f"delete {rotten}, then back up again" in out.stderr
