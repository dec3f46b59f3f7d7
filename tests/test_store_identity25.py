"""A store's identity (the ``id`` line of its KVB_FORMAT file), and backups of two stores at one URL.

A store gets a random id when it is created; one made before ids gets it from its first writable open
(under the write lock: many processes opening at once agree on one); a read-only open writes nothing.
A restored or salvaged store keeps the id. Each backup's manifest records it: a backup to a URL whose
manifests name another store is refused before anything is written there, a restore without a name
refuses to choose between two stores, and prune keeps the newest backups of each store.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import child_env, run_kvb, wait_for

import kv_backend.backup as kvbackup
from kv_backend import DB
from kv_backend.backup import BackupError, backup_store, list_backups, prune_backups, restore
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT
from kv_backend.salvage import salvage

ID_LINE = re.compile(r"id [0-9a-f]{32}\Z")


def _format(store: Path) -> bytes:
    return (store / FORMAT_FILE).read_bytes()


def _id_of(store: Path) -> str | None:
    lines = _format(store).decode().split("\n")
    return lines[1][3:] if len(lines) > 1 and ID_LINE.match(lines[1]) else None


def _store(path: Path, keys: dict[bytes, bytes] | None = None) -> Path:
    with DB(str(path)) as db:
        for k, v in (keys or {b"k": path.name.encode()}).items():
            db.put(k, v)
    return path


def _old_store(path: Path) -> Path:
    """A store as versions before ids left it: its format file holds the first line alone."""
    _store(path)
    (path / FORMAT_FILE).write_text(FORMAT_TEXT)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} | {
        str(p.relative_to(root)) + "/": b"" for p in root.rglob("*") if p.is_dir()
    }


def _strip_ids(url: Path) -> None:
    """Rewrite every manifest under ``url`` as versions before ids wrote them (no store_id)."""
    for m in (url / "backups").glob("*.json"):
        doc = json.loads(m.read_bytes())
        doc.pop("checksum")
        doc.pop("store_id", None)
        doc["store_format"] = FORMAT_TEXT
        m.write_bytes(kvbackup._encode_manifest(doc))


# ------------------------------------------------------------------------------------------ the id line


def test_a_new_store_has_an_id_on_the_second_line(tmp_path: Path) -> None:
    store = _store(tmp_path / "a")
    lines = _format(store).decode().split("\n")
    assert lines[0] == FORMAT_TEXT.rstrip("\n") and ID_LINE.match(lines[1]) and lines[2:] == [""]
    other = _store(tmp_path / "b")
    assert _id_of(store) != _id_of(other)
    with DB(str(store), read_only=True) as db:
        assert db.store_id == _id_of(store)


def test_an_old_store_gets_an_id_once_from_its_first_writable_open(tmp_path: Path) -> None:
    store = _old_store(tmp_path / "a")
    os.chmod(store / FORMAT_FILE, 0o640)
    assert _id_of(store) is None
    with DB(str(store)) as db:
        first = _id_of(store)
        assert first is not None and db.store_id == first and db[b"k"] == b"a"
    assert (store / FORMAT_FILE).stat().st_mode & 0o777 == 0o640  # (the mode of the file it replaced)
    assert not (store / (FORMAT_FILE + ".tmp")).exists()
    with DB(str(store)):
        pass
    assert _id_of(store) == first


def test_processes_opening_an_old_store_at_once_agree_on_one_id(tmp_path: Path) -> None:
    store = _old_store(tmp_path / "a")
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "from kv_backend import DB\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
        "with DB(sys.argv[1]) as db: print(db.store_id)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(store), str(go)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for _ in range(6)
    ]
    time.sleep(1.0)  # (all started and waiting)
    go.touch()
    seen = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert seen == {_id_of(store)} and _id_of(store) is not None


def test_a_read_only_open_of_an_old_store_writes_nothing(tmp_path: Path) -> None:
    store = _old_store(tmp_path / "a")
    before = (store / FORMAT_FILE).stat()
    with DB(str(store), read_only=True) as db:
        assert db[b"k"] == b"a" and db.store_id is None
    after = (store / FORMAT_FILE).stat()
    assert _format(store) == FORMAT_TEXT.encode()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("second", ["garbage\n", "id 12AB\n", "id " + "0" * 31 + "\n"])
def test_a_second_line_that_is_no_id_is_left_as_it_is(tmp_path: Path, second: str) -> None:
    store = _store(tmp_path / "a")
    (store / FORMAT_FILE).write_text(FORMAT_TEXT + second)
    with DB(str(store)) as db:
        assert db.store_id is None and db[b"k"] == b"a"
    assert _format(store) == (FORMAT_TEXT + second).encode()
    url = tmp_path / "bk"
    backup_store(str(store), str(url))
    (info,) = list_backups(str(url))
    assert info.ok and info.store_id is None


_KILL_CHILD = """
import os, sys, time
import kv_backend.store_id as s
from kv_backend import DB
flag, where = sys.argv[2], sys.argv[3]
def stop(*a, **k):
    open(flag, "w").close()
    time.sleep(600)
if where == "before_rename":
    real = s.os.replace
    s.os.replace = lambda *a: stop() if a[1].endswith("KVB_FORMAT") else real(*a)
else:
    s.fsync_dir = stop
DB(sys.argv[1])
"""


@pytest.mark.parametrize("where", ["before_rename", "after_rename"])
def test_a_process_killed_while_adding_the_id_leaves_the_format_file_whole(
    tmp_path: Path, where: str
) -> None:
    store = _old_store(tmp_path / "a")
    flag = tmp_path / "flag"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(store), str(flag), where], env=child_env()
    )
    try:
        wait_for(flag.exists, 60, "the child to reach the id's rename")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if where == "before_rename":
        assert _format(store) == FORMAT_TEXT.encode()  # the old file, whole
    else:
        assert _id_of(store) is not None and _format(store) == f"{FORMAT_TEXT}id {_id_of(store)}\n".encode()
    kept = _id_of(store)
    with DB(str(store)) as db:
        assert db[b"k"] == b"a"
        assert db.store_id is not None and (kept is None or db.store_id == kept)
    assert not (store / (FORMAT_FILE + ".tmp")).exists()


def test_restore_and_salvage_keep_the_id(tmp_path: Path) -> None:
    store = _store(tmp_path / "a")
    url = tmp_path / "bk"
    backup_store(str(store), str(url))
    (info,) = list_backups(str(url))
    assert info.store_id == _id_of(store)
    restore(str(url), str(tmp_path / "restored"))
    assert _id_of(tmp_path / "restored") == _id_of(store)
    salvage(str(store), str(tmp_path / "salvaged"))
    assert _id_of(tmp_path / "salvaged") == _id_of(store)
    with DB(str(tmp_path / "salvaged")) as db:
        assert db[b"k"] == b"a"
    # The restored store is the same store: its backups go on at the same URL.
    backup_store(str(tmp_path / "restored"), str(url))
    assert len(list_backups(str(url))) == 2


# ------------------------------------------------------------------------------ two stores, one URL


def test_a_backup_to_a_url_holding_another_stores_backups_is_refused(tmp_path: Path) -> None:
    a, b = _store(tmp_path / "a"), _store(tmp_path / "b")
    url = tmp_path / "bk"
    backup_store(str(a), str(url), name="a1")
    before = _tree(url)
    with DB(str(b)) as db, pytest.raises(BackupError, match="holds the backups of another store") as caught:
        db.backup(str(url), name="b1")
    assert isinstance(caught.value, kvbackup.BackupOfAnotherStoreError)
    assert _id_of(a) in str(caught.value) and "nothing was written there" in str(caught.value)
    with pytest.raises(kvbackup.BackupOfAnotherStoreError):
        backup_store(str(b), str(url))
    assert _tree(url) == before
    r = run_kvb("backup", str(b), str(url))
    assert r.returncode == 2 and "holds the backups of another store" in r.stderr
    assert _tree(url) == before
    assert [i.name for i in list_backups(str(url))] == ["a1"]
    backup_store(str(a), str(url), name="a2")  # (its own store's backups go on)


def test_the_refusal_is_409_backup_url_taken_over_http(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    url = tmp_path / "bk"
    backup_store(str(_store(tmp_path / "a")), str(url), name="a1")
    before = _tree(url)
    with DB(str(tmp_path / "b")) as db, TestClient(create_app(db)) as client:
        r = client.post("/v1/backup", json={"url": str(url), "name": "b1"})
    assert (r.status_code, r.json()["error"]) == (409, "backup_url_taken")
    assert "holds the backups of another store" in r.json()["message"]
    assert _tree(url) == before


def test_manifests_without_an_id_block_nothing(tmp_path: Path) -> None:
    a, b = _store(tmp_path / "a"), _store(tmp_path / "b")
    url = tmp_path / "bk"
    backup_store(str(a), str(url), name="a1")
    _strip_ids(url)  # (as versions before ids wrote it)
    backup_store(str(b), str(url), name="b1")
    infos = {i.name: i for i in list_backups(str(url))}
    assert infos["a1"].ok and infos["a1"].store_id is None and infos["b1"].store_id == _id_of(b)
    r = run_kvb("backups", str(url), "--json")
    assert r.returncode == 0
    assert {x["name"]: x["store_id"] for x in json.loads(r.stdout)["backups"]} == {
        "a1": None,
        "b1": _id_of(b),
    }


def _two_stores_at_one_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Three backups of store a, then three of store b, to one URL, b's written past the refusal (as two
    stores' first backups at the same moment, or older versions, could have); a and b share a file name
    and size with different bytes, so objects of the same name are kept apart only by their token."""
    a = _store(tmp_path / "a", {b"k": b"A" * 100})
    b = _store(tmp_path / "b", {b"k": b"B" * 100})
    url = tmp_path / "bk"
    for i in range(3):
        with DB(str(a)) as db:
            db.put(b"n", b"a%d" % i)
        backup_store(str(a), str(url), name=f"a{i}")
    monkeypatch.setattr(kvbackup, "refuse_another_store", lambda *args, **kwargs: None, raising=False)
    for i in range(3):
        with DB(str(b)) as db:
            db.put(b"n", b"b%d" % i)
        backup_store(str(b), str(url), name=f"b{i}")
    monkeypatch.undo()
    return a, b, url


def test_prune_keeps_the_newest_of_each_store_and_what_they_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, url = _two_stores_at_one_url(tmp_path, monkeypatch)
    assert prune_backups(str(url), keep=2) == ["a0", "b0"]
    assert sorted(i.name for i in list_backups(str(url))) == ["a1", "a2", "b1", "b2"]
    assert prune_backups(str(url), keep=1) == ["a1", "b1"]
    for name, store, value in (("a2", a, b"a2"), ("b2", b, b"b2")):
        restore(str(url), str(tmp_path / f"r-{name}"), name=name)
        with DB(str(tmp_path / f"r-{name}"), read_only=True) as db:
            assert db[b"n"] == value and db[b"k"] == (b"A" if store == a else b"B") * 100
        assert _id_of(tmp_path / f"r-{name}") == _id_of(store)


def test_prune_of_manifests_without_ids_still_keeps_the_objects_the_others_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _a, _b, url = _two_stores_at_one_url(tmp_path, monkeypatch)
    _strip_ids(url)  # (as older versions wrote them: one group, the newest two of all kept)
    assert prune_backups(str(url), keep=2) == ["a0", "a1", "a2", "b0"]
    for name in ("b1", "b2"):
        restore(str(url), str(tmp_path / f"r-{name}"), name=name)  # (every object it names is there)


def test_backups_from_before_ids_count_with_the_only_store_named_there(tmp_path: Path) -> None:
    a = _store(tmp_path / "a")
    url = tmp_path / "bk"
    for i in range(2):
        backup_store(str(a), str(url), name=f"old{i}")
    _strip_ids(url)
    backup_store(str(a), str(url), name="new0")
    assert prune_backups(str(url), keep=1) == ["old0", "old1"]


def test_a_restore_without_a_name_refuses_to_choose_between_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, url = _two_stores_at_one_url(tmp_path, monkeypatch)
    with pytest.raises(BackupError, match="holds the backups of 2 stores") as caught:
        restore(str(url), str(tmp_path / "r"))
    assert _id_of(a) in str(caught.value) and _id_of(b) in str(caught.value) and "name=" in str(caught.value)
    assert not (tmp_path / "r").exists()
    restore(str(url), str(tmp_path / "r"), name="a2")


def test_a_backup_that_another_stores_manifest_overtook_is_not_completed(tmp_path: Path) -> None:
    # Both started on a URL holding no backup: the one whose manifest comes first goes on, the other
    # finds it before writing its own, and leaves no manifest (prune collects what it sent).
    a, b = _store(tmp_path / "a"), _store(tmp_path / "b")
    url = tmp_path / "bk"
    ran: list[str] = []

    def progress(done: int, total: int) -> None:
        if done and not ran:
            ran.append(backup_store(str(b), str(url), name="b0").name)

    with pytest.raises(kvbackup.BackupOfAnotherStoreError, match="while this backup ran"):
        backup_store(str(a), str(url), name="a0", progress=progress)
    assert ran == ["b0"] and [i.name for i in list_backups(str(url))] == ["b0"]
    assert os.listdir(url / "pending") == []
    prune_backups(str(url), keep=1)
    with open(url / "backups" / "b0.json", "rb") as f:
        needed = {e["stored_as"] for e in json.load(f)["files"]}
    assert {f"files/{n}" for n in os.listdir(url / "files")} == needed


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a store to another user")
def test_the_id_added_by_root_keeps_the_owner_and_another_users_open_adds_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root's writable open of another user's old store: the new KVB_FORMAT is still that user's (every
    # file root adds later takes its owner from it). A writable open by a user who does not own the
    # file (a group's member) leaves it as it is, to its owner's next open.
    store = _old_store(tmp_path / "a")
    for p in [store, *store.iterdir()]:
        os.chown(p, 65534, 65534)
    os.chmod(store / FORMAT_FILE, 0o660)
    before = (store / FORMAT_FILE).stat()
    with DB(str(store)) as db:
        assert db.store_id is not None
    after = (store / FORMAT_FILE).stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert after.st_ino != before.st_ino and _id_of(store) is not None
    mine = _old_store(tmp_path / "mine")
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # (a user other than the file's owner, root)
    with DB(str(mine)) as db:
        assert db.store_id is None and db[b"k"] == b"mine"
    assert _format(mine) == FORMAT_TEXT.encode()


def test_a_store_restored_from_a_backup_without_an_id_goes_on_at_its_url_given_the_id(tmp_path: Path) -> None:
    # As docs/backup.md says: without an id, the restored store gets a new one and its backups there are
    # refused; given the original's id (appended to its KVB_FORMAT) first, they go on.
    a = _store(tmp_path / "a")
    url = tmp_path / "bk"
    backup_store(str(a), str(url), name="old")
    _strip_ids(url)
    backup_store(str(a), str(url), name="new")
    for target, given in ((tmp_path / "r1", False), (tmp_path / "r2", True)):
        restore(str(url), str(target), name="old")
        assert _id_of(target) is None
        if given:
            with open(target / FORMAT_FILE, "a") as f:
                f.write(f"id {_id_of(a)}\n")
        with DB(str(target)):
            pass
        if given:
            assert _id_of(target) == _id_of(a)
            backup_store(str(target), str(url), name="restored")
        else:
            assert _id_of(target) not in (None, _id_of(a))
            with pytest.raises(kvbackup.BackupOfAnotherStoreError):
                backup_store(str(target), str(url))
