"""The `kvb` command line (python -m kv_backend): stats, get, put, delete, keys; output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import child_env, run_kvb

from kv_backend import DB
from kv_backend.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Run kvb in this process (fast); return (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_round_trip_through_python_m(store_path, capsys):
    put = run_kvb("put", store_path, "greeting", "héllo wörld")
    assert put.returncode == 0, put.stderr
    assert put.stdout == ""
    get = run_kvb("get", store_path, "greeting")
    assert get.returncode == 0, get.stderr
    assert get.stdout == "héllo wörld\n"
    with DB(store_path, read_only=True) as db:
        assert db[b"greeting"] == "héllo wörld".encode()
    assert run(capsys, "keys", store_path)[1].splitlines() == ["greeting"]
    assert run(capsys, "delete", store_path, "greeting")[0] == 0
    again = run_kvb("delete", store_path, "greeting")
    assert again.returncode == 1
    assert "no key" in again.stderr
    code, out, _ = run(capsys, "get", store_path, "greeting")
    assert (code, out) == (1, "")


def test_get_missing_key_and_missing_store(store_path, tmp_path, capsys):
    assert run(capsys, "put", store_path, "a", "1")[0] == 0
    code, out, err = run(capsys, "get", store_path, "nope")
    assert (code, out) == (1, "")
    assert "no key 'nope'" in err
    missing = str(tmp_path / "missing")
    for args in (["get", missing, "a"], ["keys", missing], ["stats", missing]):
        code, out, err = run(capsys, *args)
        assert code == 2, args
        assert err.startswith("kvb: ") and missing in err
    assert not os.path.exists(missing)  # readers never create a store


def test_put_with_ttl(store_path, capsys):
    assert run(capsys, "put", store_path, "t", "v", "--ttl", "3600")[0] == 0
    with DB(store_path) as db:
        assert 3500 < db.ttl(b"t") <= 3600
    # --ttl 0 is a usage error (as Redis's SET EX 0), not the engine's delete: the key stays.
    assert run(capsys, "put", store_path, "t", "v", "--ttl", "0")[0] == 2
    with DB(store_path) as db:
        assert b"t" in db
    code, _, err = run(capsys, "put", store_path, "t", "v", "--ttl", "soon")
    assert code == 2 and "argument --ttl: must be a number of seconds greater than 0, not 'soon'" in err


def test_keys_prefix_reverse_limit(store_path, capsys):
    with DB(store_path) as db:
        for k in ("user:1", "user:2", "user:10", "session:a", "zeta"):
            db.put(k.encode(), b"x")
    assert run(capsys, "keys", store_path)[1].splitlines() == [
        "session:a",
        "user:1",
        "user:10",
        "user:2",
        "zeta",
    ]
    assert run(capsys, "keys", store_path, "--prefix", "user:")[1].splitlines() == [
        "user:1",
        "user:10",
        "user:2",
    ]
    code, out, _ = run(capsys, "keys", store_path, "--prefix", "user:", "--reverse", "--limit", "2")
    assert code == 0 and out.splitlines() == ["user:2", "user:10"]
    assert run(capsys, "keys", store_path, "--prefix", "nothing")[1] == ""


def test_binary_values_are_shown_as_repr(store_path, capsys):
    with DB(store_path) as db:
        db.put(b"bin", b"\xff\x00\xfe")
        db.put(b"\xff\xfe", b"key is binary")
    code, out, _ = run(capsys, "get", store_path, "bin")
    assert code == 0 and out == repr(b"\xff\x00\xfe") + "\n"
    assert repr(b"\xff\xfe") in run(capsys, "keys", store_path)[1].splitlines()


def test_keys_that_are_not_plain_text_stay_one_line(store_path, capsys):
    keys = [b"a\nb", b"tab\tkey", b"\xff\xfe", "ключ".encode(), b"plain"]
    with DB(store_path) as db:
        for k in keys:
            db.put(k, b"v")
        db.put(b"text", "line one\nline two\t\u00e9".encode())
    lines = run(capsys, "keys", store_path)[1].splitlines()
    shown = [repr(b"a\nb"), repr(b"tab\tkey"), repr(b"\xff\xfe"), "ключ", "plain", "text"]
    assert sorted(lines) == sorted(shown)
    # A text value keeps its newlines and tabs.
    assert run(capsys, "get", store_path, "text")[1] == "line one\nline two\t\u00e9\n"


def _kvb_bytes(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "kv_backend", *args],
        input=stdin,
        env={**child_env(), **(env or {})},
        capture_output=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout


def test_exact_bytes_in_and_out(store_path):
    value = bytes(range(256))
    assert _kvb_bytes("put", store_path, "blob", "--stdin", stdin=value) == (0, b"")
    assert _kvb_bytes("get", store_path, "blob", "--raw") == (0, value)
    with DB(store_path) as db:
        assert db[b"blob"] == value
        db.put(b"a\nb", b"1")
        db.put(b"\xff", b"2")
    code, out = _kvb_bytes("keys", store_path, "-0")
    assert code == 0 and out == b"a\nb\0blob\0\xff\0"  # byte order, each key as it is
    # A terminal that cannot show the key gets escapes, not a crash.
    assert _kvb_bytes("put", store_path, "ключ", "x") == (0, b"")
    code, out = _kvb_bytes("keys", store_path, env={"PYTHONIOENCODING": "ascii"})
    assert code == 0 and b"\\u043a\\u043b\\u044e\\u0447" in out


def test_put_wants_a_value_or_stdin(store_path, capsys):
    code, _, err = run(capsys, "put", store_path, "k")
    assert code == 2 and "VALUE or --stdin" in err
    code, _, err = run(capsys, "put", store_path, "k", "v", "--stdin")
    assert code == 2 and "VALUE or --stdin" in err


def test_stats_text_and_json(store_path, capsys):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%d" % i, b"v" * 200)
        db.delete(b"k0")
        expected = db.stats()
    code, out, _ = run(capsys, "stats", store_path, "--json")
    assert code == 0
    stats = json.loads(out)
    for field in ("keys", "live_bytes", "dead_bytes", "total_bytes", "files"):
        assert stats[field] == expected[field], field
    assert stats["keys"] == 39 and stats["files"] > 1
    assert stats["read_only"] is True  # stats opens the store read-only
    code, out, _ = run(capsys, "stats", store_path)
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["keys"] == "39"
    assert lines["files"] == str(expected["files"])


def test_cli_sees_a_store_while_a_writer_has_it_open(store_path):
    with DB(store_path) as db:
        db.put(b"live", b"1")
        put = run_kvb("put", store_path, "from-cli", "2")
        assert put.returncode == 0, put.stderr
        assert db[b"from-cli"] == b"2"  # the open DB sees the CLI's write at once


@pytest.mark.parametrize(
    "args",
    [[], ["nonsense"], ["get"], ["put", "only-path"], ["keys", "p", "--limit", "x"]],
    ids=lambda a: " ".join(a) or "no-args",
)
def test_usage_errors(capsys, args):
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "usage: kvb" in err


def test_not_a_store(tmp_path, capsys):
    d = tmp_path / "project"
    d.mkdir()
    (d / "notes.txt").write_text("hi")
    code, _, err = run(capsys, "put", str(d), "k", "v")
    assert code == 2 and "not a kv_backend store" in err
    assert sorted(os.listdir(d)) == ["notes.txt"]
