"""A backup of a store of more data files than the soft limit of open files: the store opens with no
descriptor per file, but the backup's snapshot holds one per data and hint file, so it failed with
EMFILE. The snapshot now raises the soft limit to the hard one and tries again (#5). (Where maps keep no
descriptor, the snapshot holds few: these run as where they keep one, see test_backup_snapshot_maps19.)"""

from __future__ import annotations

import resource

import pytest
from helpers import run_python

from kv_backend import DB

_CHILD = """
import resource, sys
import kv_backend.snapshot
from kv_backend import DB
from kv_backend.backup import restore
from kv_backend.errors import StorageError
soft, hard = int(sys.argv[3]), int(sys.argv[4])
kv_backend.snapshot.MAPS_HOLD_FD = sys.argv[5] == "fds"  # (a descriptor per file, as where maps keep one)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
with DB(sys.argv[1]) as db:
    try:
        report = db.backup(sys.argv[2])
    except StorageError as exc:
        print("refused", exc.errno)
    else:
        print("copied", report.files_copied, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        restore(sys.argv[2], sys.argv[1] + "-restored")
        with DB(sys.argv[1] + "-restored", read_only=True) as copy:
            print("restored", len(copy))
"""


@pytest.fixture
def many_files(tmp_path):
    path = str(tmp_path / "store")
    with DB(path, max_file_size=4096) as db:
        for i in range(3000):
            db.put(b"k%05d" % i, b"v" * 100)
        db.merge()  # (a hint file for each merged data file)
        for i in range(3000, 3400):
            db.put(b"k%05d" % i, b"v" * 100)
    return path


def test_the_soft_limit_is_raised_to_the_hard_one(many_files, tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard limit of open files here ({hard}) is too low for this test")
    out = run_python(_CHILD, many_files, f"file://{tmp_path / 'bk'}", "64", "1024", "fds").stdout.split()
    assert out[0] == "copied" and int(out[1]) > 64 and int(out[2]) == 1024, out
    assert out[3:] == ["restored", "3400"], out


def test_without_room_under_the_hard_limit_the_backup_fails_cleanly(many_files, tmp_path):
    out = run_python(_CHILD, many_files, f"file://{tmp_path / 'bk'}", "64", "64", "fds").stdout.split()
    assert out == ["refused", "24"], out  # EMFILE, as a StorageError naming the store
