"""Backups to memory:// and file:// URLs: round trips, increments, damage, retention, bad input."""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kv_backend.backup as kvbackup
from kv_backend import DB, BackupError, ConfigurationError, DatabaseClosedError
from kv_backend.backup import BackupInfo, list_backups, prune_backups, restore
from kv_backend.check import check
from kv_backend.files import data_name


@pytest.fixture
def mem_url():
    """A fresh memory:// URL, removed afterwards."""
    path = f"/kvb-test-{uuid.uuid4().hex}"
    yield f"memory://{path}"
    fs = fsspec.filesystem("memory")
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def url(backup_url):
    """A fresh backup URL of each kind (conftest's ``backup_url``)."""
    return backup_url


def fill(db: DB, n: int, start: int = 0, size: int = 100) -> dict[bytes, bytes]:
    out = {}
    for i in range(start, start + n):
        key, value = b"key-%05d" % i, (b"%d:" % i) * (size // 4)
        db.put(key, value)
        out[key] = value
    return out


def contents(path: str) -> dict[bytes, bytes]:
    with DB(path, read_only=True) as db:
        return dict(db.items())


def objects(url: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(url)
    try:
        return sorted(os.path.basename(p) for p in fs.find(root + "/files"))
    except FileNotFoundError:
        return []


def test_round_trip(url, store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        expected = fill(db, 150)
        db.delete(b"key-00003")
        del expected[b"key-00003"]
        db.put(b"ttl", b"later", ttl=3600)
        expected[b"ttl"] = b"later"
        report = db.backup(url)
        snapshot = db.snapshot_files()
        names = [s.name for s in snapshot]
        # The active file counts up to its published end (not the space reserved past it).
        lengths = sum(s.length for s in snapshot)
        for s in snapshot:
            s.close()
    assert len(names) >= 4
    assert report.files_copied == len(names) and report.files_skipped == 0
    assert report.bytes_copied == lengths
    assert report.name in str(report) and "copied" in str(report)
    target = str(tmp_path / "restored")
    r = restore(url, target)
    assert r.name == report.name and r.files == len(names) and r.records >= len(expected)
    assert report.name in str(r)
    assert contents(target) == expected
    assert check(target).ok
    with DB(target) as db2:  # the restored store is writable and keeps expiries
        assert db2.ttl(b"ttl") > 3000
        db2.put(b"after", b"restore")
        assert db2[b"after"] == b"restore"


def test_empty_store(url, store_path, tmp_path):
    with DB(store_path) as db:
        db.backup(url, name="empty")
    restore(url, tmp_path / "r")
    assert contents(str(tmp_path / "r")) == {}


def test_incremental(url, store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        expected = fill(db, 120)
        first = db.backup(url, name="one")
        # Nothing changed: nothing is sent again.
        second = db.backup(url, name="two")
        assert second.files_copied == 0 and second.bytes_copied == 0
        assert second.files_skipped == first.files_copied
        before = {s.name: s.length for s in db.snapshot_files()}
        expected.update(fill(db, 120, start=1000))
        after = {s.name: s.length for s in db.snapshot_files()}
        third = db.backup(url, name="three")
    changed = [n for n in after if before.get(n) != after[n]]
    assert len(after) > len(before) and len(changed) >= 2
    assert third.files_copied == len(changed)
    assert third.files_skipped == len(after) - len(changed)
    assert third.bytes_copied == sum(after[n] for n in changed)
    restore(url, tmp_path / "r3")
    assert contents(str(tmp_path / "r3")) == expected
    restore(url, tmp_path / "r1", name="one")
    assert len(contents(str(tmp_path / "r1"))) == 120


def test_backup_from_read_only_and_reopened_store(url, store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        expected = fill(db, 60)
    with DB(store_path, read_only=True) as ro:
        report = ro.backup(url)
    assert report.files_copied >= 2
    restore(url, tmp_path / "r")
    assert contents(str(tmp_path / "r")) == expected


def test_list_restore_named_and_prune(url, store_path, tmp_path):
    states = {}
    with DB(store_path, max_file_size=4096) as db:
        for i, name in enumerate(["a", "b", "c", "d"]):
            fill(db, 40, start=i * 100)
            db.backup(url, name=name)
            states[name] = dict(db.items())
    infos = list_backups(url)
    assert [i.name for i in infos] == ["a", "b", "c", "d"]
    assert all(isinstance(i, BackupInfo) and i.ok and i.files >= 1 for i in infos)
    assert infos[0].bytes < infos[-1].bytes
    assert "a" in str(infos[0]) and "files" in str(infos[0])
    restore(url, tmp_path / "newest")
    assert contents(str(tmp_path / "newest")) == states["d"]
    restore(url, tmp_path / "b", name="b")
    assert contents(str(tmp_path / "b")) == states["b"]

    assert prune_backups(url, keep=2) == ["a", "b"]
    assert [i.name for i in list_backups(url)] == ["c", "d"]
    with pytest.raises(BackupError, match=r"no backup named 'a'.*available: c, d"):
        restore(url, tmp_path / "gone", name="a")
    assert not os.path.exists(tmp_path / "gone")
    # Objects only the pruned backups used are gone; c and d restore intact.
    fs, root = fsspec.core.url_to_fs(url)
    referenced = set()
    for name in ("c", "d"):
        doc = json.loads(fs.cat_file(f"{root}/backups/{name}.json"))
        referenced.update(os.path.basename(e["stored_as"]) for e in doc["files"])
    assert set(objects(url)) == referenced
    for name in ("c", "d"):
        restore(url, tmp_path / f"p-{name}", name=name)
        assert contents(str(tmp_path / f"p-{name}")) == states[name]
    assert prune_backups(url, keep=5) == []
    assert prune_backups(url, keep=0) == ["c", "d"]
    assert list_backups(url) == [] and objects(url) == []


def test_duplicate_and_default_names(url, store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="x")
        with pytest.raises(BackupError, match="already exists"):
            db.backup(url, name="x")
        names = {db.backup(url).name for _ in range(3)}
    assert len(names) == 3
    assert {i.name for i in list_backups(url)} == names | {"x"}


def damaged_setup(url: str, store_path: str) -> tuple[str, dict]:
    with DB(store_path, max_file_size=4096) as db:
        fill(db, 100)
        db.backup(url, name="good")
    fs, root = fsspec.core.url_to_fs(url)
    return root, json.loads(fs.cat_file(f"{root}/backups/good.json"))


def test_flipped_byte_is_named(url, store_path, tmp_path):
    root, doc = damaged_setup(url, store_path)
    fs, _ = fsspec.core.url_to_fs(url)
    entry = doc["files"][1]
    obj = f"{root}/{entry['stored_as']}"
    data = bytearray(fs.cat_file(obj))
    data[len(data) // 2] ^= 0x40
    fs.pipe_file(obj, bytes(data))
    target = tmp_path / "r"
    with pytest.raises(BackupError, match=f"file {entry['name']} of backup good is damaged.*sha256"):
        restore(url, target)
    assert not target.exists()
    assert [p for p in os.listdir(tmp_path) if "restore" in p] == []  # no temporary left behind


def test_missing_and_truncated_objects_are_named(url, store_path, tmp_path):
    root, doc = damaged_setup(url, store_path)
    fs, _ = fsspec.core.url_to_fs(url)
    first, second = doc["files"][0], doc["files"][2]
    fs.rm_file(f"{root}/{first['stored_as']}")
    with pytest.raises(BackupError, match=f"{first['name']} of backup good.*not found"):
        restore(url, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    fs.pipe_file(f"{root}/{first['stored_as']}", b"")
    with pytest.raises(BackupError, match=f"file {first['name']} of backup good is damaged: .* 0 bytes"):
        restore(url, tmp_path / "r")
    fs.pipe_file(f"{root}/{second['stored_as']}", fs.cat_file(f"{root}/{second['stored_as']}") + b"x")
    os.mkdir(tmp_path / "empty")
    with pytest.raises(BackupError, match=first["name"]):
        restore(url, tmp_path / "empty")
    assert os.listdir(tmp_path / "empty") == []


def test_an_object_longer_than_its_manifest_entry_is_named(url, store_path, tmp_path):
    root, doc = damaged_setup(url, store_path)
    fs, _ = fsspec.core.url_to_fs(url)
    first = doc["files"][0]
    obj = f"{root}/{first['stored_as']}"
    fs.pipe_file(obj, fs.cat_file(obj) + b"x")
    size = first["size"]
    with pytest.raises(BackupError, match=f"has more than {size} bytes, the manifest says {size}$"):
        restore(url, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_damaged_manifest_is_named(url, store_path, tmp_path):
    root, _doc = damaged_setup(url, store_path)
    fs, _ = fsspec.core.url_to_fs(url)
    manifest = f"{root}/backups/good.json"
    original = fs.cat_file(manifest)
    fs.pipe_file(manifest, original[: len(original) // 2])
    with pytest.raises(BackupError, match=r"good\.json is damaged or incomplete"):
        restore(url, tmp_path / "r")
    with pytest.raises(BackupError, match=r"good\.json is damaged"):
        restore(url, tmp_path / "r", name="good")
    assert not (tmp_path / "r").exists()
    [info] = list_backups(url)
    assert not info.ok and "DAMAGED" in str(info)
    # A change that keeps the JSON valid is caught by the manifest's own checksum.
    doc = json.loads(original)
    doc["files"][0]["size"] += 1
    fs.pipe_file(manifest, json.dumps(doc).encode())
    with pytest.raises(BackupError, match="checksum does not match"):
        restore(url, tmp_path / "r", name="good")
    # A damaged manifest blocks only the default choice; named backups still restore.
    fs.pipe_file(manifest, original)
    with DB(store_path) as db:
        db.backup(url, name="later")
    fs.pipe_file(manifest, b"{")
    with pytest.raises(BackupError, match="pass name="):
        restore(url, tmp_path / "r")
    restore(url, tmp_path / "r", name="later")
    assert len(contents(str(tmp_path / "r"))) == 100


def test_restore_refuses_a_mount_point_before_downloading(mem_url, store_path, tmp_path, monkeypatch):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(mem_url)
    mount = tmp_path / "volume"
    mount.mkdir()
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: os.fspath(p) == str(mount) or real_ismount(p))
    opened = []
    monkeypatch.setattr(kvbackup._Target, "open_read", lambda self, rel: opened.append(rel))
    with pytest.raises(BackupError, match=r"is a mount point.*inside it"):
        restore(mem_url, mount)
    assert opened == [] and os.listdir(mount) == []
    assert not [n for n in os.listdir(tmp_path) if ".restore-" in n]
    monkeypatch.undo()
    restore(mem_url, mount / "kv")
    assert contents(str(mount / "kv")) == {b"k": b"v"}


def test_damaged_record_in_source_fails_restore(url, store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        fill(db, 100)
    victim = os.path.join(store_path, data_name((1, 0)))
    with open(victim, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    with DB(store_path, read_only=True) as db:
        db.backup(url)  # a backup copies what is there; restore refuses to hand it out
    with pytest.raises(BackupError, match=r"file 0000000001-000\.data of backup .* damaged at offset"):
        restore(url, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_restore_refuses_non_empty_or_file_targets(url, store_path, tmp_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url)
        # Restoring over the live store is refused and leaves it alone.
        with pytest.raises(BackupError, match="not empty"):
            restore(url, store_path)
        assert db[b"k"] == b"v"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(BackupError, match=r"refusing to restore into .*not empty.*mine\.txt"):
        restore(url, busy)
    assert os.listdir(busy) == ["mine.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(BackupError, match="not a directory"):
        restore(url, afile)
    empty = tmp_path / "empty"
    empty.mkdir()
    restore(url, empty)
    assert contents(str(empty)) == {b"k": b"v"}
    restore(url, tmp_path / "deep" / "er" / "dir")
    assert contents(str(tmp_path / "deep" / "er" / "dir")) == {b"k": b"v"}


def test_bad_input(url, store_path, tmp_path):
    db = DB(store_path)
    db.put(b"k", b"v")
    with pytest.raises(TypeError):
        db.backup(123)
    with pytest.raises(ConfigurationError):
        db.backup("")
    with pytest.raises(ConfigurationError, match="bad backup name"):
        db.backup(url, name="../escape")
    with pytest.raises(TypeError):
        db.backup(url, name=5)
    with pytest.raises(TypeError):
        db.backup(url, progress="yes")
    with pytest.raises(ConfigurationError, match="inside the store"):
        db.backup(f"file://{store_path}/backups")
    with pytest.raises(ConfigurationError, match="inside the store"):
        db.backup(store_path)
    with pytest.raises(BackupError, match="nosuchproto"):
        db.backup("nosuchproto://x/y")
    with pytest.raises(TypeError):
        prune_backups(url, keep="2")
    with pytest.raises(ConfigurationError):
        prune_backups(url, keep=-1)
    with pytest.raises(TypeError):
        restore(url, 42)
    with pytest.raises(BackupError, match="no complete backup"):
        restore(url, tmp_path / "r")
    assert list_backups(url) == []
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.backup(url)


def test_manifest_cannot_escape_the_target(mem_url, store_path, tmp_path):
    """A hostile manifest naming ../ paths is rejected before anything is written."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(mem_url, name="x")
    fs, root = fsspec.core.url_to_fs(mem_url)
    doc = json.loads(fs.cat_file(f"{root}/backups/x.json"))
    doc.pop("checksum")
    doc["files"][0]["name"] = "../../evil.data"
    fs.pipe_file(f"{root}/backups/x.json", kvbackup._encode_manifest(doc))
    with pytest.raises(BackupError, match="bad or repeated file name"):
        restore(mem_url, tmp_path / "r")
    assert not (tmp_path.parent / "evil.data").exists()


def test_progress_reports_bytes(url, store_path, tmp_path, monkeypatch):
    monkeypatch.setattr(kvbackup, "CHUNK_SIZE", 1000)
    with DB(store_path, max_file_size=4096) as db:
        fill(db, 100)
        calls: list[tuple[int, int]] = []
        report = db.backup(url, progress=lambda d, t: calls.append((d, t)))
    total = report.bytes
    assert calls[0] == (0, total) and calls[-1] == (total, total) and len(calls) > 5
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))
    seen: list[tuple[int, int]] = []
    restore(url, tmp_path / "r", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (total, total)

    def stop(done, total):
        if done > 2000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the caller's exception comes through unchanged
        restore(url, tmp_path / "r2", progress=stop)
    assert not (tmp_path / "r2").exists()
    assert [p for p in os.listdir(tmp_path) if "restore" in p] == []


def test_failed_backup_never_looks_complete(url, store_path, tmp_path, monkeypatch):
    monkeypatch.setattr(kvbackup, "CHUNK_SIZE", 512)
    with DB(store_path, max_file_size=4096) as db:
        expected = fill(db, 150)
        for stop_after in (3, 20):
            calls = 0

            def boom(done, total, stop_after=stop_after):
                nonlocal calls
                calls += 1
                if calls > stop_after:
                    raise RuntimeError("network went away")

            with pytest.raises(RuntimeError):
                db.backup(url, name="nightly", progress=boom)
            assert list_backups(url) == []
            with pytest.raises(BackupError, match="no complete backup"):
                restore(url, tmp_path / "never")
            assert not (tmp_path / "never").exists()
        report = db.backup(url, name="nightly")
    assert report.files_skipped == 0
    restore(url, tmp_path / "r")
    assert contents(str(tmp_path / "r")) == expected
    # Objects of the failed attempts are garbage; prune collects them.
    prune_backups(url, keep=1)
    assert len(objects(url)) == report.files


def test_prune_spares_objects_while_a_backup_runs(mem_url, store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        fill(db, 60)
        db.backup(mem_url, name="old")
        fill(db, 60, start=500)
        db.backup(mem_url, name="new")
    fs, root = fsspec.core.url_to_fs(mem_url)
    stored = len(objects(mem_url))
    journal = {"name": "running", "started": time.time(), "updated": time.time(), "files": []}
    fs.pipe_file(f"{root}/pending/abc.json", json.dumps(journal).encode())
    assert prune_backups(mem_url, keep=1) == ["old"]
    assert len(objects(mem_url)) == stored  # nothing collected while a backup may be running
    journal["updated"] = time.time() - kvbackup.PENDING_GRACE - 10
    fs.pipe_file(f"{root}/pending/abc.json", json.dumps(journal).encode())
    assert prune_backups(mem_url, keep=1) == []
    assert not fs.exists(f"{root}/pending/abc.json")
    assert len(objects(mem_url)) < stored
    restore(mem_url, tmp_path / "r")
    assert len(contents(str(tmp_path / "r"))) == 120


def test_prune_spares_the_objects_of_damaged_and_newer_manifests(mem_url, store_path, tmp_path):
    """Objects only a damaged manifest (or one from a newer kv_backend) names are never collected."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
        db.backup(mem_url, name="old")
        db.put(b"a", b"2")
        db.backup(mem_url, name="new")
    fs, root = fsspec.core.url_to_fs(mem_url)
    manifest = f"{root}/backups/new.json"
    original = fs.cat_file(manifest)
    doc = json.loads(original)
    doc.pop("checksum")
    doc["kv_backend_backup"] = kvbackup.MANIFEST_VERSION + 1
    fs.pipe_file(manifest, kvbackup._encode_manifest(doc))
    stored = objects(mem_url)
    assert prune_backups(mem_url, keep=5) == []
    assert objects(mem_url) == stored
    fs.pipe_file(manifest, original[:-20])  # cut short: which objects it names is unknown
    assert prune_backups(mem_url, keep=0) == ["old"]
    assert objects(mem_url) == stored
    fs.pipe_file(manifest, original)  # repaired: restorable, and prune works again
    restore(mem_url, tmp_path / "r")
    assert contents(str(tmp_path / "r")) == {b"a": b"2"}
    assert prune_backups(mem_url, keep=0) == ["new"]
    assert objects(mem_url) == []


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(0, 30), st.binary(max_size=300)),
            st.tuples(st.just("delete"), st.integers(0, 30), st.just(b"")),
            st.tuples(st.just("backup"), st.just(0), st.just(b"")),
        ),
        max_size=40,
    )
)
def test_every_backup_restores_its_moment(tmp_path_factory, steps):
    """Random writes and backups: each backup restores exactly the store as it was when taken."""
    base = tmp_path_factory.mktemp("hyp")
    url = f"file://{base / 'b'}"
    model: dict[bytes, bytes] = {}
    taken: dict[str, dict[bytes, bytes]] = {}
    with DB(str(base / "s"), max_file_size=4096) as db:
        for op, k, v in [*steps, ("backup", 0, b"")]:
            key = b"k%d" % k
            if op == "put":
                db.put(key, v)
                model[key] = v
            elif op == "delete":
                assert db.delete(key) == (model.pop(key, None) is not None)
            else:
                name = f"b{len(taken)}"
                db.backup(url, name=name)
                taken[name] = dict(model)
    for name, state in taken.items():
        restore(url, base / f"r-{name}", name=name)
        assert contents(str(base / f"r-{name}")) == state


def test_hint_files_travel_with_the_backup(url, store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        expected = fill(db, 80)
        db.merge()  # merge writes a hint file next to every output
    hints = sorted(n for n in os.listdir(store_path) if n.endswith(".hint"))
    assert hints
    with DB(store_path, read_only=True) as db:
        snapshot = db.snapshot_files()
        assert sorted(s.name for s in snapshot if s.name.endswith(".hint")) == hints
        for s in snapshot:
            s.close()
        report = db.backup(url)
    assert report.files == len([n for n in os.listdir(store_path) if n.endswith((".data", ".hint"))])
    restore(url, tmp_path / "r")
    for name in hints:
        with open(os.path.join(store_path, name), "rb") as a, open(tmp_path / "r" / name, "rb") as b:
            assert a.read() == b.read()
    assert check(str(tmp_path / "r")).notes == []
    assert contents(str(tmp_path / "r")) == expected


def test_same_name_race_on_local_disk(tmp_path, store_path, monkeypatch):
    """Two backups that both saw the name free: on a local disk the second one fails."""
    url = f"file://{tmp_path / 'bk'}"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        first = db.backup(url, name="same")
        monkeypatch.setattr(kvbackup, "_manifest_names", lambda target: [])
        db.put(b"k", b"changed")
        with pytest.raises(BackupError, match="another backup named 'same' completed"):
            db.backup(url, name="same")
    monkeypatch.undo()
    assert [i.name for i in list_backups(url)] == [first.name]
    restore(url, tmp_path / "r")
    assert contents(str(tmp_path / "r")) == {b"k": b"v"}


def test_restored_directory_follows_the_umask(mem_url, store_path, tmp_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(mem_url)
    old = os.umask(0o022)
    try:
        restore(mem_url, tmp_path / "r")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "r").st_mode & 0o777 == 0o755
