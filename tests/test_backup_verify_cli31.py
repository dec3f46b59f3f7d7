"""``kvb backups URL --verify``: one line per backup, a summary, the damaged objects with what to do
(on stderr), ``--json``; exit status 0 when all is sound, 1 for damage, 2 for usage and URL errors."""

from __future__ import annotations

import json

from helpers import run_kvb
from test_backup_verify31 import _manifest, _rot, _three_backups

from kv_backend.cli import main


def test_kvb_backups_verify(tmp_path, capsys):
    url = str(tmp_path / "bk")
    _three_backups(str(tmp_path / "s"), url)
    assert main(["backups", url, "--verify"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[:3] == ["one  ok", "two  ok", "three  ok"] and "all sound" in lines[3], out
    assert err == ""

    closed = _manifest(url, "one")["files"][0]
    _rot(url, closed["stored_as"])
    assert main(["backups", url, "--verify"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"one  DAMAGED: object {closed['stored_as']} (sha256 mismatch)"
    assert f"{url}/{closed['stored_as']}" in err and "one, two, three" in err
    assert "then back up again" in err

    assert main(["backups", url, "--verify", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["url"] == url and doc["ok"] is False and doc["removed"] == []
    assert [(b["name"], b["ok"], b["status"], b["damaged_objects"]) for b in doc["backups"]] == [
        (n, False, "damaged", [closed["stored_as"]]) for n in ("one", "two", "three")
    ]
    (damage,) = doc["damaged_objects"]
    assert damage["object"] == closed["stored_as"] and damage["backups"] == ["one", "two", "three"]
    assert damage["problem"] == "sha256 mismatch" and damage["expected_size"] == closed["size"]
    assert damage["file"] == closed["name"] and "back up again" in damage["advice"]

    assert main(["backups", url, "--verify", "--name", "nine"]) == 2
    assert "no backup named 'nine'" in capsys.readouterr().err


def test_kvb_backups_name_needs_verify_and_a_missing_directory_is_an_error():
    out = run_kvb("backups", "/nonexistent/kvb-bk", "--name", "one")
    assert out.returncode == 2 and "--name" in out.stderr and "--verify" in out.stderr
    out = run_kvb("backups", "/nonexistent/kvb-bk", "--verify")
    assert out.returncode == 2 and "does not exist" in out.stderr, out.stderr


def test_kvb_backups_keep_then_verify(tmp_path, capsys):
    url = str(tmp_path / "bk")
    _three_backups(str(tmp_path / "s"), url)
    assert main(["backups", url, "--keep", "2", "--verify", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["removed"] == ["one"] and doc["ok"] is True and doc["damaged_objects"] == []
    assert [(b["name"], b["status"]) for b in doc["backups"]] == [("two", "ok"), ("three", "ok")]
    assert main(["backups", url, "--verify", "--name", "three"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0] == "three  ok" and out[1].startswith(f"verified 1 backup at {url}: ") and "all sound" in out[1]
    )
