"""``kvb backups URL --keep N`` where URL is missing or a symbolic link to nothing exits 2.

A prune against an unmounted backup volume (the link left pointing at nothing) named the link on
stderr but exited 0, so a cron prune passed quietly. A prune now exits with kvb's error status, with
the same message; a listing, and a prune of an empty directory that exists, still exit 0.
"""

from __future__ import annotations

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend.backup import absent_url_hint


def _link(tmp_path):
    link = tmp_path / "bk"
    link.symlink_to(tmp_path / "mnt" / "bk")
    return link


@pytest.mark.parametrize("form", ["{}", "file://{}"])
def test_a_prune_of_a_link_to_nothing_fails(tmp_path, capsys, form):
    link = _link(tmp_path)
    url = form.format(link)
    said = (
        f"{link} is a symbolic link to {tmp_path / 'mnt' / 'bk'}, which does not exist (a volume not "
        "mounted?): create that directory, or point the link elsewhere"
    )
    assert run(capsys, "backups", url, "--keep", "2") == (2, "", f"kvb: no backups at {url}: {said}\n")
    assert run(capsys, "backups", url) == (0, "", f"kvb: no backups at {url}: {said}\n")
    assert not (tmp_path / "mnt").exists()  # nothing made below the missing mount


def test_a_prune_of_a_missing_directory_fails(tmp_path, capsys):
    url = str(tmp_path / "nothing")
    typo = f"the directory {url} does not exist (check the URL for a typo)"
    assert run(capsys, "backups", url, "--keep", "1") == (2, "", f"kvb: no backups at {url}: {typo}\n")
    code, out, _ = run(capsys, "backups", url, "--keep", "1", "--json")
    assert code == 2 and '"backups": []' in out.replace("\n", "").replace("  ", "")
    assert run(capsys, "backups", url)[0] == 0
    assert not (tmp_path / "nothing").exists()


def test_an_empty_directory_still_exits_0(tmp_path, capsys):
    (tmp_path / "bk").mkdir()
    url = str(tmp_path / "bk")
    assert absent_url_hint(url) == ""
    assert run(capsys, "backups", url, "--keep", "1") == (0, "", f"kvb: no backups at {url}\n")
    assert run(capsys, "backups", url) == (0, "", f"kvb: no backups at {url}\n")


def test_a_pruned_url_with_backups_exits_0(tmp_path, capsys):
    from kv_backend import Store
    from kv_backend.backup import backup_store

    with Store(tmp_path / "db") as s:
        s["k"] = b"v"
    url = str(tmp_path / "bk")
    first = backup_store(tmp_path / "db", url, name="one").name
    backup_store(tmp_path / "db", url, name="two")
    code, out, err = run(capsys, "backups", url, "--keep", "1")
    assert (code, err) == (0, "") and out.startswith(f"removed {first}\n")
