"""`kvb` reviewed as an operator (and a Redis user) would use it: durations, secrets, error advice,
the environment, `--` values and memory use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from helpers import child_env, free_port, start_own_server
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

import kv_backend.server.resp
from kv_backend import DB


@pytest.mark.parametrize("ttl", ["0", "-1", "-0.5", "nan", "inf", "-inf", "1e300"])
def test_put_refuses_a_ttl_that_is_not_above_0_and_keeps_the_key(store_path, capsys, ttl):
    """The engine's ttl=0 deletes the key; `kvb put --ttl 0` did that and exited 0 (Redis: ERR invalid
    expire time, kvb http: 400 invalid_ttl). Now a usage error, exit 2, and the key is untouched."""
    with DB(store_path) as db:
        db.put(b"k", b"old")
    code, out, err = run(capsys, "put", store_path, "k", "new", f"--ttl={ttl}")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "kvb put: error: argument --ttl: must be a number of seconds greater than 0 and at most "
        f"9000000000000000, not {ttl!r} (leave --ttl out for a key that never expires; "
        "kvb delete removes a key)"
    )
    with DB(store_path, read_only=True) as db:
        assert db.get(b"k") == b"old" and db.ttl(b"k") is None


def test_put_ttl_accepts_what_kvb_http_accepts(store_path, capsys):
    from kv_backend.cli import _MAX_TTL
    from kv_backend.http.app import MAX_TTL

    assert _MAX_TTL == MAX_TTL
    assert run(capsys, "put", store_path, "a", "v", "--ttl", "0.25")[0] == 0
    assert run(capsys, "put", store_path, "b", "v", "--ttl", str(MAX_TTL))[0] == 0
    with DB(store_path, read_only=True) as db:
        assert 0 < db.ttl(b"a") <= 0.25 and db.ttl(b"b") > MAX_TTL - 60


@pytest.mark.parametrize(
    ("args", "key", "value"),
    [
        (["k", "--", "--"], b"k", b"--"),  # argparse 3.11 dropped it: "give either VALUE or --stdin"
        (["--", "--", "--"], b"--", b"--"),
        (["--", "-k", "--ttl"], b"-k", b"--ttl"),
        (["k", "--", "-"], b"k", b"-"),
        (["k", "-5"], b"k", b"-5"),  # a negative number needs no --
        (["k", "--ttl", "60", "--", "--"], b"k", b"--"),  # ... after an option (argparse: unrecognized)
        (["k", "--ttl", "60", "v"], b"k", b"v"),  # an option between the positional arguments
    ],
)
def test_put_stores_values_that_start_with_a_dash_after_the_double_dash(store_path, capsys, args, key, value):
    assert run(capsys, "put", store_path, *args) == (0, "", "")
    with DB(store_path, read_only=True) as db:
        assert db.get(key) == value
        assert (db.ttl(key) is None) == ("--ttl" not in args[: args.index("--") if "--" in args else None])
    assert run(capsys, "get", store_path, "--", key.decode()) == (0, value.decode() + "\n", "")


def test_after_the_double_dash_an_option_is_an_argument(store_path, capsys):
    code, _, err = run(capsys, "put", store_path, "k", "--", "v", "--ttl", "5")
    assert code == 2 and err.endswith("error: unrecognized arguments: --ttl 5\n")
    code, _, err = run(capsys, "keys", store_path, "--", "--prefix")
    assert code == 2 and err.endswith("error: unrecognized arguments: --prefix\n")


def _served(monkeypatch: pytest.MonkeyPatch, module: object) -> dict[str, object]:
    """Make ``module.serve`` (kvb serve's or kvb http's) record its arguments instead of serving."""
    got: dict[str, object] = {}
    monkeypatch.setattr(module, "serve", lambda path, **kwargs: got.update(kwargs))
    return got


def test_serve_takes_the_password_from_a_file_or_the_environment(tmp_path, capsys, monkeypatch):
    """`--requirepass PASS` shows the password to every user in ps; --requirepass-file and
    KVB_REQUIREPASS keep it off the command line (as KVB_HTTP_TOKEN does for kvb http)."""
    got = _served(monkeypatch, kv_backend.server.resp)
    store, secret = str(tmp_path / "s"), tmp_path / "pass"
    secret.write_bytes(b"from file\n")
    monkeypatch.setenv("KVB_REQUIREPASS", "from env")
    assert run(capsys, "serve", "--dir", store, "--requirepass-file", str(secret))[0] == 0
    assert got["requirepass"] == "from file"
    assert run(capsys, "serve", "--dir", store)[0] == 0
    assert got["requirepass"] == "from env"
    assert run(capsys, "serve", "--dir", store, "--requirepass", "from argv")[0] == 0
    assert got["requirepass"] == "from argv"
    monkeypatch.setenv("KVB_REQUIREPASS", "")  # empty: no password, as an empty --requirepass
    assert run(capsys, "serve", "--dir", store)[0] == 0
    assert got["requirepass"] is None


def test_http_takes_the_token_from_a_file(tmp_path, capsys, monkeypatch):
    import kv_backend.http

    got = _served(monkeypatch, kv_backend.http)
    secret = tmp_path / "token"
    secret.write_bytes(b"t0ken\r\n")
    assert run(capsys, "http", "--dir", str(tmp_path / "s"), "--token-file", str(secret))[0] == 0
    assert got["token"] == "t0ken"


@pytest.mark.parametrize(("command", "flag"), [("serve", "--requirepass"), ("http", "--token")])
def test_a_secret_file_that_is_missing_or_empty_or_given_twice_is_a_usage_error(
    tmp_path, capsys, command, flag
):
    store, empty, missing = str(tmp_path / "s"), tmp_path / "empty", str(tmp_path / "missing")
    empty.write_bytes(b"\n")
    code, _, err = run(capsys, command, "--dir", store, f"{flag}-file", str(empty))
    assert code == 2 and f"argument {flag}-file: {empty} is empty; write the secret in it" in err
    code, _, err = run(capsys, command, "--dir", store, f"{flag}-file", missing)
    assert code == 2 and f"argument {flag}-file: cannot read {missing}: No such file or directory" in err
    empty.write_bytes(b"y")
    code, _, err = run(capsys, command, "--dir", store, flag, "x", f"{flag}-file", str(empty))
    assert code == 2 and f"argument {flag}-file: not allowed with argument {flag}" in err
    assert not os.path.exists(store)


def test_serve_password_from_a_file_stays_out_of_ps_and_may_be_any_bytes(tmp_path):
    """A password that is not UTF-8 (from a file, or argv) made every AUTH fail with
    "ERR 'utf-8' codec can't encode character": it is compared as the bytes it was given."""
    secret = tmp_path / "pass"
    secret.write_bytes(b"s3cr\xffet\n")
    cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", str(tmp_path / "s")]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        args = [*cmd, "--port", str(port), "--requirepass-file", str(secret)]
        return subprocess.Popen(args, env=child_env(), stderr=subprocess.DEVNULL), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            assert b"s3cr" not in f.read()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"*2\r\n$4\r\nAUTH\r\n$4\r\ns3cr\r\n*2\r\n$4\r\nAUTH\r\n$7\r\ns3cr\xffet\r\nPING\r\n")
            out = b""
            while not out.endswith(b"+PONG\r\n"):
                chunk = s.recv(1024)
                assert chunk, out
                out += chunk
        assert out == b"-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n+PONG\r\n"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


@pytest.mark.parametrize("value", ["asyncoi", "uv-loop", "none"])
def test_serve_refuses_an_unknown_kvb_event_loop_naming_the_accepted_values(
    tmp_path, capsys, monkeypatch, value
):
    """KVB_EVENT_LOOP=asyncoi served on uvloop without a word; now exit 2 before the store is made."""
    monkeypatch.setenv("KVB_EVENT_LOOP", value)
    store = str(tmp_path / "s")
    code, out, err = run(capsys, "serve", "--dir", store, "--port", "0")
    assert (code, out) == (2, "")
    assert err == (
        "kvb: KVB_EVENT_LOOP must be 'asyncio' (the standard event loop) or 'uvloop', or unset "
        f"(uvloop's when installed), not {value!r}\n"
    )
    assert not os.path.exists(store)


def test_kvb_event_loop_accepted_values(monkeypatch):
    from kv_backend.errors import ConfigurationError

    monkeypatch.setenv("KVB_EVENT_LOOP", "AsyncIO ")
    assert kv_backend.server.resp._loop_factory() is None
    monkeypatch.setenv("KVB_EVENT_LOOP", "uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: asked for, so an error
    with pytest.raises(ConfigurationError, match=r"KVB_EVENT_LOOP=uvloop but the uvloop package cannot"):
        kv_backend.server.resp._loop_factory()
    monkeypatch.delenv("KVB_EVENT_LOOP")
    assert kv_backend.server.resp._loop_factory() is None  # not asked for: the standard loop


def test_an_unknown_kvb_crc_is_warned_about_not_silently_ignored(monkeypatch):
    import zlib

    from kv_backend import checksum

    monkeypatch.setenv("KVB_CRC", "zlb")
    with pytest.warns(RuntimeWarning, match=r"KVB_CRC='zlb' is not a CRC-32 implementation .* 'zlib'"):
        picked = checksum.pick_crc32()
    assert picked == checksum.pick_crc32("")  # the default, as without the variable
    monkeypatch.setenv("KVB_CRC", " ZLIB")
    assert checksum.pick_crc32() == (zlib.crc32, "zlib")
    monkeypatch.setitem(sys.modules, "isal", None)  # as if not installed
    with pytest.warns(RuntimeWarning, match=r"KVB_CRC='isal' but the isal package cannot be imported"):
        assert checksum.pick_crc32("isal") == (zlib.crc32, "zlib")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_store_this_user_may_not_write_gets_advice_for_an_operator_not_read_only_true(capsys):
    """The engine's advice "open it with read_only=True" (and its "[Errno 13] ...: 'LOCK'" around
    the message) is for a program: kvb names the user, what to do, and the commands that only read."""
    import shutil
    import tempfile

    from helpers import run_as_nobody
    from test_cli_review10 import _main_output

    from kv_backend.cli import build_parser

    base = tempfile.mkdtemp(prefix="kvb-perm-")  # (tmp_path may not be open to nobody)
    try:
        os.chmod(base, 0o755)
        path = os.path.join(base, "db")
        with DB(path) as db:
            db.put(b"k", b"v")
        for name in os.listdir(path):
            os.chmod(os.path.join(path, name), 0o644)
        os.chmod(path, 0o755)
        build_parser().parse_args(
            ["put", path, "k", "v"]
        )  # argparse's lazy imports, before dropping privileges
        put = run_as_nobody(lambda: _main_output("put", path, "k2", "v"))
        get = run_as_nobody(lambda: _main_output("get", path, "k"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    user = "nobody" if os.geteuid() == 0 else __import__("pwd").getpwuid(os.geteuid()).pw_name
    assert put == (
        2,
        "",
        f"kvb: cannot open lock file {path}/LOCK: Permission denied. kvb put writes to the store, and user "
        f"{user} may not write there: run kvb as a user who may (the store's owner), or give this one write "
        "access; get, keys, stats, check and backup only read.\n",
    )
    assert get == (0, "v\n", "")  # ... as it says


def test_a_read_only_filesystem_and_a_missing_store_are_said_without_errno_or_library_advice(
    store_path, capsys, monkeypatch
):
    import errno

    import kv_backend
    from kv_backend.files import storage_error

    code, _, err = run(capsys, "keys", store_path + "-missing")
    assert (code, err) == (
        2,
        f"kvb: no kv_backend store at {store_path}-missing: the directory does not exist\n",
    )

    def read_only_fs(path: str, **kwargs: object) -> None:
        exc = OSError(errno.EROFS, "Read-only file system", f"{path}/LOCK")
        raise storage_error(exc, f"cannot open lock file {path}/LOCK") from exc

    monkeypatch.setattr(kv_backend, "DB", read_only_fs)
    code, _, err = run(capsys, "put", "--", store_path, "k", "v")
    assert (code, err) == (
        2,
        f"kvb: cannot open lock file {store_path}/LOCK: Read-only file system. The filesystem is mounted "
        "read-only: kvb put cannot write there (get, keys, stats, check and backup can: they only read).\n",
    )


def test_check_holds_a_window_of_a_data_file_in_memory_not_the_whole_file(tmp_path):
    """`kvb check` read each data file whole (a 1 GiB file: 1 GiB of memory); it reads a window at a time."""
    import tracemalloc

    from kv_backend.check import WINDOW, check

    path = str(tmp_path / "s")
    with DB(path) as db:
        for i in range(2000):
            db.put(b"k%d" % i, os.urandom(4000))
    size = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if n.endswith(".data"))
    tracemalloc.start()
    try:
        report = check(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok and report.records == 2000 and report.bytes + report.reserved == size > 8_000_000
    assert peak < 3 * WINDOW < size / 2, peak


def test_check_finds_the_same_window_by_window_as_in_one_read(tmp_path, monkeypatch):
    """Records, batches and a large value across window edges, damage in a batch, in a large value and
    in a length, a torn tail: the same report with windows of 64 bytes as with one of the whole file."""
    import kv_backend.check

    path = str(tmp_path / "s")
    with DB(path, max_file_size=4096) as db:  # several files: damage in one but the newest is no note
        for i in range(40):
            db.put(b"k%d" % i, b"v" * (i * 7))
            if i == 20:
                with db.batch() as b:
                    for j in range(5):
                        b.put(b"b%d" % j, b"w" * 50)
                db.put(b"big", os.urandom(3000))
        db.put(b"last", b"z" * 30)
    files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".data"))
    assert len(files) >= 3
    for marker, delta in ((b"b2", 5), (b"big", 1500), (b"k10", -10), (b"last", 10)):
        data = next(f for f in files if marker in open(f, "rb").read())  # noqa: SIM115
        with open(data, "r+b") as f:
            at = f.read().index(marker) + delta
            if marker == b"last":
                f.truncate(at)  # a torn last write
            else:
                f.seek(at)
                f.write(b"\xee")
    reports = []
    for window in (64, 1 << 40):
        monkeypatch.setattr(kv_backend.check, "WINDOW", window)
        r = kv_backend.check.check(path)
        reports.append((r.files, r.records, r.bytes, r.problems, r.notes))
    assert reports[0] == reports[1]
    assert len(reports[0][3]) >= 2 and len(reports[0][4]) == 1, reports[0]


@pytest.mark.parametrize(
    "command", [["get", "{}", "k"], ["keys", "{}"], ["delete", "{}", "k"], ["salvage", "{}", "{}2"]]
)
def test_a_directory_that_is_no_store_is_not_answered_with_pass_an_empty_directory(tmp_path, capsys, command):
    """Commands that need an existing store said "pass an empty or new directory", which they refuse
    too (no store there); that advice is for a command that creates one (put)."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    code, _, err = run(capsys, *[a.format(other) for a in command])
    assert (code, err) == (
        2,
        f"kvb: {other} is not a kv_backend store (no KVB_FORMAT file, and it holds notes.txt); "
        "give the directory of an existing store\n",
    )
    code, _, err = run(capsys, "put", str(other), "k", "v")
    assert code == 2 and err.endswith("holds notes.txt); pass an empty or new directory\n")


def test_keys_with_c1_controls_or_unicode_line_separators_are_bytes_literals(store_path, capsys):
    """docs/engine.md: a key holding a control character is printed as a bytes literal, so a line is
    one key. NEL (U+0085), CSI (U+009B, a terminal escape) and U+2028/U+2029 (line breaks to any
    Unicode-aware reader, str.splitlines() among them) were printed as they are."""
    keys = ["nel\x85x", "csi\x9b31mred", "ls\u2028x", "ps\u2029x", "plain é"]
    with DB(store_path) as db:
        for k in keys:
            db.put(k.encode(), b"v")
        db.put(b"value", "a\x9b31m\u2028b\tc\n".encode())
        db.put(b"text", "line\u2028two\ttab\n".encode())
    code, out, _ = run(capsys, "keys", store_path)
    shown = sorted([repr(k.encode()) for k in keys[:4]] + ["plain é", "text", "value"])
    assert code == 0 and sorted(out.splitlines()) == shown
    assert run(capsys, "get", store_path, "value")[1] == repr("a\x9b31m\u2028b\tc\n".encode()) + "\n"
    assert run(capsys, "get", store_path, "text")[1] == "line\u2028two\ttab\n\n"  # a value may span lines


def test_put_of_a_key_it_refuses_leaves_no_new_store_behind(tmp_path, capsys):
    """`kvb put NEWDIR "" v` (an empty "$KEY") said the key is refused, but had created NEWDIR, a new
    empty store, first."""
    new = str(tmp_path / "new")
    assert run(capsys, "put", new, "", "v") == (
        2,
        "",
        "kvb: keys must be 1 to 65536 bytes long, got 0 bytes\n",
    )
    code, _, err = run(capsys, "put", new, "k" * 65537, "v")
    assert code == 2 and "got 65537 bytes" in err
    assert not os.path.exists(new)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--requirepass", "is empty; give a password, or leave the option out for none"),
        ("--unixsocket", "is empty; give a path, or leave the option out for no unix socket"),
        ("--token", "is empty; give a token, or leave the option out for none"),
    ],
)
def test_serve_refuses_an_empty_password_or_socket_path(tmp_path, capsys, flag, message):
    """`kvb serve --requirepass "$SECRET"` with SECRET unset served with no password, without a word
    (and `--unixsocket "$SOCK"` on no unix socket). kvb http's `--token ""` said "non-empty string
    (or None for no authentication)", for a program."""
    store = str(tmp_path / "s")
    command = "http" if flag == "--token" else "serve"
    code, out, err = run(capsys, command, "--dir", store, f"{flag}=")
    assert (code, out) == (2, "") and err.endswith(f"error: argument {flag}: {message}\n")
    assert not os.path.exists(store)


def test_check_reports_a_damaged_published_last_record_that_get_raises_for(store_path, capsys):
    """The only (or last) record of the active file, published and then damaged: `kvb get` raised
    CorruptionError ("Run 'kvb check'"), `kvb merge` dropped it, and `kvb check` said "ok" (a note:
    an unfinished write). Past the published end, a torn record is still such a note."""
    from kv_backend import record as rec

    assert run(capsys, "put", store_path, "key", "value" * 4)[0] == 0
    data = os.path.join(store_path, "0000000001-000.data")
    with open(data, "r+b") as f:
        blob = f.read()
        end = rec.scan(blob, rec.FILE_HEADER_SIZE, len(blob)).end
        f.seek(blob.index(b"value") + 3)
        f.write(b"X")
    code, _, err = run(capsys, "get", store_path, "key")
    assert code == 2 and "failed its checksum" in err
    code, out, _ = run(capsys, "check", store_path)
    assert code == 1 and f"DAMAGED: {data} @ 16: checksum mismatch (a record of the key b'key')\n" in out
    with open(data, "r+b") as f:  # a torn write after it, never published: a note
        f.seek(end)
        f.write(rec.encode(rec.PUT, b"torn", b"x" * 50)[:30])
    code, out, _ = run(capsys, "check", store_path)
    assert code == 1 and f"note: {data} @ {end}: " in out and out.count("DAMAGED") == 1


def test_merge_that_finds_damaged_records_exits_1(store_path, capsys):
    """kvb merge that met a damaged record exited 0, as for a clean merge; as kvb check and kvb
    salvage, it now exits 1 and says on stderr what the damage means and what to do (the record is
    kept as it is, so every merge after it says the same until the key is written again)."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 60)
    first = os.path.join(store_path, "0000000001-000.data")
    with open(first, "r+b") as f:
        at = f.read().index(b"k005") + 10
        f.seek(at)
        f.write(b"X")
    for _ in range(2):
        code, out, err = run(capsys, "merge", store_path)
        assert code == 1 and "; 1 damaged record(s) kept as they are" in out
        assert err == (
            "kvb: 1 damaged record(s) were kept as they are: reading their keys raises CorruptionError "
            f"until each is written or deleted again. `kvb check {store_path}` lists them; restore their "
            "keys from a backup, or copy the readable keys into a new store with "
            f"`kvb salvage {store_path} NEW_PATH`\n"
        )
    with DB(store_path) as db:
        db.put(b"k005", b"written again")
    assert run(capsys, "merge", store_path)[0] == 0  # nothing damaged left


def test_salvage_does_not_take_a_damaged_published_last_record_for_an_unfinished_write(tmp_path, capsys):
    """The last record of the active file, published and then damaged: salvage skipped it as "an
    unfinished last write (as replay does)", exit 0 (clean), and its key was silently missing from the
    copy, while readers of the store raise CorruptionError for it. Now it is damage: exit 1."""
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    with DB(src) as db:
        db.put(b"key", b"value")
        db.put(b"key2", b"v2")
    data = os.path.join(src, "0000000001-000.data")
    with open(data, "r+b") as f:
        f.seek(f.read().index(b"v2"))
        f.write(b"X")
    code, out, _ = run(capsys, "salvage", src, dst)
    assert code == 1, out
    assert f"DAMAGED: {data} @ 46: 28 damaged bytes skipped" in out
    assert "not copied (newest record damaged): b'key2'" in out
    # A torn write past the published end is still an unfinished write; so is a tail the file lost
    # since the page was written (recovery rescans such a file from its start).
    with DB(src) as db:
        db.delete(b"key2")
    with open(data, "r+b") as f:
        blob = f.read()
        f.truncate(len(blob.rstrip(b"\0")) - 3)
    code, out, _ = run(capsys, "salvage", src, str(tmp_path / "dst2"))
    assert code == 0 and "an unfinished last write" in out, out


def test_salvage_into_a_link_to_an_empty_directory_fills_that_directory(store_path, tmp_path, capsys):
    """As restore does; salvage did all the work, then failed: 'cannot move the copy into place'."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
    target, link = tmp_path / "target", tmp_path / "link"
    target.mkdir()
    link.symlink_to(target)
    code, out, err = run(capsys, "salvage", store_path, str(link))
    assert (code, err) == (0, ""), out
    assert link.is_symlink() and out.startswith(f"salvaged {store_path} into {link}: 1 keys copied")
    with DB(str(target), read_only=True) as db:
        assert db.get(b"k") == b"v"
    assert sorted(os.listdir(tmp_path)) == ["link", "store", "target"]  # no copy left next to it


def test_openapi_entry_point_says_it_cannot_write_the_file_in_one_line(tmp_path, capsys):
    """`python -m kv_backend.http openapi PATH` into a missing directory (or onto a directory) ended
    in a FileNotFoundError traceback."""
    from kv_backend.http.__main__ import main as openapi_main

    missing = str(tmp_path / "missing" / "openapi.json")
    assert openapi_main(["openapi", missing]) == 2
    assert capsys.readouterr().err == (
        f"python -m kv_backend.http: cannot write {missing}: No such file or directory\n"
    )
    assert openapi_main(["openapi", str(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith(f"cannot write {tmp_path}: Is a directory\n")
    written = tmp_path / "openapi.json"
    assert openapi_main(["openapi", str(written)]) == 0 and written.read_text().startswith("{")


def test_backup_of_a_store_with_damaged_records_exits_1_as_restore_would_refuse_it(tmp_path, capsys):
    """kvb backup of a damaged store exited 0; every restore of that backup then fails ("file ... of
    backup ... is damaged"). The backup is still made (an exact copy), but kvb says so, exit 1."""
    pytest.importorskip("fsspec")
    src = str(tmp_path / "src")
    with DB(src, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 60)
    with open(os.path.join(src, "0000000001-000.data"), "r+b") as f:
        f.seek(f.read().index(b"k005") + 10)
        f.write(b"X")
    url = (tmp_path / "backups").as_uri()
    code, out, err = run(capsys, "backup", src, url, "--name", "b1")
    assert code == 1 and out.startswith("backup b1 complete at ")
    assert err == (
        "kvb: the store holds 1 damaged record(s), and so does this backup, which kvb restore "
        f"refuses; kvb check {src} lists them, and kvb salvage copies the readable keys into a new "
        "store to back up instead\n"
    )
    code, _, err = run(capsys, "restore", url, str(tmp_path / "restored"))
    assert code == 2 and "of backup b1 is damaged" in err
    copy = str(tmp_path / "copy")
    assert run(capsys, "salvage", src, copy)[0] == 1
    assert run(capsys, "backup", copy, url, "--name", "b2")[0] == 0
    assert run(capsys, "restore", url, str(tmp_path / "restored"), "--name", "b2")[0] == 0


def test_put_stdin_reads_no_more_than_a_value_may_hold(store_path, capsys, monkeypatch):
    """`kvb put DIR k --stdin < /dev/zero` read standard input to its end (never) into memory."""
    import io

    import kv_backend.record

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # /dev/zero
            buffer[:] = bytes(len(buffer))
            return len(buffer)

    monkeypatch.setattr(kv_backend.record, "MAX_VALUE_SIZE", 1000)  # (not 1 GiB in a test)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(Endless())))
    code, _, err = run(capsys, "put", store_path, "k", "--stdin")
    assert (code, err) == (2, "kvb: values may be at most 1000 bytes, got 1001\n")
    assert not os.path.exists(store_path)


@pytest.mark.parametrize("url", ["memory://backups", "MEMORY://b", "simplecache::memory://b"])
def test_backup_to_this_process_memory_is_refused(store_path, capsys, url):
    """`kvb backup DIR memory://x` reported "backup ... complete" for a backup that vanished with kvb."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
    code, out, err = run(capsys, "backup", store_path, url)
    assert (code, out) == (2, "")
    assert err == (
        f"kvb: {url} is in the memory of this kvb process, which is gone when it exits; give a URL "
        "that outlives it (a directory, file://, s3://...)\n"
    )
