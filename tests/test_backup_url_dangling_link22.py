"""A local backup URL that is a symbolic link to nothing (a volume not mounted) is said to be one.

``kvb backup`` refused it naming the link; ``kvb backups`` said only "no backups at URL" (a cron
prune doing nothing, quietly), and ``kvb restore`` (and kv_restore) "the directory does not exist
(check the URL for a typo)", while ``ls`` shows the link there. Both now name the link and its target.
"""

from __future__ import annotations

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend.backup import misplaced_url_hint


@pytest.fixture
def link(tmp_path):
    link = tmp_path / "bk"
    link.symlink_to(tmp_path / "mnt" / "bk")
    return link


def _said(link, tmp_path, under=""):
    return (
        f"{link} is a symbolic link to {tmp_path / 'mnt' / 'bk'}, which does not exist{under} (a volume not "
        "mounted?): create that directory, or point the link elsewhere"
    )


@pytest.mark.parametrize("form", ["{}", "file://{}"])
def test_kvb_backups_and_restore_name_the_link(tmp_path, capsys, link, form):
    url = form.format(link)
    assert run(capsys, "backups", url) == (0, "", f"kvb: no backups at {url}: {_said(link, tmp_path)}\n")
    assert run(capsys, "backups", url, "--keep", "1") == (  # a prune: kvb's error status
        2,
        "",
        f"kvb: no backups at {url}: {_said(link, tmp_path)}\n",
    )
    code, out, err = run(capsys, "restore", url, str(tmp_path / "r"))
    assert (code, out) == (2, "")
    assert err == f"kvb: no complete backup at {url}: {_said(link, tmp_path)}\n"
    assert not (tmp_path / "mnt").exists() and not (tmp_path / "r").exists()


def test_a_url_under_the_link_names_it_too(tmp_path, link):
    under = f" (the backup directory {link / 'prod'} is under it)"
    assert misplaced_url_hint(str(link / "prod")) == f": {_said(link, tmp_path, under)}"


def test_a_missing_directory_is_still_said_to_be_missing(tmp_path, capsys):
    url = str(tmp_path / "nothing")
    assert misplaced_url_hint(url) == ""
    code, _, err = run(capsys, "restore", url, str(tmp_path / "r"))
    assert code == 2
    typo = f"the directory {url} does not exist (check the URL for a typo)"
    assert err == f"kvb: no complete backup at {url}: {typo}\n"
