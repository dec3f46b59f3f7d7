"""The URL of a backup's manifests (``URL/backups``) given for the backup URL.

Looking for the backups, one finds ``URL/backups/NAME.json``; given as the URL, ``URL/backups`` (or
``URL/files``) listed as empty: ``kvb restore`` said "no complete backup at URL/backups (no manifest
under backups/)" and ``kvb backups`` "no backups at URL/backups", with the backups one level up.
"""

from __future__ import annotations

import pytest
from helpers import run_kvb
from test_backup_same_name_race15 import s3_options  # noqa: F401 - a fixture (moto's S3 server)

from kv_backend import DB, BackupError
from kv_backend.backup import misplaced_url_hint, restore


@pytest.fixture
def backed_up(tmp_path):
    url = str(tmp_path / "kv-backups")
    with DB(str(tmp_path / "store")) as db:
        db.put(b"k", b"v")
        db.backup(url, name="nightly")
    return url


@pytest.mark.parametrize("sub", ["backups", "files", "pending", "backups/"])
def test_a_directory_of_a_backup_url_names_the_backup_url(backed_up, tmp_path, sub):
    for url, above in [
        (f"{backed_up}/{sub}", backed_up),
        (f"file://{backed_up}/{sub}", f"file://{backed_up}"),
    ]:
        given = url.rstrip("/")
        hint = f": {given} is the {sub.rstrip('/')}/ directory of the backup URL {above}: give {above}"
        assert misplaced_url_hint(url) == hint
        with pytest.raises(BackupError) as info:
            restore(url, tmp_path / "restored")
        assert str(info.value) == f"no complete backup at {given}{hint}"
        assert not (tmp_path / "restored").exists()
    out = run_kvb("backups", f"{backed_up}/{sub}")
    assert out.returncode == 0 and out.stdout == ""
    hint = (
        f": {backed_up}/{sub.rstrip('/')} is the {sub.rstrip('/')}/ directory of the backup URL {backed_up}"
    )
    assert out.stderr == f"kvb: no backups at {backed_up}/{sub}{hint}: give {backed_up}\n"
    restore(backed_up, tmp_path / "restored")  # as it says


def test_no_hint_where_there_is_no_backup_above(tmp_path, backed_up):
    (tmp_path / "elsewhere" / "backups").mkdir(parents=True)
    assert misplaced_url_hint(str(tmp_path / "elsewhere" / "backups")) == ""
    assert misplaced_url_hint(str(tmp_path / "elsewhere" / "missing" / "files")) == ""
    assert misplaced_url_hint(f"{backed_up}/backups/more") == ""
    assert misplaced_url_hint(backed_up) == ""
    assert misplaced_url_hint("file:///backups") == ""
    with pytest.raises(BackupError, match=r"elsewhere/backups \(no manifest under backups/\)$"):
        restore(str(tmp_path / "elsewhere" / "backups"), tmp_path / "restored")
    out = run_kvb("backups", str(tmp_path / "elsewhere" / "backups"))
    assert out.stderr == f"kvb: no backups at {tmp_path / 'elsewhere' / 'backups'}\n"


def test_a_store_given_for_its_backup_url_says_so(tmp_path, backed_up):
    store = str(tmp_path / "store")
    hint = f": {store} is a kv_backend store, not a backup URL: give the URL it was backed up to"
    assert misplaced_url_hint(store) == hint
    with pytest.raises(BackupError) as info:
        restore(store, tmp_path / "restored")
    assert str(info.value) == f"no complete backup at {store}{hint}"
    out = run_kvb("backups", store)
    assert (out.returncode, out.stderr) == (0, f"kvb: no backups at {store}{hint}\n")
    assert misplaced_url_hint(f"{store}/backups") == ""


def test_on_s3(tmp_path, s3_options):  # noqa: F811
    url = "s3://kvb-race/misplaced"
    with DB(str(tmp_path / "store")) as db:
        db.put(b"k", b"v")
        db.backup(url, name="nightly", **s3_options)
    hint = f": {url}/backups is the backups/ directory of the backup URL {url}: give {url}"
    assert misplaced_url_hint(f"{url}/backups", **s3_options) == hint
    with pytest.raises(BackupError, match="no complete backup at s3://kvb-race/misplaced/backups: "):
        restore(f"{url}/backups", tmp_path / "restored", **s3_options)
    assert misplaced_url_hint("s3://kvb-race/backups", **s3_options) == ""
