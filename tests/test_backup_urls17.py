"""Two kinds of backup URL that did not work as written.

A local path with ``::`` in it (``/srv/a::b/bk``, a legal directory name) was split by fsspec into a
chain of filesystems and refused, with the advice to back up to ``b/bk``. A plain path (no
``scheme://``) is a path: backup, listing, restore and prune now use that directory; a ``file://``
URL of it, which fsspec cannot read as one, is refused with the path to give instead.

A ``zip::`` or ``tar::`` URL (fsspec's read-only archives) failed a backup with "cannot write ...:
ValueError: write() requires mode 'w'" and a prune with "NotImplementedError: " after deleting
nothing; a storage option ``mode=w`` emptied the archive before anything was said. A backup or
prune there is now refused before the archive is opened, naming what to do; listing and restoring
from an archive of a backup work, also from a tar made with ``tar -C DIR -cf x.tar .`` (members
named ``./backups/...``), and a URL one level above the backup's directories in an archive says
which URL to give."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_backup_s3 import s3, s3_server  # noqa: F401 - the moto server and a fresh bucket
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB, BackupError
from kv_backend.backup import backup_store, is_url_chain, list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "store")
    with DB(path) as db:
        db.put(b"k", b"one")
    return path


def _value(path: str) -> bytes | None:
    with DB(path, read_only=True) as db:
        return db.get(b"k")


def _backups(path: str) -> list[str]:
    return sorted(os.listdir(os.path.join(path, "backups")))


@pytest.mark.parametrize("url", ["/x/a::b/bk", "./a::b", "a/b::c", "~/a::b", "/tmp/x::"])
def test_a_path_with_double_colons_is_no_chain(url):
    assert not is_url_chain(url)


@pytest.mark.parametrize(
    "url", ["simplecache::s3://b/k", "zip::file:///x.zip", "zip://top::file:///x", "a::b"]
)
def test_a_chain_starts_with_a_protocol(url):
    assert is_url_chain(url)


@pytest.mark.parametrize("how", ["absolute", "relative", "pathlib"])
def test_a_path_with_double_colons_backs_up_lists_restores_and_prunes(store, tmp_path, monkeypatch, how):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "a::b" / "bk"
    url = {"absolute": str(local), "relative": "./a::b/bk", "pathlib": local}[how]
    backup_store(store, url, name="first")
    with DB(store) as db:
        db.put(b"k", b"two")
    backup_store(store, url, name="second")
    assert _backups(str(local)) == ["first.json", "second.json"]
    assert sorted(os.listdir(tmp_path)) == ["a::b", "store"]  # nothing under ./a or anywhere else
    assert [b.name for b in list_backups(url)] == ["first", "second"]
    restore(url, str(tmp_path / "r::1"), name="first")
    assert _value(str(tmp_path / "r::1")) == b"one"
    assert prune_backups(url, keep=1) == ["first"]
    restore(url, str(tmp_path / "r2"))
    assert _value(str(tmp_path / "r2")) == b"two"


def test_a_path_ending_in_double_colons_is_a_directory(store, tmp_path):
    url = str(tmp_path / "bk::")
    backup_store(store, url, name="one")
    assert _backups(url) == ["one.json"]


def test_kvb_takes_a_path_with_double_colons(store, tmp_path, capsys):
    url = str(tmp_path / "x::y")
    assert run(capsys, "backup", store, url, "--name", "one")[0] == 0
    code, out, err = run(capsys, "backups", url)
    assert code == 0 and out.startswith("one  "), (out, err)
    assert run(capsys, "restore", url, str(tmp_path / "r"))[0] == 0
    assert _value(str(tmp_path / "r")) == b"one"


def test_a_file_url_with_double_colons_says_to_give_the_path(store, tmp_path):
    path = f"{tmp_path}/a::b/bk"
    with pytest.raises(ConfigurationError) as e:
        backup_store(store, f"file://{path}")
    assert f"give the path itself: {path}" in str(e.value)
    with pytest.raises(ConfigurationError, match=r"give the path itself: \./a::b"):
        list_backups("a::b")  # a bare word before '::' reads as a protocol: ./ makes it a path
    assert sorted(os.listdir(tmp_path)) == ["store"]


def test_chains_that_fsspec_ignores_are_still_refused_as_such(tmp_path):
    with pytest.raises(ConfigurationError, match="wraps no other filesystem"):
        list_backups("memory::file:///x")
    with pytest.raises(ConfigurationError, match="wraps no other filesystem"):
        list_backups(f"file://{tmp_path}::s3://bucket/kv")


# ---------------------------------------------------------------- archives


@pytest.fixture
def backups(store, tmp_path):
    """A backup URL with two backups ("first": b"one", "second": b"two"), as a directory."""
    url = str(tmp_path / "bk")
    backup_store(store, url, name="first")
    with DB(store) as db:
        db.put(b"k", b"two")
    backup_store(store, url, name="second")
    return url


def _members(top: str, prefix: str) -> list[tuple[str, str]]:
    out = []
    for root, _dirs, files in os.walk(top):
        for f in files:
            full = os.path.join(root, f)
            out.append((full, prefix + os.path.relpath(full, top)))
    return out


def _zip(top: str, archive: str, prefix: str = "") -> str:
    with zipfile.ZipFile(archive, "w") as z:
        for full, name in _members(top, prefix):
            z.write(full, name)
    return archive


def _tar(top: str, archive: str, arcname: str) -> str:
    with tarfile.open(archive, "w:gz") as t:
        t.add(top, arcname=arcname)
    return archive


def _tar_reads_gzip() -> bool:
    """Whether this fsspec release's tar filesystem reads the members of a gzip-compressed tar (2023.3's
    fails with BadGzipFile on one past its first buffer)."""
    import io
    import tempfile

    import fsspec.core

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.tar.gz")
        with tarfile.open(path, "w:gz") as t:
            for name in ("a/x", "a/y"):
                info = tarfile.TarInfo(name)
                info.size = 200_000
                t.addfile(info, io.BytesIO(os.urandom(200_000)))
        try:
            fs, _ = fsspec.core.url_to_fs(f"tar::file://{path}")
            return len(fs.cat("a/y")) == len(fs.cat("a/x")) == 200_000
        except Exception:
            return False


needs_gzip_tar = pytest.mark.skipif(
    not _tar_reads_gzip(), reason="this fsspec release's tar filesystem cannot read a gzip-compressed tar"
)


@pytest.mark.parametrize(
    "kind",
    [
        "zip",
        "zip_under_dir",
        pytest.param("tar_of_dot", marks=needs_gzip_tar),
        pytest.param("tar_under_dir", marks=needs_gzip_tar),
    ],
)
def test_a_backup_restores_from_an_archive_of_it(backups, tmp_path, kind):
    pytest.importorskip("fsspec.implementations.zip")
    zipped, tarred = str(tmp_path / "bk.zip"), str(tmp_path / "bk.tar.gz")
    url = {
        "zip": lambda: f"zip::file://{_zip(backups, zipped)}",
        "zip_under_dir": lambda: f"zip://old/bk::file://{_zip(backups, zipped, 'old/bk/')}",
        "tar_of_dot": lambda: f"tar::file://{_tar(backups, tarred, '.')}",  # tar -C bk -czf x .
        "tar_under_dir": lambda: f"tar://bk::file://{_tar(backups, tarred, 'bk')}",
    }[kind]()
    assert [b.name for b in list_backups(url)] == ["first", "second"]
    report = restore(url, str(tmp_path / "r"))
    assert (report.name, _value(str(tmp_path / "r"))) == ("second", b"two")
    restore(url, str(tmp_path / "r1"), name="first")
    assert _value(str(tmp_path / "r1")) == b"one"


def test_an_archive_one_level_above_the_backups_names_the_url_to_give(backups, tmp_path, capsys):
    archive = _zip(backups, str(tmp_path / "bk.zip"), "bk/")
    url = f"zip::file://{archive}"
    with pytest.raises(Exception, match=f"holds the backups under bk/: give zip://bk::file://{archive}"):
        restore(url, str(tmp_path / "r"))
    code, _out, err = run(capsys, "backups", url)
    assert code == 0 and f"give zip://bk::file://{archive}" in err, err
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_backup_or_prune_into_an_archive_is_refused_and_changes_nothing(store, backups, tmp_path, kind):
    if kind == "zip":
        archive = _zip(backups, str(tmp_path / "bk.zip"))
    else:
        archive = _tar(backups, str(tmp_path / "bk.tar.gz"), ".")
    before = Path(archive).read_bytes()
    url = f"{kind}::file://{archive}"
    for call in (
        lambda: backup_store(store, url, name="third"),
        lambda: prune_backups(url, keep=0),
        lambda: backup_store(store, f"simplecache::{url}"),
    ):
        with pytest.raises(ConfigurationError, match=f"inside a {kind} archive, which fsspec reads only"):
            call()
    with DB(store) as db, pytest.raises(ConfigurationError, match="back up to a directory or a bucket"):
        db.backup(url)
    with pytest.raises(ConfigurationError, match="reads only"):
        backup_store(store, f"{kind}::file://{tmp_path}/new.{kind}")
    assert Path(archive).read_bytes() == before
    assert not os.path.exists(f"{tmp_path}/new.{kind}")


def test_kvb_refuses_a_backup_into_a_zip_in_one_line(store, backups, tmp_path, capsys):
    url = f"zip::file://{_zip(backups, str(tmp_path / 'bk.zip'))}"
    code, _out, err = run(capsys, "backup", store, url)
    assert code == 2 and err.count("\n") == 1 and "reads only" in err, err
    code, _out, err = run(capsys, "backups", url, "--keep", "1")
    assert code == 2 and "reads only" in err, err
    assert [b.name for b in list_backups(url)] == ["first", "second"]


@pytest.mark.parametrize("options", [{"zip": {"mode": "w"}}, {"zip": {"mode": "a"}}, {"mode": "w"}])
def test_a_write_mode_for_an_archive_is_refused_before_it_is_emptied(backups, tmp_path, options):
    archive = _zip(backups, str(tmp_path / "bk.zip"))
    before = Path(archive).read_bytes()
    with pytest.raises(ConfigurationError, match="leave mode out"):
        list_backups(f"zip::file://{archive}", **options)
    assert Path(archive).read_bytes() == before
    assert [b.name for b in list_backups(f"zip::file://{archive}", mode="r")] == ["first", "second"]


@pytest.mark.parametrize("form", ["simplecache::{}", "simplecache::file://{}", "filecache::local://{}"])
def test_a_path_with_double_colons_behind_a_cache_is_refused_not_cut_short(store, tmp_path, form):
    # fsspec split it there and dropped the rest: the backup went to the directory before '::'
    path = f"{tmp_path}/a::b/bk"
    with pytest.raises(ConfigurationError) as e:
        backup_store(store, form.format(path))
    assert f"give the path alone, {path}" in str(e.value)
    with pytest.raises(ConfigurationError, match="no chained URL can name it"):
        list_backups(f"zip::{tmp_path}/a::b.zip")
    assert sorted(os.listdir(tmp_path)) == ["store"]


def test_an_object_store_path_with_double_colons_is_refused_not_cut_short(s3, store, tmp_path):  # noqa: F811
    # fsspec split s3://bucket/a::b/kv there and dropped the rest: the backup went to s3://bucket/a
    url, options, fs = s3
    bucket = url[len("s3://") :].split("/")[0]
    for bad in (f"s3://{bucket}/a::b/kv", f"simplecache::s3://{bucket}/a::b/kv"):
        with pytest.raises(ConfigurationError, match="no chained URL can name it: choose a name without"):
            backup_store(store, bad, **({"s3": options} if bad.startswith("simple") else options))
    with pytest.raises(ConfigurationError, match="wraps no other filesystem"):
        backup_store(store, f"s3://{bucket}/kv::file://{tmp_path}/bk", s3=options)
    assert fs.find(bucket) == []
    assert sorted(os.listdir(tmp_path)) == ["store"]


@needs_gzip_tar
def test_a_tgz_says_how_to_name_its_compression(backups, tmp_path):
    url = f"tar::file://{_tar(backups, str(tmp_path / 'bk.tgz'), '.')}"
    with pytest.raises(BackupError, match=r"tar=\{'compression': 'gzip'\}"):
        list_backups(url)
    assert [b.name for b in list_backups(url, tar={"compression": "gzip"})] == ["first", "second"]


def test_a_damaged_file_in_an_archive_is_named_by_a_url_that_reaches_it(backups, tmp_path):
    with open(os.path.join(backups, "backups", "first.json"), encoding="utf-8") as f:
        stored = json.load(f)["files"][0]["stored_as"].removeprefix("files/")
    with open(os.path.join(backups, "files", stored), "r+b") as f:
        f.seek(20)
        f.write(b"\xff")
    archive = _zip(backups, str(tmp_path / "bk.zip"), "old/bk/")
    url = f"zip://old/bk::file://{archive}"
    with pytest.raises(BackupError) as e:
        restore(url, str(tmp_path / "r"), name="first")
    named = f"zip://old/bk/files/{stored}::file://{archive}"
    assert named in str(e.value), str(e.value)
    assert [b.name for b in list_backups(named.replace(f"/files/{stored}", ""))] == ["first", "second"]
