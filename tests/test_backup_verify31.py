"""Verifying backups without restoring them (``verify_backups``, ``kvb backups URL --verify``).

An incremental backup takes an object as present by its name and size, without reading it: an object
whose bytes changed in place is shared by every later backup of its data file, and only a full restore
found it. A verify reads every object the manifests name once, whatever the number of backups sharing
it, checks its size and sha256, and writes nothing.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import zipfile

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from helpers import child_env

import kv_backend.backup as kvbackup
from kv_backend import DB, BackupError, ConfigurationError
from kv_backend.backup import prune_backups, verify_backups


def _three_backups(store: str, url: str) -> None:
    """Backups one, two, three of a store whose closed data files the three share."""
    with DB(store, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"x" * 50)
        db.backup(url, name="one")
        db.put(b"later", b"1")
        db.backup(url, name="two")
        db.put(b"last", b"2")
        db.backup(url, name="three")


def _manifest(url: str, name: str) -> dict:
    fs, root = fsspec.core.url_to_fs(url)
    return json.loads(fs.cat_file(f"{root}/backups/{name}.json"))


def _rot(url: str, stored_as: str) -> None:
    """Change one bit of an object in place, its size unchanged."""
    fs, root = fsspec.core.url_to_fs(url)
    data = bytearray(fs.cat_file(f"{root}/{stored_as}"))
    data[len(data) // 2] ^= 0x01
    fs.pipe_file(f"{root}/{stored_as}", bytes(data))


def _tree(path: str) -> dict[str, tuple[int, float]]:
    out = {}
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime)
    return out


def test_sound_backups_verify_ok_and_each_shared_object_is_read_once(backup_url, tmp_path, monkeypatch):
    _three_backups(str(tmp_path / "s"), backup_url)
    manifests = [_manifest(backup_url, n) for n in ("one", "two", "three")]
    objects = {e["stored_as"]: e["size"] for doc in manifests for e in doc["files"]}
    shared = set.intersection(*({e["stored_as"] for e in doc["files"]} for doc in manifests))
    assert shared  # the closed data files are sent once, and shared by all three

    opened: list[str] = []
    real_open = fsspec.AbstractFileSystem.open

    def counting_open(self, path, mode="rb", **kwargs):
        if "files/" in str(path):
            opened.append(str(path).rsplit("/", 2)[-2] + "/" + str(path).rsplit("/", 1)[-1])
        return real_open(self, path, mode, **kwargs)

    monkeypatch.setattr(fsspec.AbstractFileSystem, "open", counting_open)
    seen: list[tuple[int, int]] = []
    report = verify_backups(backup_url, progress=lambda done, total: seen.append((done, total)))
    assert report.ok and not report.damaged_objects
    assert [(b.name, b.status, b.ok) for b in report.backups] == [
        ("one", "ok", True),
        ("two", "ok", True),
        ("three", "ok", True),
    ]
    assert sorted(opened) == sorted(objects)  # every object read, and once only
    assert report.objects == len(objects) and report.bytes == sum(objects.values())
    assert seen[0] == (0, sum(objects.values())) and seen[-1] == (sum(objects.values()),) * 2
    assert [str(b) for b in report.backups] == ["one  ok", "two  ok", "three  ok"]
    assert "3 backups" in str(report) and "all sound" in str(report)


def test_an_object_changed_in_place_is_named_with_every_backup_that_shares_it(backup_url, tmp_path):
    _three_backups(str(tmp_path / "s"), backup_url)
    closed = _manifest(backup_url, "one")["files"][0]  # closed: shared by the three backups
    _rot(backup_url, closed["stored_as"])
    before = _tree(str(tmp_path))

    report = verify_backups(backup_url)
    assert not report.ok
    assert [(b.name, b.status) for b in report.backups] == [
        ("one", "damaged"),
        ("two", "damaged"),
        ("three", "damaged"),
    ]
    (damage,) = report.damaged_objects
    assert damage.stored_as == closed["stored_as"] and damage.file == closed["name"]
    assert damage.problem == "sha256 mismatch" and damage.size == closed["size"]
    assert damage.backups == ["one", "two", "three"]
    assert damage.where == f"{backup_url}/{closed['stored_as']}"
    assert f"delete {damage.where}, then back up again" in damage.advice
    assert str(report.backups[0]) == f"one  DAMAGED: object {closed['stored_as']} (sha256 mismatch)"
    assert "1 damaged object" in str(report)
    assert _tree(str(tmp_path)) == before  # a verify writes nothing (file:// backups live under tmp_path)

    # Only the backup named is checked.
    named = verify_backups(backup_url, "two")
    assert [b.name for b in named.backups] == ["two"] and named.damaged_objects[0].backups == ["two"]


def test_missing_objects_and_objects_of_the_wrong_size(backup_url, tmp_path):
    _three_backups(str(tmp_path / "s"), backup_url)
    fs, root = fsspec.core.url_to_fs(backup_url)
    one = _manifest(backup_url, "one")["files"]
    three_only = [
        e
        for e in _manifest(backup_url, "three")["files"]
        if e["stored_as"] not in {f["stored_as"] for f in one}
    ]
    fs.rm_file(f"{root}/{one[0]['stored_as']}")  # shared by all three
    cut = three_only[0]
    fs.pipe_file(f"{root}/{cut['stored_as']}", fs.cat_file(f"{root}/{cut['stored_as']}")[:-3])
    report = verify_backups(backup_url)
    problems = {d.stored_as: (d.problem, d.backups) for d in report.damaged_objects}
    assert problems == {
        one[0]["stored_as"]: ("missing", ["one", "two", "three"]),
        cut["stored_as"]: (f"size {cut['size'] - 3}, expected {cut['size']}", ["three"]),
    }
    assert [b.status for b in report.backups] == ["damaged"] * 3
    assert str(report.backups[2]).startswith("three  DAMAGED: object ")
    assert "(missing)" in str(report.backups[2]) and f"expected {cut['size']})" in str(report.backups[2])
    longer = three_only[0]
    fs.pipe_file(f"{root}/{longer['stored_as']}", b"y" * (cut["size"] + 10))
    (grown,) = [
        d for d in verify_backups(backup_url, "three").damaged_objects if d.stored_as == longer["stored_as"]
    ]
    assert grown.problem == f"size {cut['size'] + 10}, expected {cut['size']}"


def test_a_damaged_manifest_is_reported_as_kvb_backups_reports_it(backup_url, tmp_path):
    _three_backups(str(tmp_path / "s"), backup_url)
    fs, root = fsspec.core.url_to_fs(backup_url)
    fs.pipe_file(f"{root}/backups/two.json", fs.cat_file(f"{root}/backups/two.json")[:-20])
    report = verify_backups(backup_url)
    assert not report.ok and not report.damaged_objects
    assert [(b.name, b.status) for b in report.backups] == [
        ("one", "ok"),
        ("three", "ok"),
        ("two", "damaged"),
    ]
    assert (
        str(report.backups[2]).startswith("two  DAMAGED: manifest ") and "damaged" in report.backups[2].error
    )
    assert [b.name for b in verify_backups(backup_url, "two").backups] == ["two"]


def test_a_backup_named_that_does_not_exist(backup_url, tmp_path):
    _three_backups(str(tmp_path / "s"), backup_url)
    with pytest.raises(BackupError, match=r"no backup named 'four' at .*; available: one, three, two"):
        verify_backups(backup_url, "four")
    with pytest.raises(ConfigurationError, match="bad backup name"):
        verify_backups(backup_url, "../one")
    assert verify_backups(str(tmp_path / "nothing")).backups == []


def test_a_prune_while_verifying_reports_the_backups_it_removed_as_pruned(tmp_path):
    url = f"memory://kvb-verify-prune-{os.getpid()}-{id(tmp_path)}"
    try:
        store = str(tmp_path / "s")
        with DB(store, max_file_size=4096) as db:
            for i in range(100):
                db.put(b"k%03d" % i, b"x" * 50)
            db.backup(url, name="one")
            for i in range(100):  # everything rewritten: "two" shares nothing with "one" once merged
                db.put(b"k%03d" % i, b"y" * 50)
            db.merge()
            db.backup(url, name="two")
        pruned: list[str] = []

        def progress(done: int, total: int) -> None:
            if done and not pruned:  # the first object is read: the prune runs now
                pruned.extend(prune_backups(url, keep=1))

        report = verify_backups(url, progress=progress)
        assert pruned == ["one"]
        assert report.ok and not report.damaged_objects  # nothing damaged: a backup gone is no damage
        assert [(b.name, b.status, b.ok) for b in report.backups] == [
            ("one", "pruned", True),
            ("two", "ok", True),
        ]
        assert str(report.backups[0]).startswith("one  pruned while it was verified")
    finally:
        fs = MemoryFileSystem()
        if fs.exists(url[len("memory://") :]):
            fs.rm(url[len("memory://") :], recursive=True)


def test_a_verify_killed_midway_leaves_nothing_behind(tmp_path):
    url = str(tmp_path / "bk")
    _three_backups(str(tmp_path / "s"), url)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    before = _tree(str(tmp_path))
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            """
import os, signal, sys
import kv_backend.backup as kb
kb.CHUNK_SIZE = 256
def progress(done, total):
    if done:
        os.kill(os.getpid(), signal.SIGKILL)
kb.verify_backups(sys.argv[1], progress=progress)
""",
            url,
        ],
        env={**child_env(), "TMPDIR": str(scratch)},
    )
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert _tree(str(tmp_path)) == before and os.listdir(scratch) == []


def test_storage_that_cannot_be_read_is_an_error_not_damage(tmp_path, monkeypatch):
    url = str(tmp_path / "bk")
    _three_backups(str(tmp_path / "s"), url)
    shared = _manifest(url, "one")["files"][0]
    real = kvbackup._Target.open_read

    def failing(self, rel):
        if rel == shared["stored_as"]:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, rel)

    monkeypatch.setattr(kvbackup._Target, "open_read", failing)
    with pytest.raises(BackupError) as caught:
        verify_backups(url)
    assert str(caught.value) == (
        f"cannot read {url}/{shared['stored_as']} (file {shared['name']} of backups one, two, three): "
        "Input/output error"
    )


def test_backups_in_a_zip_archive_verify_and_damage_there_says_to_repair_the_source(tmp_path):
    url = tmp_path / "bk"
    _three_backups(str(tmp_path / "s"), str(url))
    closed = _manifest(str(url), "one")["files"][0]
    archive = tmp_path / "bk.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(url.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if path.name == closed["stored_as"].split("/")[-1]:
                    data = data[:10] + bytes([data[10] ^ 1]) + data[11:]
                z.writestr(str(path.relative_to(url)), data)
    report = verify_backups(f"zip::{archive.as_uri()}")
    assert [(b.name, b.status) for b in report.backups] == [
        ("one", "damaged"),
        ("two", "damaged"),
        ("three", "damaged"),
    ]
    (damage,) = report.damaged_objects
    assert damage.problem == "sha256 mismatch" and "repair the backup URL it was made from" in damage.advice
