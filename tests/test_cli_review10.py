"""`kvb` as an operator's scripts run it: errors as one line and an exit status, never a traceback."""

from __future__ import annotations

import errno
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout

import pytest
from helpers import (
    child_env,
    exit_code,
    fork_child,
    free_port,
    read_until_closed,
    run_as_nobody,
    serve_here_with_client,
    stalled_upload,
    start_own_server,
)
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

import kv_backend.check  # (also: imported before a child drops its privileges)
import kv_backend.files
import kv_backend.unpublished
from kv_backend import DB
from kv_backend.cli import build_parser, main


def _main_output(*args: str) -> tuple[int, str, str]:
    """``main(args)``: (exit code, stdout, stderr), for a child process that has no capsys."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_check_of_a_data_file_it_cannot_read_is_an_error_line_not_a_traceback():
    base = tempfile.mkdtemp(prefix="kvb-check-")
    try:
        os.chmod(base, 0o755)
        path = os.path.join(base, "db")
        with DB(path) as db:
            db.put(b"k", b"v")
        os.chmod(path, 0o755)
        data = [n for n in os.listdir(path) if n.endswith(".data")]
        for name in os.listdir(path):
            os.chmod(os.path.join(path, name), 0o644)
        os.chmod(os.path.join(path, data[0]), 0o000 if os.geteuid() else 0o600)
        build_parser().parse_args(["check", path])  # argparse's lazy imports, before dropping privileges
        code, out, err = run_as_nobody(lambda: _main_output("check", path))
        assert code == 2, (out, err)
        assert err.startswith("kvb: ") and data[0] in err and "Permission denied" in err
        assert "Traceback" not in err
    finally:
        for root, _dirs, files in os.walk(base):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        shutil.rmtree(base, ignore_errors=True)


def _sigterm_midway(monkeypatch: pytest.MonkeyPatch, after: Callable[[int, int], bool]) -> None:
    """Make kvb's progress bar send this process SIGTERM at the first progress call ``after`` accepts."""
    import contextlib

    import kv_backend.progress

    @contextlib.contextmanager
    def bar(description: str, unit: str = "B"):
        def update(done: int, total: int) -> None:
            if after(done, total):
                os.kill(os.getpid(), signal.SIGTERM)

        yield update

    monkeypatch.setattr(kv_backend.progress, "progress_bar", bar)


def _run_in_child(*args: str) -> int:
    """``main(args)`` in a forked child, output discarded: its exit status (negative: the signal)."""

    def child() -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os._exit(main(list(args)))

    return exit_code(fork_child(child))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigterm_during_salvage_removes_the_unfinished_copy_and_exits_143(tmp_path, monkeypatch):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    with DB(src) as db, db.batch() as b:
        for i in range(2500):  # three batches of the copy: SIGTERM comes after the first
            b.put(b"k%05d" % i, b"v")
    _sigterm_midway(monkeypatch, lambda done, total: total // 2 < done < total)
    assert _run_in_child("salvage", src, dst) == 143
    assert sorted(os.listdir(tmp_path)) == ["src"]  # no .dst.salvage-* copy left behind


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigterm_during_restore_removes_the_unfinished_copy_and_exits_143(tmp_path, monkeypatch):
    src, url, dst = str(tmp_path / "src"), str(tmp_path / "bk"), str(tmp_path / "dst")
    with DB(src, max_file_size=1 << 16) as db:
        for i in range(2000):
            db.put(b"k%05d" % i, b"v" * 100)
        db.backup(url)
    _sigterm_midway(monkeypatch, lambda done, total: 0 < done < total)
    assert _run_in_child("restore", url, dst) == 143
    assert sorted(os.listdir(tmp_path)) == ["bk", "src"]  # no .dst.restore-* copy left behind


def test_main_puts_back_the_sigterm_handler_it_found(store_path, capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert run(capsys, "put", store_path, "k", "v")[0] == 0
    assert run(capsys, "get", store_path, "missing")[0] == 1
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("limit", ["-1", "x", "1.5"])
def test_keys_refuses_a_limit_that_is_not_a_count(store_path, capsys, limit):
    assert run(capsys, "put", store_path, "k", "v")[0] == 0
    code, out, err = run(capsys, "keys", store_path, f"--limit={limit}")
    assert (code, out) == (2, "")
    assert "--limit" in err and ">= 0" in err


def test_keys_limit_0_lists_nothing(store_path, capsys):
    assert run(capsys, "put", store_path, "k", "v")[0] == 0
    assert run(capsys, "keys", store_path, "--limit", "0") == (0, "", "")
    assert run(capsys, "keys", store_path, "--limit", "1") == (0, "k\n", "")


def test_serve_on_a_port_in_use_says_to_choose_another_port(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, out, err = run(capsys, "serve", "--dir", str(tmp_path / "s"), "--port", port)
    assert (code, out) == (2, "")
    assert err.startswith(f"kvb: cannot listen on 127.0.0.1:{port}: ") and "choose another --port" in err


def test_serve_on_an_address_of_another_machine_says_to_change_the_host(tmp_path, capsys):
    # 192.0.2.1 (TEST-NET-1, RFC 5737) is no address of this machine: bind() fails with EADDRNOTAVAIL.
    code, out, err = run(capsys, "serve", "--dir", str(tmp_path / "s"), "--host", "192.0.2.1", "--port", "0")
    assert (code, out) == (2, "")
    assert err.startswith("kvb: cannot listen on 192.0.2.1:0: ") and "--host" in err
    assert "--port" not in err


def test_serve_reports_a_storage_error_at_startup_as_is_not_as_a_port_problem(tmp_path, capsys, monkeypatch):
    from kv_backend.errors import StorageError
    from kv_backend.structures import Structures

    def vacuum(self: object, chunk: int = 1000) -> int:
        raise StorageError(errno.ENOSPC, "cannot write: No space left on device")

    monkeypatch.setattr(Structures, "vacuum", vacuum)
    code, _, err = run(capsys, "serve", "--dir", str(tmp_path / "s"), "--port", "0")
    assert code == 2
    assert "No space left on device" in err
    assert "cannot listen" not in err and "--port" not in err


def test_http_on_a_port_in_use_is_a_kvb_error_with_exit_2_as_for_serve(tmp_path, capsys):
    pytest.importorskip("uvicorn")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, _, err = run(capsys, "http", "--dir", str(tmp_path / "s"), "--port", port)
    assert code == 2  # not uvicorn's own status 3
    assert f"kvb: cannot listen on 127.0.0.1:{port}: " in err and "choose another --port" in err


def test_http_on_an_address_of_another_machine_says_to_change_the_host(tmp_path, capsys):
    pytest.importorskip("uvicorn")
    code, _, err = run(capsys, "http", "--dir", str(tmp_path / "s"), "--host", "192.0.2.1", "--port", "0")
    assert code == 2
    assert "kvb: cannot listen on 192.0.2.1:0: " in err and "--host" in err


def test_salvage_refuses_a_target_inside_the_source_store(tmp_path, capsys):
    src = str(tmp_path / "src")
    with DB(src) as db:
        db.put(b"k", b"v")
    before = sorted(os.listdir(src))
    os.symlink(src, tmp_path / "link")
    for dst in (os.path.join(src, "copy"), str(tmp_path / "link" / "copy")):
        code, out, err = run(capsys, "salvage", src, dst)
        assert (code, out) == (2, "")
        assert "lies inside it" in err
        assert sorted(os.listdir(src)) == before  # the source stays as it was: evidence


def test_http_sigterm_stops_soon_even_with_a_client_stalled_mid_request(tmp_path, monkeypatch, capfd):
    """Without a grace limit, uvicorn waits for the stalled request for as long as its client lives."""
    pytest.importorskip("uvicorn")
    import kv_backend.http.server as http_server

    monkeypatch.setattr(http_server, "SHUTDOWN_GRACE", 0.3)
    sent: list[float] = []
    answer: list[bytes] = []

    def stalled_client(port: int) -> None:
        try:  # a PUT whose body never comes
            conn = stalled_upload(port)
            conn.settimeout(30)
        finally:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)
        with conn:
            answer.append(read_until_closed(conn))

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # uvicorn raises it again once stopped
    try:  # (the client starts once this process listens on the port: see serve_here_with_client)
        store = str(tmp_path / "s")
        _, _, client = serve_here_with_client(
            lambda port: http_server.serve(store, port=port, log_level="warning"), stalled_client
        )
        stopped = time.monotonic()
    finally:
        signal.signal(signal.SIGTERM, previous)
    client.join(5)
    assert stopped - sent[0] < 3  # the grace (0.3 s here), not the client's 30 s
    err = capfd.readouterr().err
    assert "Traceback" not in err
    # told, in the API's JSON shape, that nothing was stored (not uvicorn's plain-text 500)
    assert answer[0].startswith(b"HTTP/1.1 503 "), answer
    assert b'"error":"store_closed"' in answer[0] and b"nothing was stored" in answer[0]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["keys", "-0"], ["get", "k", "--raw"], ["stats", "--json"]])
def test_output_to_a_full_disk_is_an_error_line_and_exit_2(store_path, args):
    """Not a traceback and status 1 (for kvb get: as if the key were missing), nor a silent 0."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
    cmd = [sys.executable, "-m", "kv_backend", args[0], store_path, *args[1:]]
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(cmd, env=child_env(), stdout=full, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == b"kvb: cannot write to standard output: No space left on device\n"


def test_put_stdin_with_standard_input_closed_is_an_error_line(store_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # what Python gives a process started with stdin closed (<&-)
    code, out, err = run(capsys, "put", store_path, "k", "--stdin")
    assert (code, out) == (2, "")
    assert err.startswith("kvb: standard input is closed")
    assert not os.path.exists(store_path)  # nothing opened, nothing created


def test_missing_key_that_is_not_utf8_is_named_by_its_bytes(store_path, capsys):
    assert run(capsys, "put", store_path, "k", "v")[0] == 0
    key = os.fsdecode(b"n\xff")  # how Python hands such an argv to main
    for command in ("get", "delete"):
        code, out, err = run(capsys, command, store_path, key)
        assert (code, out, err) == (1, "", "kvb: no key b'n\\xff'\n")


@pytest.mark.parametrize("command", ["serve", "http"])
@pytest.mark.parametrize("host", ["", " "])
def test_an_empty_host_is_refused_not_every_interface(tmp_path, capsys, command, host):
    """`--host "$UNSET"` would otherwise listen on 0.0.0.0 and :: (for kvb serve without a word)."""
    code, out, err = run(capsys, command, "--dir", str(tmp_path / "s"), "--host", host, "--port", "0")
    assert (code, out) == (2, "")
    assert "--host" in err and "0.0.0.0" in err
    assert not os.path.exists(tmp_path / "s")


@pytest.mark.parametrize(
    "args",
    [
        ["put", "", "k", "v"],
        ["stats", ""],
        ["merge", ""],
        ["salvage", "{src}", ""],
        ["restore", "{url}", ""],
        ["serve", "--dir", "", "--port", "0"],
        ["http", "--dir", "", "--port", "0"],
    ],
)
def test_an_empty_store_path_is_refused_not_the_current_directory(tmp_path, capsys, monkeypatch, args):
    """`kvb put "$UNSET" k v` would otherwise make a store in the current directory (if empty)."""
    src = str(tmp_path / "src")
    with DB(src) as db:
        db.put(b"k", b"v")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = [a.format(src=src, url=str(tmp_path / "bk")) for a in args]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert "is empty" in err
    assert os.listdir(cwd) == []


@pytest.mark.parametrize("command", ["merge", "backup"])
def test_progress_bar_commands_run_with_stderr_closed(store_path, tmp_path, capsys, monkeypatch, command):
    """Started with 2>&- (Python's sys.stderr is then None) they failed before doing anything, status 1."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
    extra = [str(tmp_path / "bk")] if command == "backup" else []
    monkeypatch.setattr(sys, "stderr", None)
    code, out, _ = run(capsys, command, store_path, *extra)
    assert code == 0
    assert out.startswith("merged " if command == "merge" else "backup ")


def test_errors_with_stderr_closed_stay_out_of_standard_output(store_path, capsys, monkeypatch):
    """print(file=None) writes on stdout: a `kvb keys -0 2>&- | xargs -0` would read the error as a key."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
    monkeypatch.setattr(sys, "stderr", None)
    assert run(capsys, "get", store_path, "missing") == (1, "", "")
    assert run(capsys, "stats", store_path + "-typo") == (2, "", "")


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_http_names_kvb_http_sync_when_its_value_is_refused(tmp_path, capsys, monkeypatch, value):
    pytest.importorskip("uvicorn")
    monkeypatch.setenv("KVB_HTTP_SYNC", value)
    code, out, err = run(capsys, "http", "--dir", str(tmp_path / "s"), "--port", "0")
    assert (code, out) == (2, "")
    assert err.startswith("kvb: KVB_HTTP_SYNC must be") and repr(value) in err


def test_help_does_not_say_keys_must_be_utf8():
    """They are the argument's bytes (docs/engine.md): kvb keys -0 | xargs -0 kvb get reaches any key."""
    text = build_parser().format_help()
    assert "UTF-8" not in text and "print the value of KEY (any bytes)" in text


def test_check_of_a_live_store_notes_a_data_file_a_merge_removed_meanwhile(store_path, capsys, monkeypatch):
    """A merge in another process deletes the files it merged; kvb check, listing first and reading
    next, then died with FileNotFoundError (a traceback; StorageError after the first fix), exit 2. It
    now starts over where a file it listed is gone (see test_check_merge25); where every listing holds
    it (a merge removing files each time), it says so after the last pass: not damage."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 100)
    listed = kv_backend.files.list_data_files(store_path)
    gone = os.path.join(store_path, kv_backend.files.data_name(listed[0]))
    monkeypatch.setattr(kv_backend.unpublished, "list_data_files", lambda path: listed)
    os.rename(gone, gone + ".merged-away")  # as if a merge removed it right after the listing
    code, out, err = run(capsys, "check", store_path)
    assert (code, err) == (0, "")
    assert f"note: {store_path}: the store changed too often to check: in each of 5 passes" in out
    assert f"(the last: {gone})" in out
    assert out.endswith("ok: no damaged records\n")


def test_check_does_not_report_a_torn_read_of_a_file_being_appended_to(store_path, capsys, monkeypatch):
    """Reading the active file while another process appends copies it page after page, so a record
    across a page boundary can come out half written with newer records after it: kvb check of a busy
    store said DAMAGED (exit 1) now and then. Damage on disk is there on a second read too."""
    with DB(store_path) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 100)
    real_read = kv_backend.check._read
    torn: list[str] = []

    def read(path: str, size: int = -1) -> bytes | None:
        data = real_read(path, size)
        if data is None or size != -1 or torn:
            return data
        torn.append(path)  # the first full read of a data file sees one record half written
        return data[:2000] + bytes(100) + data[2100:]

    monkeypatch.setattr(kv_backend.check, "_read", read)
    code, out, _ = run(capsys, "check", store_path)
    assert torn and (code, out.splitlines()[-1]) == (0, "ok: no damaged records")
    # Damage that is on disk is still reported.
    data_file = torn[0]
    with open(data_file, "r+b") as f:
        f.seek(2050)
        f.write(b"\xff")
    code, out, _ = run(capsys, "check", store_path)
    assert code == 1 and f"DAMAGED: {data_file} @ " in out


def test_merge_while_another_merges_says_what_to_run_and_wait_waits(store_path, capsys):
    import fcntl

    with DB(store_path) as db:
        db.put(b"k", b"v")
    fd = os.open(os.path.join(store_path, "MERGE.lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a merge in another process holds it
        code, out, err = run(capsys, "merge", store_path)
        assert (code, out) == (2, "")
        assert "another process is merging" in err and "--wait" in err and "merge(wait=True)" not in err
        threading.Timer(0.2, fcntl.flock, (fd, fcntl.LOCK_UN)).start()
        started = time.monotonic()
        code, out, err = run(capsys, "merge", store_path, "--wait")
        assert (code, err) == (0, "") and out.startswith("merged ")
        assert time.monotonic() - started >= 0.15
    finally:
        os.close(fd)


def test_http_stopped_by_sigterm_exits_0_as_serve_does(tmp_path):
    """uvicorn raises SIGTERM again once it has shut down, which killed kvb http (status -15, 143 to a
    shell): a service script's `kill $PID; wait $PID` failed, where kvb serve and redis-server exit 0."""
    pytest.importorskip("uvicorn")
    import httpx

    cmd = [sys.executable, "-m", "kv_backend", "http", "--dir", str(tmp_path / "s"), "--port"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        out, err = subprocess.DEVNULL, subprocess.PIPE
        return subprocess.Popen([*cmd, str(port)], env=child_env(), stdout=out, stderr=err), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()


def test_relative_path_once_the_current_directory_is_removed_is_a_usage_error(tmp_path, capsys, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # as a deploy removes the release directory a shell or cron job is in
    code, out, err = run(capsys, "stats", "kv")
    assert (code, out) == (2, "")
    assert "give an absolute path" in err and "Traceback" not in err
