"""A local backup of a store whose directory keeps other users out (0700) wrote its copies under the
umask of whoever ran it: 0644 files in 0755 directories, so every user of the machine could read
what the store held (manage.py kv_backup alone restricted them). The files and directories a backup
creates now get no permission the store's directory withholds, whatever the umask."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest
from helpers import run_as_nobody, tree_modes
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import restore


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize(
    ("store_mode", "file_mode", "dir_mode"), [(0o700, 0o600, 0o700), (0o2750, 0o640, 0o750)]
)
def test_a_local_backup_withholds_what_the_store_directory_withholds(
    tmp_path, capsys, umask_022, store_mode, file_mode, dir_mode
):
    store = str(tmp_path / "store")
    os.mkdir(store)
    os.chmod(store, store_mode)
    with DB(store) as db:
        db.put(b"secret", b"hunter2")
        db.backup(str(tmp_path / "api" / "kv"), name="one")  # (its parent is created too)
        db.put(b"secret", b"hunter3")
        db.backup(str(tmp_path / "api" / "kv"), name="two")
    code, _out, err = run(capsys, "backup", store, str(tmp_path / "cli"), "--name", "one")
    assert code == 0, err
    for root in ("api", "cli"):
        modes = tree_modes(str(tmp_path / root))
        assert modes and all(
            mode == (dir_mode if os.path.isdir(tmp_path / root / rel) else file_mode)
            for rel, mode in modes.items()
        ), (root, {k: oct(v) for k, v in modes.items()})
    restore(str(tmp_path / "api" / "kv"), tmp_path / "restored")
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert db.get(b"secret") == b"hunter3"


def test_a_store_in_a_read_only_directory_still_gives_a_backup_its_owner_can_write(umask_022):
    base = tempfile.mkdtemp(prefix="kvb-modes14-")  # (not under tmp_path, which others may not enter)
    try:
        os.chmod(base, 0o777)
        store = os.path.join(base, "store")
        with DB(store) as db:
            db.put(b"k", b"v")
        for name in os.listdir(store):
            os.chmod(os.path.join(store, name), 0o644)
        os.chmod(store, 0o555)  # an archived store, read-only for everyone (its owner too)

        def back_up_twice() -> dict[str, int]:
            with DB(store, read_only=True) as db:
                db.backup(os.path.join(base, "bk"), name="one")
                db.backup(os.path.join(base, "bk"), name="two")
            return tree_modes(os.path.join(base, "bk"))

        modes = run_as_nobody(back_up_twice)
        assert set(modes.values()) == {0o755, 0o644}, {k: oct(v) for k, v in modes.items()}
    finally:
        os.chmod(os.path.join(base, "store"), 0o755)
        shutil.rmtree(base)


def test_a_restore_into_a_new_directory_withholds_what_the_store_directory_withheld(tmp_path, umask_022):
    """The restored store of a 0700 store's backup came back world-readable (0755, 0644 files) where
    the restore created its directory: the manifest now keeps the mode of the store's directory."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with DB(str(private)) as db:
        db.put(b"secret", b"hunter2")
        db.backup(str(tmp_path / "bk"), name="private")
    with DB(str(tmp_path / "open")) as db:  # 0755 under this umask
        db.put(b"k", b"v")
        db.backup(str(tmp_path / "bk-open"), name="open")  # (another store: a URL of its own)
    restore(str(tmp_path / "bk"), tmp_path / "new" / "r1", name="private")
    assert tree_modes(str(tmp_path / "new")) == {
        "r1": 0o700,
        **{f"r1/{n}": 0o600 for n in os.listdir(tmp_path / "new" / "r1")},
    }
    restore(str(tmp_path / "bk-open"), tmp_path / "r2", name="open")
    assert set(tree_modes(str(tmp_path / "r2")).values()) == {0o644}
    assert stat.S_IMODE(os.stat(tmp_path / "r2").st_mode) == 0o755
    # An empty directory prepared for it still decides (a group's 2770: 0660 files).
    (tmp_path / "r3").mkdir()
    os.chmod(tmp_path / "r3", 0o2770)
    restore(str(tmp_path / "bk"), tmp_path / "r3", name="private")
    assert stat.S_IMODE(os.stat(tmp_path / "r3").st_mode) == 0o2770
    assert set(tree_modes(str(tmp_path / "r3")).values()) == {0o660}
    with DB(str(tmp_path / "new" / "r1")) as db:
        assert db.get(b"secret") == b"hunter2"
        db.put(b"more", b"x")


@pytest.mark.parametrize("prepared", [None, 0o2770])
def test_nobody_else_can_read_a_restore_while_it_is_built(tmp_path, umask_022, prepared):
    """The temporary directory a restore downloads into was made under the umask (0755): for the
    whole download, every user could read the copy of a store its directory kept from them."""
    store = tmp_path / "private"
    store.mkdir(mode=0o700)
    with DB(str(store), max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"secret" * 10)
        db.backup(str(tmp_path / "bk"), name="b")
    dest = tmp_path / "out" / "restored"
    if prepared is not None:
        dest.mkdir(parents=True)
        os.chmod(dest, prepared)
    seen = []

    def look(done: int, total: int) -> None:
        building = [n for n in os.listdir(dest.parent) if n.startswith(".restored.restore-")]
        seen.extend(stat.S_IMODE(os.stat(dest.parent / n).st_mode) for n in building)

    restore(str(tmp_path / "bk"), dest, progress=look)
    assert seen and set(seen) == {0o700}
    assert stat.S_IMODE(os.stat(dest).st_mode) == (0o700 if prepared is None else prepared)
