"""Backups and restores: defects found by the twelfth review (object-store URLs, durability, targets)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import test_backup_s3

from kv_backend import DB, BackupError, ConfigurationError
from kv_backend.backup import list_backups, prune_backups, restore
from kv_backend.cli import main as kvb

# moto's S3 server on loopback and a fresh bucket in it (they skip where moto or s3fs is missing)
s3_server = test_backup_s3.s3_server
s3 = test_backup_s3.s3


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is None, reason="s3fs is not installed")
@pytest.mark.parametrize("url", ["s3://bucket//kv", "s3://bucket/a//b/", "s3://bucket///kv"])
def test_an_object_store_url_with_an_empty_segment_is_refused(url, store_path, tmp_path, capsys):
    """s3://bucket//kv: s3fs wrote the objects under keys with an empty segment ("/kv/files/...") but
    listed "bucket//kv/files" as "bucket/kv/files", so every backup uploaded the whole store, then
    failed with "missing ... was the backup pruned meanwhile?", leaving objects no prune could see.
    Such a URL is refused before anything is sent, naming the URL meant."""
    options = {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s"}  # never reached
    fixed = "s3://bucket/a/b" if "a//b" in url else "s3://bucket/kv"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(ConfigurationError, match=f"empty path segment.*write {fixed}$"):
            db.backup(url, **options)
    for call in (
        lambda: list_backups(url, **options),
        lambda: prune_backups(url, keep=1, **options),
        lambda: restore(url, tmp_path / "r", **options),
    ):
        with pytest.raises(ConfigurationError, match="empty path segment"):
            call()
    assert not (tmp_path / "r").exists()
    capsys.readouterr()
    assert kvb(["backups", url, "--storage-option", "endpoint_url=http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"write {fixed}" in err


def test_a_local_backup_syncs_its_directories_before_its_manifest(store_path, tmp_path, monkeypatch):
    """On a local disk every object was fsynced, but never the files/ directory that names it, nor
    the directories the first backup creates (the URL itself, files/, backups/...): after a power
    loss the manifest, whose own directory is synced, could name objects whose entries were lost, a
    "complete" backup that no longer restores. Those directories are synced before the manifest."""
    import kv_backend.backup as kvbackup

    root = tmp_path / "new" / "bk"
    events: list[tuple[str, str]] = []
    real_fsync, real_write = kvbackup.fsync_dir, kvbackup._Target.write_bytes

    def fsync_dir(path):
        events.append(("fsync", os.path.realpath(path)))
        real_fsync(path)

    def write_bytes(self, rel, data, **kwargs):
        events.append(("write", rel))
        real_write(self, rel, data, **kwargs)

    monkeypatch.setattr(kvbackup, "fsync_dir", fsync_dir)
    monkeypatch.setattr(kvbackup._Target, "write_bytes", write_bytes)
    with DB(store_path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 100)
        for name in ("first", "second"):
            db.put(b"more-" + name.encode(), b"x")
            events.clear()
            db.backup(str(root), name=name)
            manifest = events.index(("write", f"backups/{name}.json"))
            synced = {path for kind, path in events[:manifest] if kind == "fsync"}
            assert str(root / "files") in synced, events
            # Those the first made (tmp_path/new, tmp_path/new/bk and the three inside), by the second too.
            assert {str(tmp_path), str(tmp_path / "new"), str(root)} <= synced, events


def test_a_restore_syncs_the_parent_directories_it_creates(store_path, tmp_path, monkeypatch):
    """A restore into new/a/store with new/ missing created new/ and new/a/ and synced only new/a/
    after the rename: a power loss could take the entries of new/ and new/a/, and the restored store
    with them, after the restore had reported success. Each directory it creates is synced into its
    parent."""
    import kv_backend.backup as kvbackup

    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(str(tmp_path / "bk"), name="b")
    synced: list[str] = []
    real = kvbackup.fsync_dir

    def fsync_dir(path):
        synced.append(os.path.realpath(path))
        real(path)

    monkeypatch.setattr(kvbackup, "fsync_dir", fsync_dir)
    dest = tmp_path / "new" / "a" / "store"
    restore(str(tmp_path / "bk"), dest)
    assert {str(tmp_path), str(tmp_path / "new"), str(tmp_path / "new" / "a")} <= set(synced), synced
    with DB(str(dest), read_only=True) as db:
        assert db.get(b"k") == b"v"


@pytest.mark.parametrize("inside", ["", "sub"])
def test_a_backup_into_another_stores_directory_is_refused(store_path, tmp_path, inside):
    """kvb backup /srv/kv-a /srv/kv-b (two store paths, one meant as the source of a restore) put
    files/, backups/ and pending/ among kv-b's files, where kv_restore --replace then refused kv-b
    and deleting kv-b to replace it took the backups along. A backup into (or under) a directory that
    holds a store is refused, as one inside the store being backed up already was."""
    other = tmp_path / "other"
    with DB(str(other)) as db:
        db.put(b"mine", b"1")
    before = sorted(os.listdir(other))
    url = str(other / inside) if inside else str(other)
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(ConfigurationError, match=f"inside the kv_backend store {other};"):
            db.backup(url)
        db.backup(str(tmp_path / "bk"))  # beside it is fine
    assert sorted(os.listdir(other)) == before


def test_a_file_url_with_percent_escapes_is_refused(store_path, tmp_path, capsys):
    """Path("/mnt/backup disk").as_uri() is file:///mnt/backup%20disk, which fsspec does not decode:
    the backup went to a new directory named "backup%20disk" (on the store's own disk, when the one
    meant is a mount point) and reported success. Such a URL is refused, naming the path meant; the
    path itself works, '%' and all."""
    meant = tmp_path / "backup disk"
    meant.mkdir()
    url = meant.as_uri()
    assert "%20" in url
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(ConfigurationError, match=f"percent-escapes.*not '{meant}'; give the path"):
            db.backup(url)
        with pytest.raises(ConfigurationError, match="percent-escapes"):
            db.backup(f"file:{url[len('file://') :]}")  # the short form, as RFC 8089 allows
        db.backup(str(meant), name="spaced")
        db.backup(str(tmp_path / "100%20sure"), name="literal")  # a '%' in a path is only a '%'
    for call in (lambda: list_backups(url), lambda: restore(url, tmp_path / "r")):
        with pytest.raises(ConfigurationError, match="percent-escapes"):
            call()
    assert sorted(os.listdir(tmp_path)) == ["100%20sure", "backup disk", "store"]
    assert [i.name for i in list_backups(str(meant))] == ["spaced"]
    assert kvb(["backups", url]) == 2
    assert "percent-escapes" in capsys.readouterr().err


def test_a_restore_from_a_directory_that_does_not_exist_says_so(store_path, tmp_path):
    """A restore from a mistyped backup directory said "no complete backup at URL (no manifest under
    backups/)", which reads, in a recovery, as if the backups were lost; it says that the directory
    does not exist. An existing directory without backups is still "no manifest"."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(str(tmp_path / "backups"))
    typo = tmp_path / "bakups"
    with pytest.raises(
        BackupError, match=f"no complete backup at {typo}: the directory {typo} does not exist"
    ):
        restore(str(typo), tmp_path / "r")
    with pytest.raises(BackupError, match=r"no complete backup at .*: the directory .* does not exist"):
        restore(typo.as_uri(), tmp_path / "r")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackupError, match=r"no complete backup at .*empty \(no manifest under backups/\)$"):
        restore(str(tmp_path / "empty"), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_restore_from_a_bucket_that_does_not_exist_says_so(s3, store_path, tmp_path):
    """The same for a mistyped bucket: it said "no complete backup", it says the bucket does not exist."""
    url, options, _fs = s3
    missing = url.replace("s3://", "s3://no-such-bucket-")
    bucket = missing[len("s3://") :].split("/")[0]
    with pytest.raises(BackupError, match=f"no complete backup at {missing}: the bucket '{bucket}' does not"):
        restore(missing, tmp_path / "r", **options)
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, **options)
    other = url + "-elsewhere"  # the bucket exists: no backups under that prefix
    with pytest.raises(
        BackupError, match=r"no complete backup at .*-elsewhere \(no manifest under backups/\)"
    ):
        restore(other, tmp_path / "r", **options)
    assert not (tmp_path / "r").exists()


def test_a_backup_of_a_newer_store_format_is_refused_before_the_download(store_path, tmp_path, monkeypatch):
    """The format check of restore compared a prefix, so a store of "format 10" passed for format 1:
    the whole backup was downloaded, then the store check refused it with a message naming a
    temporary directory. It is refused before anything is read, saying to upgrade."""
    import json

    import kv_backend.backup as kvbackup

    bk = tmp_path / "bk"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(str(bk), name="x")
    manifest = bk / "backups" / "x.json"
    doc = json.loads(manifest.read_text())
    del doc["checksum"]
    doc["store_format"] = "kv_backend store, format 10\n"
    manifest.write_bytes(kvbackup._encode_manifest(doc))

    def no_download(self, rel):
        raise AssertionError(f"{rel} was downloaded")

    monkeypatch.setattr(kvbackup._Target, "open_read", no_download)
    with pytest.raises(BackupError, match=r"format 'kv_backend store, format 10'.*upgrade kv_backend"):
        restore(str(bk), tmp_path / "r")
    assert sorted(os.listdir(tmp_path)) == ["bk", "store"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root gives files away")
def test_a_restore_by_root_gives_the_files_to_the_owner_of_the_directory(store_path, tmp_path):
    """sudo kvb restore URL /var/lib/app/kv, into the empty directory made for the service: the
    directory went to the service's user and group, but every file in it stayed root's (0644), so the
    service could not open the store ("cannot open lock file ... Permission denied"). The files go
    to the directory's owner and group too."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(str(tmp_path / "bk"))
    dest = tmp_path / "svc"
    dest.mkdir()
    os.chown(dest, 4321, 4322)
    restore(str(tmp_path / "bk"), dest)
    owners = {(n, os.stat(dest / n).st_uid, os.stat(dest / n).st_gid) for n in os.listdir(dest)}
    assert owners == {(n, 4321, 4322) for n in os.listdir(dest)}, owners
    assert (os.stat(dest).st_uid, os.stat(dest).st_gid) == (4321, 4322)


def test_a_backup_counts_damage_in_merged_files(store_path, tmp_path, capsys):
    """A damaged record in a merged file (one with a hint file) is not checked when a store opens, so
    kvb backup said nothing and exited 0 (kv_backup and POST /v1/backup likewise), although the
    restore refuses the backup: docs/backup.md promises exit status 1 for a store with damaged
    records. The backup counts the damage in what it copied (BackupReport.damaged_records)."""
    from kv_backend.files import data_name

    with DB(store_path, max_file_size=4096) as db:
        for rnd in range(3):
            for i in range(60):
                db.put(b"k%03d" % i, b"round-%d-" % rnd * 10)
        db.merge()
        assert db.backup(str(tmp_path / "clean"), name="clean").damaged_records == 0
        merged = min(n for n in os.listdir(store_path) if n.endswith(".hint"))[: -len(".hint")] + ".data"
        assert merged != data_name((1, 0))
    with open(os.path.join(store_path, merged), "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 1]))
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 0  # what kvb backup looked at
        assert db.backup(str(tmp_path / "api"), name="api").damaged_records == 1
    with pytest.raises(BackupError, match=f"file {merged} of backup api is damaged"):
        restore(str(tmp_path / "api"), tmp_path / "r")
    capsys.readouterr()
    assert kvb(["backup", store_path, str(tmp_path / "cli")]) == 1
    assert "holds 1 damaged record(s)" in capsys.readouterr().err
    restore(str(tmp_path / "clean"), tmp_path / "fine")  # the clean one still restores


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_backups_of_the_same_millisecond_both_keep_a_default_name(kind, store_path, tmp_path, monkeypatch):
    """Two backups without a name that took their snapshot in the same millisecond (two hosts' cron
    jobs, two schedulers calling POST /v1/backup) got the same default name: on a local disk the
    second failed with "choose another name" (it had been given none), on an object store its
    manifest could replace the first one's, which was then lost. A default name takes the next free
    suffix instead."""
    import uuid

    import kv_backend.backup as kvbackup

    url = str(tmp_path / "bk") if kind == "local" else f"memory:///kvb-review12-{uuid.uuid4().hex}"
    monkeypatch.setattr(kvbackup, "_default_name", lambda now: "20260101T000000.000Z")
    with DB(store_path) as db:
        db.put(b"k", b"first")
        first = db.backup(url)
        db.put(b"k", b"second")
        real = kvbackup._manifest_names
        calls = 0

        def first_look_sees_none(target):
            # The first backup's name was free when the second one started; it finished meanwhile.
            nonlocal calls
            calls += 1
            return [] if calls == 1 else real(target)

        monkeypatch.setattr(kvbackup, "_manifest_names", first_look_sees_none)
        ghost = db.backup(url)  # stands in for the other host's backup of the same millisecond
        monkeypatch.setattr(kvbackup, "_manifest_names", real)
        assert first.name == "20260101T000000.000Z"
        assert ghost.name == "20260101T000000.000Z-2"
        with pytest.raises(BackupError, match=r"choose another name|already exists"):
            db.backup(url, name=first.name)  # a name the caller chose is still refused
    names = [i.name for i in list_backups(url)]
    assert sorted(names) == [first.name, ghost.name]
    restore(url, tmp_path / "r1", name=first.name)
    with DB(str(tmp_path / "r1"), read_only=True) as db:
        assert db[b"k"] == b"first"
    if kind == "memory":
        import fsspec

        fsspec.filesystem("memory").rm(url[len("memory://") :], recursive=True)


def test_an_incremental_backup_scans_only_what_it_sends_and_still_counts_old_damage(
    store_path, tmp_path, monkeypatch
):
    """Counting damage scanned every data file at every backup, so a backup after 1% of a store
    changed read and checked all of it again (about 0.22 s per 54 MB of records). A file's count is
    kept in its manifest entry and taken again with the object; damage in a file sent by an earlier
    backup still counts in every later one, whose restore it would stop as well."""
    import kv_backend.check as check

    with DB(store_path, max_file_size=4096) as db:
        for rnd in range(3):
            for i in range(60):
                db.put(b"k%03d" % i, b"round-%d-" % rnd * 10)
        db.merge()
    merged = min(n for n in os.listdir(store_path) if n.endswith(".hint"))[: -len(".hint")] + ".data"
    with open(os.path.join(store_path, merged), "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 1]))
    url = str(tmp_path / "bk")
    scanned: list[str] = []
    real = check.snapshot_problems

    def counting(read, size, name, **how):
        scanned.append(name)
        return real(read, size, name, **how)

    monkeypatch.setattr(check, "snapshot_problems", counting)
    with DB(store_path) as db:
        first = db.backup(url, name="first")
        assert first.damaged_records == 1 and merged in scanned
        sent_once = len(scanned)
        scanned.clear()
        db.put(b"one-more", b"x")
        second = db.backup(url, name="second")
    assert second.damaged_records == 1  # the damaged object is part of this backup too
    assert merged not in scanned and len(scanned) < sent_once  # only what changed (and the tails)
    assert second.files_skipped > 0
