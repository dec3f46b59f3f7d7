"""Restore and salvage into a directory inside a live store are refused, from every entry point.

A restored (or salvaged) store built inside another store's directory sits among that store's files:
a backup of it, ``kv_restore --replace``, a cache's ``clear()`` or a user cleaning up takes it for
part of that store, and its temporary copy lies there while the work runs. Backup already refused
the equivalent ("lies inside the store"); restore and salvage accepted it.
"""

from __future__ import annotations

import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB, BackupError
from kv_backend.backup import restore
from kv_backend.errors import KVError
from kv_backend.salvage import SalvageError, salvage


@pytest.fixture
def live(tmp_path):
    """A store at tmp_path/live (open for the test, as a running service holds it), a backup of it
    at tmp_path/bk named "b", and a second store tmp_path/src to salvage: (db, backup URL)."""
    with DB(str(tmp_path / "src")) as other:
        other.put(b"s", b"salvaged")
    with DB(str(tmp_path / "live")) as db:
        db.put(b"k", b"v")
        db.backup(str(tmp_path / "bk"), name="b")
        yield db, str(tmp_path / "bk")


def _inside_paths(tmp_path):
    live = tmp_path / "live"
    (live / "empty").mkdir()
    os.symlink(live / "empty", tmp_path / "link-to-empty")  # resolves to a directory inside the store
    os.symlink(live, tmp_path / "link-to-store")
    return [
        str(live / "sub"),  # missing
        str(live / "empty"),  # an empty directory
        str(live / "a" / "b" / "c"),  # missing, with missing parents
        str(tmp_path / "link-to-empty"),
        str(tmp_path / "link-to-store" / "sub"),
    ]


def _listing(path):
    return sorted((os.path.relpath(r, path), sorted(d), sorted(f)) for r, d, f in os.walk(path))


def test_restore_inside_a_store_is_refused_before_anything_is_made(live, tmp_path):
    db, url = live
    dests = _inside_paths(tmp_path)
    before = _listing(db.path)
    for dest in dests:
        with pytest.raises(BackupError) as info:
            restore(url, dest)
        msg = str(info.value)
        assert f"lies inside the kv_backend store {db.path}" in msg, msg
        assert "outside any store" in msg  # says what to do
        assert _listing(db.path) == before, dest  # no directory, no temporary copy left in the store
    assert db.get(b"k") == b"v"
    # Side by side with the store: fine.
    report = restore(url, str(tmp_path / "beside"))
    assert report.records == 1
    with DB(str(tmp_path / "beside"), read_only=True) as copy:
        assert copy.get(b"k") == b"v"


def test_restore_inside_a_nested_store_names_the_nearest_one(live, tmp_path):
    _db, url = live
    outer = tmp_path / "outer"
    with DB(str(outer)), DB(str(outer / "inner")):  # the engine allows a store inside a store
        pass
    inner_before = _listing(outer / "inner")
    with pytest.raises(BackupError, match=f"inside the kv_backend store {outer / 'inner'},"):
        restore(url, str(outer / "inner" / "deeper" / "x"))
    with pytest.raises(BackupError, match=f"inside the kv_backend store {outer},"):
        restore(url, str(outer / "beside-inner"))
    assert _listing(outer / "inner") == inner_before


def test_restore_into_a_directory_that_holds_a_store_is_refused(live, tmp_path):
    """The other way round: a directory with a store below it is not empty, so it is refused too."""
    _db, url = live
    holder = tmp_path / "holder"
    with DB(str(holder / "deep" / "store")) as inner:
        inner.put(b"i", b"inner")
    with pytest.raises(BackupError, match="the directory is not empty"):
        restore(url, str(holder))
    with DB(str(holder / "deep" / "store"), read_only=True) as inner:
        assert inner.get(b"i") == b"inner"


def test_salvage_inside_another_store_is_refused(live, tmp_path):
    db, _url = live
    src = str(tmp_path / "src")
    dsts = _inside_paths(tmp_path)
    before = _listing(db.path)
    for dst in dsts:
        with pytest.raises(SalvageError) as info:
            salvage(src, dst)
        assert f"lies inside the kv_backend store {db.path}" in str(info.value)
        assert isinstance(info.value, KVError)
        assert _listing(db.path) == before, dst
    # Inside the source itself it keeps its own message (the damaged store is only read).
    with pytest.raises(SalvageError, match="lies inside it"):
        salvage(src, os.path.join(src, "copy"))
    report = salvage(src, str(tmp_path / "salvaged"))
    assert report.keys_copied == 1 and report.clean


def test_cli_restore_and_salvage_inside_a_store_exit_2_with_one_line(live, tmp_path, capsys):
    db, url = live
    before = _listing(db.path)
    dest = os.path.join(db.path, "restored")
    code, out, err = run(capsys, "restore", url, dest, "--name", "b")
    assert (code, out) == (2, ""), err
    assert err.startswith("kvb: ") and err.count("\n") == 1 and "lies inside the kv_backend store" in err
    code, out, err = run(capsys, "salvage", str(tmp_path / "src"), dest)
    assert (code, out) == (2, ""), err
    assert err.startswith("kvb: ") and err.count("\n") == 1 and "lies inside the kv_backend store" in err
    assert _listing(db.path) == before


def test_http_backup_into_another_store_is_a_400(tmp_path):
    """The HTTP interface has no restore or salvage route; its backup route refuses the same places."""
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    with DB(str(tmp_path / "other")) as other:
        other.put(b"o", b"other")
    with DB(str(tmp_path / "served")) as db, TestClient(create_app(db)) as client:
        db.put(b"k", b"v")
        for where in (tmp_path / "other" / "bk", tmp_path / "served" / "bk"):
            r = client.post("/v1/backup", json={"url": f"file://{where}"})
            assert r.status_code == 400, r.text
            assert "lies inside" in r.json()["message"]
            assert not where.exists()
        assert client.post("/v1/restore", json={"url": "x"}).status_code == 404
