"""Backups and restores: more edge cases found by review (foreign files, URLs, restore targets)."""

from __future__ import annotations

import errno
import os
import pathlib
import time
import uuid

import fsspec
import pytest

import kv_backend.backup as kvbackup
from kv_backend import DB, BackupError, ConfigurationError
from kv_backend.backup import list_backups, prune_backups, restore


@pytest.fixture
def url(backup_url):
    """A fresh backup URL of each kind (conftest's ``backup_url``)."""
    return backup_url


def stored(url: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(url)
    return sorted(os.path.basename(p) for p in fs.find(f"{root}/files"))


def test_prune_leaves_other_programs_files_alone(url, store_path):
    """The URL may be shared (a bucket's root, a home directory): prune deletes only what backups wrote."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/files/holiday.jpg", b"a photo")
    fs.pipe_file(f"{root}/files/0000000001-000.data", b"someone else's store file")
    fs.pipe_file(f"{root}/pending/settings.json", b'{"theme": "dark"}')
    assert prune_backups(url, keep=0) == ["one"]
    assert stored(url) == ["0000000001-000.data", "holiday.jpg"]
    assert fs.cat_file(f"{root}/pending/settings.json") == b'{"theme": "dark"}'


def test_a_journal_that_is_not_a_json_object_is_ignored(url, store_path, tmp_path):
    """pending/ may hold JSON that is no journal (a list, a number): backups and prune carry on."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
        fs, root = fsspec.core.url_to_fs(url)
        fs.pipe_file(f"{root}/pending/list.json", b"[1, 2]")
        fs.pipe_file(f"{root}/pending/number.json", b"7")
        db.put(b"k", b"w")
        assert db.backup(url, name="two").files_copied == 1
    assert prune_backups(url, keep=1) == ["one"]
    restore(url, tmp_path / "r")
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert db[b"k"] == b"w"


@pytest.mark.parametrize(
    "typo", ["s3:/bucket/kv", "s3:bucket/kv", "memory:/kv", "gcs:/b/kv", "file://", "local://"]
)
def test_a_url_fsspec_would_take_for_a_local_directory_is_refused(typo, store_path, tmp_path, monkeypatch):
    """One slash too few must not turn an off-site backup into a local directory named 's3:'."""
    monkeypatch.chdir(tmp_path)
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(ConfigurationError, match=r"write |names no directory"):
            db.backup(typo)
    with pytest.raises(ConfigurationError):
        list_backups(typo)
    with pytest.raises(ConfigurationError):
        prune_backups(typo, keep=1)
    with pytest.raises(ConfigurationError):
        restore(typo, tmp_path / "r")
    assert sorted(os.listdir(tmp_path)) == ["store"]  # nothing was created next to it


def test_local_paths_with_a_colon_and_file_urls_still_work(store_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup("./s3:/bucket", name="a")
        db.backup(f"file:{tmp_path}/plain", name="b")
        # (fsspec makes simplecache's default cache directory in TMPDIR and removes it only when this
        # process exits, which pytest-xdist may cut short: the cache is given a place here.)
        cache = {"cache_storage": str(tmp_path / "simplecache")}
        db.backup(f"simplecache::file://{tmp_path}/cached", name="c", simplecache=cache)
        db.backup(pathlib.Path("s3:/bucket"), name="d")  # a path object is a local path
    assert [b.name for b in list_backups(str(tmp_path / "s3:" / "bucket"))] == ["a", "d"]
    assert [b.name for b in list_backups(str(tmp_path / "plain"))] == ["b"]
    assert [b.name for b in list_backups(str(tmp_path / "cached"))] == ["c"]


def test_restore_into_a_link_to_an_empty_directory(store_path, tmp_path):
    """/srv/kv -> /data/kv (empty): the store lands in /data/kv and the link keeps pointing there."""
    url = f"file://{tmp_path / 'bk'}"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kv").mkdir()
    link = tmp_path / "kv"
    link.symlink_to(tmp_path / "data" / "kv")
    report = restore(url, link)
    assert report.path == str(link) and report.records == 1
    assert link.is_symlink()
    with DB(str(link), read_only=True) as db:
        assert db[b"k"] == b"v"
    assert sorted(os.listdir(tmp_path / "data")) == ["kv"]  # no temporary directory left anywhere
    assert sorted(os.listdir(tmp_path)) == ["bk", "data", "kv", "store"]
    # A link to a directory that is not empty, or to nothing, is still refused before any download.
    with pytest.raises(BackupError, match="not empty"):
        restore(url, link)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(BackupError, match=r"dangling is a symbolic link to .*nowhere, which does not exist"):
        restore(url, dangling)


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o2770])
def test_restore_into_an_empty_directory_keeps_its_permissions(mode, store_path, tmp_path):
    """An empty directory prepared for the store (private, or for a group) keeps its mode bits."""
    url = f"file://{tmp_path / 'bk'}"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url)
    dest = tmp_path / "kv"
    dest.mkdir()
    os.chmod(dest, mode)
    before = os.stat(dest)
    old = os.umask(0o022)
    try:
        restore(url, dest)
    finally:
        os.umask(old)
    after = os.stat(dest)
    assert after.st_mode & 0o7777 == mode
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    with DB(str(dest), read_only=True) as db:
        assert db[b"k"] == b"v"


def test_backup_to_a_disk_without_hard_links(store_path, tmp_path, monkeypatch):
    """FAT/exFAT USB drives and SMB shares refuse hard links (EPERM): backups to them must still work."""

    def no_links(src, dst, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", src, None, dst)

    monkeypatch.setattr(os, "link", no_links)
    url = f"file://{tmp_path / 'usb'}"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
        db.put(b"k", b"w")
        assert db.backup(url).files_copied == 1
        with pytest.raises(BackupError, match="already exists"):
            db.backup(url, name="one")
        monkeypatch.setattr(kvbackup, "_manifest_names", lambda target: [])  # both saw the name free
        with pytest.raises(BackupError, match="another backup named 'one' completed"):
            db.backup(url, name="one")
    monkeypatch.undo()
    assert len(list_backups(url)) == 2
    assert not [n for n in os.listdir(tmp_path / "usb" / "backups") if n.startswith(".")]
    restore(url, tmp_path / "r", name="one")
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert db[b"k"] == b"v"


def test_a_failed_manifest_write_says_why(store_path, monkeypatch):
    """A full disk or a refused write of the manifest is reported as such, not as a name clash."""
    url = f"memory:///kvb-more8-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    real = type(fs).pipe_file

    def full(self, path, value, *args, **kwargs):
        if "/backups/" in path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, value, *args, **kwargs)

    monkeypatch.setattr(type(fs), "pipe_file", full)
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(BackupError, match="No space left on device") as info:
            db.backup(url, name="one")
    assert "another backup" not in str(info.value)
    monkeypatch.undo()
    assert list_backups(url) == []
    fs.rm(url[len("memory://") :], recursive=True)


def test_prune_removes_temporary_copies_a_killed_backup_left_once_they_are_old(tmp_path, store_path):
    """A backup killed while writing its manifest or journal leaves a hidden ``.<name>.<token>.tmp``;
    prune deletes such copies once they are PENDING_GRACE old, and nothing else."""
    root = tmp_path / "backups"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(str(root), name="one")
    (root / "pending").mkdir(exist_ok=True)
    old = time.time() - kvbackup.PENDING_GRACE - 60
    stale = [
        root / "backups" / ".two.json.0123456789ab.tmp",
        root / "pending" / ".abcdef.json.a1b2c3d4e5f6.tmp",
    ]
    fresh = root / "backups" / ".three.json.0123456789ab.tmp"
    foreign = root / "backups" / ".notes.tmp"
    for path in [*stale, fresh, foreign]:
        path.write_bytes(b"{")
    for path in [*stale, foreign]:
        os.utime(path, (old, old))
    assert prune_backups(str(root), keep=1) == []
    assert [p.exists() for p in stale] == [False, False]
    assert fresh.exists() and foreign.exists()
    assert [b.name for b in list_backups(str(root))] == ["one"]
    restore(str(root), tmp_path / "restored")
    with DB(tmp_path / "restored", read_only=True) as db:
        assert db[b"k"] == b"v"


def test_a_failed_restore_removes_the_parent_directories_it_created(tmp_path, store_path):
    """Restoring a damaged backup into a/b/c/store (a, b, c missing) failed and left a/b/c behind."""
    root = tmp_path / "bk"
    with DB(store_path) as db:
        db.put(b"k", b"v" * 100)
        db.backup(str(root), name="one")
    for obj in (root / "files").iterdir():  # damage every stored copy
        data = bytearray(obj.read_bytes())
        data[-1] ^= 0xFF
        obj.write_bytes(bytes(data))
    (tmp_path / "keep").mkdir()
    with pytest.raises(BackupError, match="damaged"):
        restore(str(root), tmp_path / "keep" / "a" / "b" / "c" / "store")
    assert os.listdir(tmp_path / "keep") == []  # a/b/c gone; the existing directory stays
