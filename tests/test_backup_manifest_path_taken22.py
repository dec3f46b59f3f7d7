"""A directory (or a symbolic link to nothing) where a backup's manifest goes, ``backups/NAME.json``.

A backup named NAME listed no manifest of that name (a listing shows files only), sent every file of
the store, then failed at its manifest with "another backup named 'NAME' completed at URL meanwhile",
which no listing showed. It now fails before anything is sent, with a BackupError naming the path and
saying to move it or choose another name; a backup given no name takes the next free suffix. On an
object store a key and a prefix of one name live side by side: nothing is refused there.
"""

from __future__ import annotations

import os

import fsspec
import pytest
from test_backup_s3 import s3, s3_server  # noqa: F401 - the moto server and a fresh bucket
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

import kv_backend.backup as backup_module
from kv_backend import DB, BackupError
from kv_backend.backup import BackupExistsError, backup_store, list_backups, prune_backups, restore


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "store")
    with DB(path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"key-%03d" % i, b"value-%03d-" % i * 8)
    return path


def sent(url: str) -> list[str]:
    """Every file under the backup URL (a directory)."""
    return sorted(os.path.relpath(os.path.join(d, f), url) for d, _, fs in os.walk(url) for f in fs)


@pytest.mark.parametrize("kind", ["directory", "dangling link"])
def test_a_local_manifest_path_taken_fails_before_anything_is_sent(store, tmp_path, kind):
    url = str(tmp_path / "bk")
    manifest = os.path.join(url, "backups", "nightly.json")
    os.makedirs(os.path.dirname(manifest))
    if kind == "directory":
        os.mkdir(manifest)
    else:
        os.symlink(str(tmp_path / "gone"), manifest)
    with pytest.raises(BackupError) as info:
        backup_store(store, url, name="nightly")
    msg = str(info.value)
    assert not isinstance(info.value, BackupExistsError), msg
    assert manifest in msg and "move or delete it, or choose another name" in msg, msg
    assert ("is a directory" if kind == "directory" else "is a symbolic link to nothing") in msg, msg
    assert sent(url) == ["backups/nightly.json"] * (kind != "directory")  # no object, no journal
    assert list_backups(url) == [] and prune_backups(url, keep=1) == []
    if kind == "directory":
        os.rmdir(manifest)
    else:
        os.unlink(manifest)
    assert backup_store(store, url, name="nightly").files_copied == 2
    restore(url, str(tmp_path / "restored"))


def test_a_directory_made_while_the_backup_ran_is_named(store, tmp_path):
    url = str(tmp_path / "bk")
    manifest = os.path.join(url, "backups", "nightly.json")

    def progress(done, total):
        if done == total and not os.path.exists(manifest):
            os.mkdir(manifest)

    with pytest.raises(BackupError) as info:
        backup_store(store, url, name="nightly", progress=progress)
    assert not isinstance(info.value, BackupExistsError)
    assert f"{manifest}, where the manifest of a backup of that name goes, is a directory" in str(info.value)
    assert os.listdir(os.path.join(url, "pending")) == []  # (the journal is gone: prune collects the rest)
    prune_backups(url, keep=1)
    assert os.listdir(os.path.join(url, "files")) == []


def test_a_backup_without_a_name_takes_the_next_suffix(store, tmp_path, monkeypatch):
    url = str(tmp_path / "bk")
    monkeypatch.setattr(backup_module, "_default_name", lambda now: "20261207T000000.000Z")
    os.makedirs(os.path.join(url, "backups", "20261207T000000.000Z.json"))
    report = backup_store(store, url)
    assert report.name == "20261207T000000.000Z-2"
    assert [b.name for b in list_backups(url)] == [report.name]


def test_kvb_backup_says_so(store, tmp_path, capsys):
    url = str(tmp_path / "bk")
    os.makedirs(os.path.join(url, "backups", "nightly.json"))
    code, _, err = run(capsys, "backup", store, url, "--name", "nightly")
    assert code == 2, err
    assert "nightly.json, where the manifest of a backup of that name goes, is a directory" in err
    assert not os.path.exists(os.path.join(url, "files")) or os.listdir(os.path.join(url, "files")) == []


def test_memory_directory_is_refused_too(store):
    fs = fsspec.filesystem("memory")
    fs.makedirs("/taken22/backups/nightly.json", exist_ok=True)
    try:
        with pytest.raises(BackupError, match="is a directory, not a backup"):
            backup_store(store, "memory://taken22", name="nightly")
        assert fs.find("/taken22/files") == []
    finally:
        fs.rm("/taken22", recursive=True)


def test_s3_prefix_of_that_name_does_not_block(s3, store, tmp_path):  # noqa: F811
    url, options, fs = s3
    fs.pipe_file(url.removeprefix("s3://") + "/backups/nightly.json/note", b"not a manifest")
    report = backup_store(store, url, name="nightly", **options)
    assert [b.name for b in list_backups(url, **options)] == [report.name]
    restore(url, str(tmp_path / "restored"), **options)
