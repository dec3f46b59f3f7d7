"""``kvb backup`` (``backup_store``) of a store made before ids never gave it one: it does not open the store
for writing, so its backups named no store, and neither blocked another store's backups at their URL nor
were told from them by prune and restore. It now gives the store its id, under the write lock it takes
for its snapshot anyway (as the first writable open would), where it may: the backup and every later one
name that id. A user who may not write the store's format file backs it up without one, as before."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers import nobody_dir, run_as_nobody, run_kvb, spawn_python, stop_process

from kv_backend import DB
from kv_backend.backup import (
    BackupOfAnotherStoreError,
    backup_store,
    list_backups,
    prune_backups,
    restore,
)
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT
from kv_backend.store_id import read_store_id


def _old_store(path: Path, value: bytes = b"v") -> str:
    """A store as versions before ids left it: its format file holds the first line alone."""
    with DB(str(path)) as db:
        db.put(b"k", value)
    (path / FORMAT_FILE).write_text(FORMAT_TEXT)
    return str(path)


def test_a_backup_gives_a_store_without_an_id_its_id_and_its_backups_are_one_stores(tmp_path):
    store = _old_store(tmp_path / "s", b"first")
    url = str(tmp_path / "bk")
    r = run_kvb("backup", store, url, "--name", "b1")
    assert r.returncode == 0, r.stderr
    given = read_store_id(store)
    assert given is not None
    assert [(i.name, i.store_id) for i in list_backups(url)] == [("b1", given)]
    with DB(store) as db:  # a writable open keeps it
        assert db.store_id == given
        db.put(b"k", b"second")
    backup_store(store, url, name="b2")
    assert [(i.name, i.store_id) for i in list_backups(url)] == [("b1", given), ("b2", given)]
    # One store's backups: prune keeps its newest alone, and a restore without a name takes it.
    assert prune_backups(url, keep=1) == ["b1"]
    restore(url, str(tmp_path / "restored"))
    assert read_store_id(str(tmp_path / "restored")) == given
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert db[b"k"] == b"second"


def test_another_stores_backup_to_the_url_of_a_store_backed_up_without_an_id_is_refused(tmp_path):
    old = _old_store(tmp_path / "old")
    url = str(tmp_path / "bk")
    backup_store(old, url, name="old1")
    other = tmp_path / "other"
    with DB(str(other)) as db:
        db.put(b"k", b"other")
    with pytest.raises(BackupOfAnotherStoreError, match="holds the backups of another store"):
        backup_store(str(other), url, name="other1")
    assert [i.name for i in list_backups(url)] == ["old1"]


def test_a_backup_of_a_store_with_an_id_leaves_its_format_file_alone(tmp_path):
    store = tmp_path / "s"
    with DB(str(store)) as db:
        db.put(b"k", b"v")
    before = os.stat(store / FORMAT_FILE)
    backup_store(str(store), str(tmp_path / "bk"))
    after = os.stat(store / FORMAT_FILE)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_read_only_db_backup_adds_no_id(tmp_path):
    """``db.backup`` of a store opened read-only writes nothing to it: the backup names no store."""
    store = _old_store(tmp_path / "s")
    with DB(store, read_only=True) as db:
        db.backup(str(tmp_path / "bk"))
    assert read_store_id(store) is None
    assert [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [None]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the backup as another user")
def test_a_user_who_may_not_write_the_store_backs_it_up_without_an_id():
    base = tempfile.mkdtemp(prefix="kvb-backup-id-")  # (the session's, which nobody may reach)
    try:
        os.chmod(base, 0o755)
        store = _old_store(Path(base) / "s")
        os.chmod(store, 0o755)
        for name in os.listdir(store):
            os.chmod(os.path.join(store, name), 0o644)
        url = os.path.join(nobody_dir(base, "mine"), "bk")
        before = os.stat(os.path.join(store, FORMAT_FILE))

        def back_up() -> list[str | None]:
            backup_store(store, url, name="b1")
            return [i.store_id for i in list_backups(url)]

        assert run_as_nobody(back_up) == [None]
        after = os.stat(os.path.join(store, FORMAT_FILE))
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert read_store_id(store) is None
    finally:
        shutil.rmtree(base, ignore_errors=True)


#: A process that, once ``go`` exists, gives the store an id: a backup of it (to ``url``), or a writable
#: open (``url`` "-"); it prints the id the backup's manifest names, or the open's.
RACER = """
import os, sys, time
from kv_backend import DB
from kv_backend.backup import backup_store, list_backups

store, go, url = sys.argv[1:4]
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)
if url == "-":
    with DB(store) as db:
        print(db.store_id)
else:
    backup_store(store, url)
    (info,) = list_backups(url)
    print(info.store_id)
"""


def test_backups_and_writable_opens_of_an_old_store_at_once_agree_on_one_id(tmp_path):
    store = _old_store(tmp_path / "s")
    go = tmp_path / "go"
    targets = [str(tmp_path / f"bk{i}") for i in range(3)] + ["-"] * 3
    procs = [spawn_python(RACER, store, str(go), t, stdout=subprocess.PIPE, text=True) for t in targets]
    try:
        go.touch()
        seen = [p.communicate(timeout=120)[0].strip() for p in procs]
    finally:
        for p in procs:
            stop_process(p)
    assert all(p.returncode == 0 for p in procs)
    given = read_store_id(store)
    assert given is not None and seen == [given] * len(targets)
