"""`kvb backup`, `kvb restore` and `kvb backups` (python -m kv_backend) with file:// URLs."""

from __future__ import annotations

from helpers import run_kvb

from kv_backend import DB
from kv_backend.backup import list_backups
from kv_backend.cli import main


def test_cli_backup_restore_list_prune(store_path, tmp_path):
    url = f"file://{tmp_path / 'bk'}"
    with DB(store_path, max_file_size=4096) as db:
        for i in range(80):
            db.put(b"k%03d" % i, b"v" * 100)
    out = run_kvb("backup", store_path, url, "--name", "one", "--storage-option", "auto_mkdir=true")
    assert out.returncode == 0, out.stderr
    assert "backup one complete" in out.stdout and "files copied" in out.stdout
    with DB(store_path) as db:
        db.put(b"extra", b"x")
        db.backup(url, name="two")
    out = run_kvb("backups", url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["one", "two"]
    out = run_kvb("restore", url, str(tmp_path / "r"), "--name", "one")
    assert out.returncode == 0 and "restored backup one" in out.stdout, out.stderr
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert len(db) == 80 and b"extra" not in db
    # Restoring into a non-empty directory fails with a message and exit status 2.
    out = run_kvb("restore", url, str(tmp_path / "r"))
    assert out.returncode == 2 and "not empty" in out.stderr
    out = run_kvb("backups", url, "--keep", "1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "removed one" and out.stdout.splitlines()[1].startswith("two ")
    assert [i.name for i in list_backups(url)] == ["two"]


def test_cli_backup_of_a_missing_store_fails_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "typo"
    assert main(["backup", str(missing), str(tmp_path / "bk")]) == 2
    assert "kvb: " in capsys.readouterr().err
    assert not missing.exists()
    assert list_backups(str(tmp_path / "bk")) == []


def test_cli_bad_storage_options_are_one_line_errors(store_path, tmp_path, capsys):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    url = str(tmp_path / "bk")
    for argv in (
        ["backup", store_path, url, "--storage-option", "auto_mkdir"],
        ["backup", store_path, url, "--storage-option", "name=x"],
        ["backup", store_path, url, "--storage-option", "progress=1"],
        ["backup", store_path, url, "--storage-option", "db=x"],
        ["backups", url, "--storage-option", "url=x"],
        ["restore", url, str(tmp_path / "r"), "--storage-option", "path=x"],
        ["backups", url, "--keep", "1", "--storage-option", "keep=2"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("kvb: --storage-option") and len(err.splitlines()) == 1, err
    assert list_backups(url) == [] and not (tmp_path / "r").exists()


def test_cli_storage_option_self_is_a_one_line_error(store_path, tmp_path, capsys):
    """``self=...`` collided with ``db.backup``'s own ``self``: a TypeError traceback, not one line."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
    url = str(tmp_path / "bk")
    for argv in (
        ["backup", store_path, url, "--storage-option", "self=1"],
        ["restore", url, str(tmp_path / "r"), "--storage-option", "self=1"],
        ["backups", url, "--storage-option", "self=1"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("kvb: --storage-option self=") and len(err.splitlines()) == 1, err
    assert list_backups(url) == [] and not (tmp_path / "r").exists()


def test_cli_backups_of_an_empty_or_mistyped_url_says_so_on_stderr(tmp_path, capsys):
    """A mistyped bucket or an unmounted drive lists nothing: the user is told, the list stays empty."""
    url = str(tmp_path / "no-such-place")
    assert main(["backups", url]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == f"kvb: no backups at {url}\n"
