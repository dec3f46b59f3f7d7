"""`kvb` reviewed a second time from an operator's view: paths it cannot reach, output a script
parses, and what it documents for scripts."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from helpers import run_as_nobody
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)
from test_cli_review10 import _main_output

from kv_backend import DB
from kv_backend.cli import build_parser


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_store_under_a_directory_this_user_may_not_search_is_not_said_missing():
    """os.path.exists() is False for a path it may not stat: `kvb keys` said "the directory does not
    exist" of a store that is there, behind a directory the user may not enter (and `kvb put` that it
    could not create it); the line says what stops it, with the advice for a permission problem."""
    base = tempfile.mkdtemp(prefix="kvb-perm-")  # (tmp_path may not be open to nobody)
    try:
        os.chmod(base, 0o755)
        private = os.path.join(base, "private")
        path = os.path.join(private, "db")
        with DB(path) as db:
            db.put(b"k", b"v")
        os.chmod(private, 0o700)
        build_parser().parse_args(["keys", path])  # argparse's lazy imports, before dropping privileges
        keys = run_as_nobody(lambda: _main_output("keys", path))
        put = run_as_nobody(lambda: _main_output("put", path, "k2", "v"))
        salvage = run_as_nobody(lambda: _main_output("salvage", path, os.path.join(base, "copy")))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if os.geteuid() != 0:
        pytest.skip("needs root, to run as another user")
    assert keys == (
        2,
        "",
        f"kvb: cannot reach store directory {path}: Permission denied. User nobody may not read it: "
        "run kvb as a user who may (the store's owner).\n",
    )
    assert put[0] == 2
    assert put[2].startswith(f"kvb: cannot reach store directory {path}: Permission denied. kvb put ")
    # salvage only reads the store it is given (not "kvb salvage writes to the store").
    assert salvage == (2, "", keys[2])


@pytest.mark.parametrize("command", ["keys", "check", "put"])
def test_a_symlink_loop_or_a_name_too_long_is_said_as_such(tmp_path, capsys, command):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    long = tmp_path / ("a" * 300)
    for path, reason in ((loop, "Too many levels of symbolic links"), (long, "File name too long")):
        args = [command, str(path)] + (["k", "v"] if command == "put" else [])
        assert run(capsys, *args) == (2, "", f"kvb: cannot reach store directory {path}: {reason}.\n")
    assert sorted(os.listdir(tmp_path)) == ["loop"]


def test_a_key_or_value_whose_text_looks_like_a_bytes_literal_is_printed_as_one(store_path, capsys):
    """The key b"\\xff" and the text key "b'\\xff'" both printed as the line b'\\xff': a script that
    reads a bytes literal back (ast.literal_eval) got the wrong key. A text that starts as a bytes
    literal does is printed as its own bytes literal, so that every line starting with b' or b" is one."""
    import ast

    keys = [b"\xff", b"b'\\xff'", b'b"x"', b"b", b"bob's"]
    with DB(store_path) as db:
        for key in keys:
            db.put(key, key)
    code, out, _ = run(capsys, "keys", store_path)
    lines = out.splitlines()
    assert code == 0 and len(set(lines)) == len(keys)
    read_back = [ast.literal_eval(x) if x.startswith(("b'", 'b"')) else x.encode() for x in lines]
    assert sorted(read_back) == sorted(keys)
    for key in keys:
        code, out, _ = run(capsys, "get", store_path, os.fsdecode(key))
        line = out.removesuffix("\n")
        assert code == 0
        assert (ast.literal_eval(line) if line.startswith(("b'", 'b"')) else line.encode()) == key


def test_stats_json_has_the_fields_docs_engine_md_names(store_path, capsys):
    """A script parsing `kvb stats --json` needs its field names: docs/engine.md lists them."""
    import json
    import re

    with DB(store_path) as db:
        db.put(b"k", b"v")
    code, out, _ = run(capsys, "stats", store_path, "--json")
    assert code == 0
    stats = json.loads(out)
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "engine.md"), encoding="utf-8") as f:
        doc = f.read()
    para = doc[doc.index("`kvb stats PATH --json` prints") :]
    para = para[: para.index("`kvb check` exits 1")]
    named = set(re.findall(r"`([a-z_]+)`", para)) - {"stats", "check", "true"}
    assert named == set(stats)
    assert (stats["keys"], stats["read_only"], stats["sync"]) == (1, True, "never")


def _signal_midway(monkeypatch: pytest.MonkeyPatch, signum: int, copying: bool = False) -> None:
    """Make kvb's progress bar send this process ``signum`` at its first call that is not the last
    (with ``copying``, in the second half: salvage's copy, after its read of the source)."""
    import contextlib

    import kv_backend.progress

    sent = []

    @contextlib.contextmanager
    def bar(description: str, unit: str = "B"):
        def update(done: int, total: int) -> None:
            if (total // 2 if copying else 0) < done < total and not sent:
                sent.append(signum)
                os.kill(os.getpid(), signum)

        yield update

    monkeypatch.setattr(kv_backend.progress, "progress_bar", bar)


@pytest.mark.parametrize("command", ["merge", "backup", "salvage", "restore"])
def test_ctrl_c_midway_says_so_in_one_line_exits_130_and_the_next_run_works(
    tmp_path, capsys, monkeypatch, command
):
    """Ctrl-C stopped a long command with status 130 and nothing said: in a log (timeout -s INT, a
    supervisor) nothing told why it stopped. One line says it; the store is sound, the next run works."""
    import signal

    src, url, dst = str(tmp_path / "src"), str(tmp_path / "bk"), str(tmp_path / "dst")
    with DB(src, max_file_size=1 << 15) as db:
        for i in range(3000):  # (salvage copies 1000 keys a batch: a Ctrl-C comes after the first)
            db.put(b"k%04d" % (i % 2500), b"v" * 20)
        if command == "restore":
            db.backup(url)
    args = {
        "merge": ["merge", src],
        "backup": ["backup", src, url],
        "salvage": ["salvage", src, dst],
        "restore": ["restore", url, dst],
    }[command]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (what Python starts with)
    try:
        with monkeypatch.context() as m:
            _signal_midway(m, signal.SIGINT, copying=command == "salvage")
            assert run(capsys, *args) == (130, "", "kvb: interrupted\n")
    finally:
        signal.signal(signal.SIGINT, previous)
    if command == "salvage":  # SIGTERM alike
        before = signal.getsignal(signal.SIGTERM)
        with monkeypatch.context() as m:
            _signal_midway(m, signal.SIGTERM, copying=True)
            assert run(capsys, *args) == (143, "", "kvb: terminated\n")
        assert signal.getsignal(signal.SIGTERM) is before
    assert not os.path.exists(dst) and not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    code, _, err = run(capsys, *args)
    assert (code, err) == (0, "")
    with DB(dst if command in ("salvage", "restore") else src, read_only=True) as db:
        assert len(db) == 2500 and db[b"k2499"] == b"v" * 20
        assert db.stats()["corrupt_records"] == 0


def test_a_backup_url_the_os_refuses_is_one_plain_line_without_the_python_exception(tmp_path, capsys):
    """`kvb backups FILE` said "cannot list FILE/backups: NotADirectoryError: [Errno 20] Not a
    directory: 'FILE/backups'": a Python exception's text, the path twice. The OS's reason is said
    as kvb says it for a store (the exception's name stays for errors that carry no OS reason)."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    src = str(tmp_path / "src")
    with DB(src) as db:
        db.put(b"k", b"v")
    for args in (
        ["backups", str(not_a_dir)],
        ["backup", src, str(not_a_dir)],
        ["restore", str(not_a_dir), src + "2"],
    ):
        assert run(capsys, *args) == (2, "", f"kvb: cannot list {not_a_dir}/backups: Not a directory\n")


@pytest.mark.parametrize(("args", "status"), [(["keys", "MISSING"], 2), (["get", "STORE", "nokey"], 1)])
def test_a_message_nobody_reads_leaves_the_exit_status_as_it_is(store_path, monkeypatch, args, status):
    """With stderr a pipe whose reader is gone (`kvb ... 2>&1 | head -0`), the error line raised
    BrokenPipeError out of main's own handler: a traceback nobody saw and status 1 for an error (2),
    or 141 for a missing key (1). The status is the command's whatever becomes of its message."""
    import sys

    with DB(store_path) as db:
        db.put(b"k", b"v")
    args = [{"MISSING": store_path + "-missing", "STORE": store_path}.get(a, a) for a in args]
    r, w = os.pipe()
    os.close(r)
    with open(w, "w", buffering=1, encoding="utf-8") as stderr:  # (line-buffered, as stderr is)
        monkeypatch.setattr(sys, "stderr", stderr)
        from kv_backend.cli import main

        assert main(args) == status
        monkeypatch.undo()


@pytest.mark.parametrize("keep", ["0", "-1", "x"])
def test_backups_keep_0_is_refused_not_every_backup_deleted(tmp_path, capsys, keep):
    """`kvb backups URL --keep "$((KEEP))"` with KEEP unset is --keep 0, which deleted every backup
    and exited 0; as --ttl 0, it is a usage error (the API's prune_backups(keep=0) still deletes all)."""
    src, url = str(tmp_path / "src"), str(tmp_path / "bk")
    with DB(src) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
    code, out, err = run(capsys, "backups", url, "--keep", keep)
    assert (code, out) == (2, "")
    assert (
        f"argument --keep: must be a whole number >= 1 (how many of the newest backups to keep), not {keep!r}"
        in err
    )
    code, out, _ = run(capsys, "backups", url)
    assert code == 0 and out.startswith("one ")


def test_backups_at_a_url_that_cannot_be_listed_is_an_error_not_no_backups(capsys, monkeypatch):
    """fsspec's find() omits a directory it cannot list: with the HTTP server down (or a permission
    error of any filesystem that has no find of its own) `kvb backups URL` said "no backups" and
    exited 0, and a restore "no complete backup". The filesystem's error is said, with status 2."""
    import errno

    from fsspec.implementations.memory import MemoryFileSystem

    listed = MemoryFileSystem.ls

    def ls(self, path, detail=True, **kwargs):
        if "down" in path:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return listed(self, path, detail=detail, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "ls", ls)
    assert run(capsys, "backups", "memory://down") == (
        2,
        "",
        "kvb: cannot list memory://down/backups: Connection refused\n",
    )
    assert run(capsys, "backups", "memory://up") == (0, "", "kvb: no backups at memory://up\n")


def test_http_stopped_by_sigint_exits_0_as_serve_and_redis_server_do(tmp_path, capsys, monkeypatch):
    """uvicorn raises SIGINT again once it has shut down: kvb http exited 130 (and said "kvb:
    interrupted" after a clean shutdown), where kvb serve and redis-server exit 0 after SIGINT."""
    pytest.importorskip("uvicorn")
    import kv_backend.http

    def serve(*args, **kwargs):
        raise KeyboardInterrupt  # what uvicorn's Server.run() does after its shutdown on SIGINT

    monkeypatch.setattr(kv_backend.http, "serve", serve)
    assert run(capsys, "http", "--dir", str(tmp_path / "s"), "--port", "0") == (0, "", "")


def test_a_kvb_format_file_that_cannot_be_read_is_an_error_line_not_a_traceback(tmp_path, capsys):
    """Opening a store read its KVB_FORMAT file unguarded: one this user may not read (a store whose
    files are its owner's only) or one that is a directory raised a bare OSError, a traceback, and a
    dangling link named KVB_FORMAT a RecursionError."""
    path = str(tmp_path / "db")
    os.makedirs(os.path.join(path, "KVB_FORMAT"))
    assert run(capsys, "keys", path) == (2, "", f"kvb: cannot read {path}/KVB_FORMAT: Is a directory.\n")
    path = str(tmp_path / "db2")
    os.makedirs(path)
    os.symlink(str(tmp_path / "gone"), os.path.join(path, "KVB_FORMAT"))
    assert run(capsys, "keys", path) == (
        2,
        "",
        f"kvb: cannot read {path}/KVB_FORMAT: No such file or directory.\n",
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_kvb_format_file_this_user_may_not_read_says_so():
    base = tempfile.mkdtemp(prefix="kvb-perm-")  # (tmp_path may not be open to nobody)
    try:
        os.chmod(base, 0o755)
        path = os.path.join(base, "db")
        with DB(path) as db:
            db.put(b"k", b"v")
        os.chmod(path, 0o755)
        os.chmod(os.path.join(path, "KVB_FORMAT"), 0o600)
        build_parser().parse_args(["keys", path])  # argparse's lazy imports, before dropping privileges
        keys = run_as_nobody(lambda: _main_output("keys", path))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if os.geteuid() != 0:
        pytest.skip("needs root, to run as another user")
    assert keys == (
        2,
        "",
        f"kvb: cannot read {path}/KVB_FORMAT: Permission denied. User nobody may not read it: "
        "run kvb as a user who may (the store's owner).\n",
    )


@pytest.mark.parametrize("command", ["salvage", "restore"])
def test_a_second_ctrl_c_cannot_cut_the_cleanup_of_the_first_short(tmp_path, capsys, monkeypatch, command):
    """An impatient second Ctrl-C, during the removal of the unfinished copy the first one stopped,
    interrupted that removal and left the copy behind (a hidden directory next to DST, for good); a
    second SIGTERM was already ignored for that reason, and a second SIGINT is now too."""
    import signal

    import kv_backend.backup
    import kv_backend.salvage

    src, url, dst = str(tmp_path / "src"), str(tmp_path / "bk"), str(tmp_path / "dst")
    with DB(src, max_file_size=1 << 15) as db:
        for i in range(2500):
            db.put(b"k%04d" % i, b"v" * 20)
        if command == "restore":
            db.backup(url)
    module = kv_backend.salvage if command == "salvage" else kv_backend.backup
    rmtree = module.shutil.rmtree

    def impatient_rmtree(path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again, as the cleanup starts
        return rmtree(path, *args, **kwargs)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (what Python starts with)
    try:
        with monkeypatch.context() as m:
            _signal_midway(m, signal.SIGINT, copying=True)
            m.setattr(module.shutil, "rmtree", impatient_rmtree)
            args = ["salvage", src, dst] if command == "salvage" else ["restore", url, dst]
            assert run(capsys, *args) == (130, "", "kvb: interrupted\n")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sorted(os.listdir(tmp_path)) == (["src"] if command == "salvage" else ["bk", "src"])


@pytest.mark.parametrize(
    "args",
    [
        ("put", "STORE", "k", "-v"),
        ("put", "STORE", "-k", "v"),
        ("get", "STORE", "-xa"),
        ("delete", "STORE", "-xa"),
    ],
)
def test_a_key_or_value_that_starts_with_a_dash_is_refused_with_how_to_give_it(store_path, capsys, args):
    """`kvb put DIR k -v` said only "unrecognized arguments: -v", and `kvb get DIR -xa` "the
    following arguments are required: key": nothing said how to give such a key or value (`--`)."""
    with DB(store_path) as db:
        db.put(b"k", b"1")
    code, out, err = run(capsys, *[store_path if a == "STORE" else a for a in args])
    assert (code, out) == (2, "")
    assert err.rstrip().endswith(
        "(a key or value that starts with '-' goes after '--', which ends the options: "
        "kvb put PATH -- KEY VALUE)"
    )
    with DB(store_path) as db:
        assert dict(db.items()) == {b"k": b"1"}


def test_backups_with_a_damaged_manifest_exits_1_as_check_does(tmp_path, capsys):
    """`kvb backups` listed a damaged manifest (DAMAGED: ...) and exited 0, so a cron job watching
    its status did not notice that the newest backup cannot be restored by default, nor that it stops
    every prune from collecting objects; damage found exits 1, as for kvb check, salvage and backup."""
    src, url = str(tmp_path / "src"), str(tmp_path / "bk")
    with DB(src) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
        db.backup(url, name="two")
    assert run(capsys, "backups", url)[0] == 0
    with open(os.path.join(url, "backups", "two.json"), "w") as f:
        f.write("garbage")
    for args in (["backups", url], ["backups", url, "--keep", "1"]):
        code, out, err = run(capsys, *args)
        assert code == 1
        assert out.startswith("one ") and "two  DAMAGED: " in out
        assert err == (
            f"kvb: 1 damaged backup manifest(s) at {url}: two; repair or delete them: while one is there, "
            "kvb backups --keep removes no objects, and kvb restore without --name may refuse to choose\n"
        )


def test_backups_lines_have_the_fields_docs_backup_md_gives(tmp_path, capsys):
    """docs/backup.md gives the line `kvb backups` prints for scripts: NAME, the UTC time, the file
    count, the size and the store's path (the rest of the line, spaces and all), two spaces apart."""
    import re

    source = str(tmp_path / "my store")
    with DB(source) as db:
        db.put(b"k", b"v" * 5000)
        url = (tmp_path / "bk").as_uri()
        db.backup(url, name="older")
        db.put(b"k2", b"w")
        db.backup(url, name="nightly")
    code, out, _ = run(capsys, "backups", url)
    assert code == 0
    line = re.compile(
        r"^(?P<name>\S+)  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  \d+ files  "
        r"[\d.]+ (B|KiB|MiB|GiB|TiB)  from (?P<path>.+)$"
    )
    found = [line.match(text) for text in out.splitlines()]
    assert all(found), out
    assert [m["name"] for m in found] == ["older", "nightly"]  # oldest first
    assert {m["path"] for m in found} == {source}
