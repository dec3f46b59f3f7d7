"""Opening a store on a network filesystem warns (Linux, from /proc/self/mountinfo)."""

from __future__ import annotations

import os
import warnings

import pytest

from kv_backend import DB, NetworkFilesystemWarning, mounts

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:50 / /srv/shared rw,relatime shared:5 - nfs4 fileserver:/export rw,vers=4.2
41 40 8:2 / /srv/shared/local rw,relatime - xfs /dev/sdb1 rw
42 27 0:51 / /mnt/with\\040space rw - cifs //nas/share rw
43 27 0:52 / /home/me/remote rw - fuse.sshfs me@host:/data rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/var/lib/app", "ext4"),
        ("/srv/shared", "nfs4"),
        ("/srv/shared/app/cache", "nfs4"),
        ("/srv/shared/local/cache", "xfs"),  # the deepest mount wins
        ("/srv/sharedother", "ext4"),  # a prefix of the name is not a parent directory
        ("/mnt/with space/kv", "cifs"),
        ("/home/me/remote/kv", "fuse.sshfs"),
    ],
)
def test_filesystem_type_from_mountinfo(path, kind):
    assert mounts.filesystem_type(path, MOUNTINFO) == kind


def test_filesystem_type_without_proc(monkeypatch, tmp_path):
    monkeypatch.setattr(mounts, "MOUNTINFO", str(tmp_path / "missing"))
    assert mounts.filesystem_type(str(tmp_path)) is None


def test_a_store_on_a_network_filesystem_warns_once(monkeypatch, tmp_path):
    store = str(tmp_path / "store")
    os.makedirs(store)
    fake = tmp_path / "mountinfo"
    fake.write_text(f"27 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 27 0:50 / {tmp_path} rw - nfs4 srv:/x rw\n")
    monkeypatch.setattr(mounts, "MOUNTINFO", str(fake))
    monkeypatch.setattr(mounts, "_checked", set())
    with pytest.warns(NetworkFilesystemWarning, match="nfs4 filesystem.*local disk") as caught:
        DB(store).close()
    assert caught[0].filename == __file__  # points at the caller's DB(...) line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DB(store).close()  # once per path and process


def test_a_store_on_a_local_filesystem_does_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DB(str(tmp_path / "store")).close()
