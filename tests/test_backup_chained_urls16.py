"""A backup URL that reaches the local disk through another fsspec filesystem (``simplecache::``,
``filecache::``, ``blockcache::`` or ``dir::`` over ``file://``) was not taken for a local one: the
copies of a 0700 store were written 0644 (readable by every user), and such a URL inside the store
itself was accepted (a ``bk/`` directory among the store's files). ``dir::file:///X`` wrote under
``X/X``: fsspec takes the URL's path both for the directory of its ``dir::`` filesystem and for the
path in it. Such URLs now get what ``file://`` gets, and ``dir::file:///X`` is refused."""

from __future__ import annotations

import os

import pytest
from helpers import tree_modes
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import BackupExistsError, backup_store, list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError

CACHES = ("simplecache", "filecache", "blockcache")


@pytest.fixture
def store(tmp_path):
    old = os.umask(0o022)
    path = str(tmp_path / "store")
    os.mkdir(path, 0o700)
    with DB(path) as db:
        db.put(b"k", b"one")
    yield path
    os.umask(old)


def _check_private(root: str) -> None:
    modes = tree_modes(root)
    assert modes, root
    for rel, mode in modes.items():
        want = 0o700 if os.path.isdir(os.path.join(root, rel)) else 0o600
        assert mode == want, (rel, oct(mode))


def _round_trip(store: str, url: str, local: str, tmp_path, **options) -> None:
    """Two backups through ``url``, which lands in the local directory ``local``: private copies,
    listed, restored, pruned to one."""
    backup_store(store, url, name="first", **options)
    with DB(store) as db:
        db.put(b"k", b"two")
    backup_store(store, url, name="second", **options)
    _check_private(local)
    assert [b.name for b in list_backups(url, **options)] == ["first", "second"]
    assert sorted(os.listdir(os.path.join(local, "backups"))) == ["first.json", "second.json"]
    restore(url, str(tmp_path / "restored"), name="first", **options)
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert db.get(b"k") == b"one"
    assert prune_backups(url, keep=1, **options) == ["first"]
    assert [b.name for b in list_backups(url, **options)] == ["second"]
    restore(url, str(tmp_path / "newest"), **options)
    with DB(str(tmp_path / "newest"), read_only=True) as db:
        assert db.get(b"k") == b"two"


@pytest.mark.parametrize("cache", CACHES)
def test_a_cache_over_file_is_a_local_backup(store, tmp_path, cache):
    local = str(tmp_path / "bk")
    _round_trip(store, f"{cache}::file://{local}", local, tmp_path)


def _dir_takes_the_path_twice() -> bool:
    """Whether this fsspec gives dir:: the URL's path both as its directory and as the path in it (as
    releases since 2023 do; 2023.3 takes it as the directory alone, and refuses a dir= option beside)."""
    import fsspec.core

    return fsspec.core.url_to_fs("dir::file:///tmp/x")[1] != ""


needs_dir_chains = pytest.mark.skipif(
    not _dir_takes_the_path_twice(),
    reason="this fsspec release takes dir::file:///X as the directory X alone (and refuses dir= beside it)",
)


@needs_dir_chains
def test_dir_over_file_writes_where_its_directory_and_path_say(store, tmp_path):
    # dir::file:///sub with the dir:: filesystem's directory given as an option: /base/sub.
    base = tmp_path / "base"
    base.mkdir()
    _round_trip(store, "dir::file:///sub", str(base / "sub"), tmp_path, dir={"path": str(base)})
    assert os.listdir(base) == ["sub"]


def test_kvb_backup_through_a_cache_withholds_what_the_store_withholds(store, tmp_path, capsys):
    local = str(tmp_path / "cli")
    code, _out, err = run(capsys, "backup", store, f"simplecache::file://{local}", "--name", "one")
    assert code == 0, err
    _check_private(local)


@pytest.mark.parametrize("url", [f"{c}::file://{{store}}/bk" for c in CACHES])
def test_a_chained_url_inside_the_store_is_refused(store, url):
    before = sorted(os.listdir(store))
    with pytest.raises(ConfigurationError, match="lies inside the store"):
        backup_store(store, url.format(store=store))
    assert sorted(os.listdir(store)) == before


@needs_dir_chains
def test_a_dir_url_inside_the_store_is_refused(store):
    before = sorted(os.listdir(store))
    with pytest.raises(ConfigurationError, match="lies inside the store"):
        backup_store(store, "dir::file:///bk", dir={"path": store})
    assert sorted(os.listdir(store)) == before


@needs_dir_chains
def test_dir_over_file_naming_its_directory_twice_is_refused(store, tmp_path):
    target = tmp_path / "bk"
    url = f"dir::file://{target}"
    with pytest.raises(ConfigurationError, match=f"names its directory twice.*write file://{target} ") as e:
        backup_store(store, url)
    assert f"{target}/{str(target).lstrip('/')}" in str(e.value)
    with pytest.raises(ConfigurationError, match="names its directory twice"):
        list_backups(url)
    assert not target.exists()


def test_a_cache_over_memory_backs_up_and_restores(store, tmp_path):
    url = f"simplecache::memory://chained16-{os.getpid()}"
    try:
        _round_trip_memory(store, url, tmp_path)
    finally:
        prune_backups(url, keep=0)


def _round_trip_memory(store: str, url: str, tmp_path) -> None:
    backup_store(store, url, name="first")
    with pytest.raises(BackupExistsError):
        backup_store(store, url, name="first")
    restore(url, str(tmp_path / "restored"))
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert db.get(b"k") == b"one"
