"""More of the `kvb` command line: byte-exact keys from argv, pipes closed early, mistyped paths, options."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import child_env
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB

KVB = [sys.executable, "-m", "kv_backend"]


def test_keys_from_kvb_keys_0_through_xargs_reach_get_and_delete(store_path):
    """`kvb keys -0 | xargs -0 kvb get` works for keys that are not UTF-8 (argv carries their bytes)."""
    with DB(store_path) as db:
        db.put(b"bin\xff\xfe", b"binary")
        db.put(b"plain", b"text")
    pipeline = (
        f"{' '.join(KVB)} keys {store_path} -0 | xargs -0 -n1 {' '.join(KVB)} get {store_path} --raw; "
        f"echo; {' '.join(KVB)} keys {store_path} -0 | xargs -0 -n1 {' '.join(KVB)} delete {store_path}"
    )
    proc = subprocess.run(["sh", "-c", pipeline], env=child_env(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == b"binarytext\n"
    assert b"Traceback" not in proc.stderr
    with DB(store_path, read_only=True) as db:
        assert len(db) == 0


def test_keys_that_start_with_a_dash_are_reached_after_double_dash(store_path, capsys):
    """docs/engine.md's `kvb keys DIR -0 | xargs -0 -n1 kvb get DIR` took a key such as '--raw' or
    '-x' for an option (a usage error, or the wrong key read); the documented line ends the
    options with `--`, and every key then comes through, as for put and delete."""
    keys = ["-", "-0", "-x", "--raw", "plain"]
    for i, key in enumerate(keys):
        assert run(capsys, "put", store_path, "--", key, f"v{i}")[0] == 0
    code, out, _ = run(capsys, "keys", store_path, "-0")
    assert code == 0 and out.split("\0")[:-1] == sorted(keys)
    assert run(capsys, "get", store_path, "-x")[0] == 2  # without `--`: an unknown option
    for i, key in enumerate(keys):
        assert run(capsys, "get", store_path, "--", key) == (0, f"v{i}\n", "")
        assert run(capsys, "get", store_path, "--raw", "--", key) == (0, f"v{i}", "")
    for key in keys:
        assert run(capsys, "delete", store_path, "--", key)[0] == 0
    with DB(store_path, read_only=True) as db:
        assert len(db) == 0


def test_the_key_double_dash_after_double_dash(store_path, capsys):
    """`kvb get DIR -- --` (the key "--", as the docs' xargs line passes it) died with a TypeError
    traceback on Python 3.11, whose argparse hands that positional over as an empty list."""
    assert run(capsys, "put", store_path, "--", "--", "v")[0] == 0
    assert run(capsys, "get", store_path, "--", "--") == (0, "v\n", "")
    assert run(capsys, "delete", store_path, "--", "--")[0] == 0
    with DB(store_path, read_only=True) as db:
        assert len(db) == 0


def test_non_utf8_argv_key_and_value_are_stored_as_given(store_path, capsys):
    key, value = os.fsdecode(b"k\xff"), os.fsdecode(b"v\x80")  # how Python hands such argv to main
    assert run(capsys, "put", store_path, key, value)[0] == 0
    with DB(store_path, read_only=True) as db:
        assert db[b"k\xff"] == b"v\x80"
    code, out, err = run(capsys, "get", store_path, key)
    assert (code, out, err) == (0, "b'v\\x80'\n", "")


@pytest.mark.parametrize("args", [["keys", "-0"], ["keys", "--reverse"]])
def test_output_to_a_pipe_closed_early_is_no_traceback(store_path, args):
    with DB(store_path) as db:  # about 500 kB of output: more than a pipe holds, so the writer must block
        for i in range(5000):
            db.put(b"k%05d" % i + b"-" * 100, b"x")
    cmd = [*KVB, args[0], store_path, *args[1:]]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(60) == 141  # what a shell reports for a writer stopped by SIGPIPE
    assert err == b""


@pytest.mark.parametrize("command", [["delete", "{path}", "k"], ["merge", "{path}"]])
def test_delete_and_merge_on_a_mistyped_path_create_no_store(tmp_path, capsys, command):
    missing = str(tmp_path / "typo")
    code, _, err = run(capsys, *(a.format(path=missing) for a in command))
    assert code == 2
    assert err.startswith("kvb: ") and "no kv_backend store at" in err and missing in err
    assert not os.path.exists(missing)
    os.mkdir(missing)  # an empty directory is no store either
    code, _, err = run(capsys, *(a.format(path=missing) for a in command))
    assert code == 2 and "no kv_backend store at" in err
    assert os.listdir(missing) == []


@pytest.mark.parametrize("command", ["serve", "http"])
@pytest.mark.parametrize("port", ["70000", "-1", "65536"])
def test_serve_and_http_refuse_a_port_out_of_range(tmp_path, capsys, command, port):
    code, _, err = run(capsys, command, "--dir", str(tmp_path / "s"), "--port", port)
    assert code == 2
    assert "--port" in err and "0 to 65535" in err
    assert not os.path.exists(tmp_path / "s")


def test_serve_names_the_unix_socket_it_cannot_listen_on(tmp_path, capsys):
    sock = str(tmp_path / "no-such-dir" / "kvb.sock")
    code, _, err = run(capsys, "serve", "--dir", str(tmp_path / "s"), "--port", "0", "--unixsocket", sock)
    assert code == 2
    assert sock in err and "--unixsocket" in err
    assert "choose another --port" not in err
