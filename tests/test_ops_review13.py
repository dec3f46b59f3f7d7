"""Operations tooling, review 13: kvb http's shutdown and Host check, backup/restore, kvb's --json output."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest
from helpers import LogSays, read_until_closed, serve_here_with_client, stalled_upload

from kv_backend import DB

# ------------------------------------------------------------------ kvb http


def test_http_second_ctrl_c_exits_at_once_without_a_traceback(tmp_path, capfd):
    """A second Ctrl-C during the graceful shutdown (a client stalled mid-body) made uvicorn skip the
    app's shutdown; asyncio then cancelled the lifespan task and Starlette logged it as a traceback.
    It now ends as the grace period does: the stalled upload is answered 503, the store closed, status 0."""
    pytest.importorskip("uvicorn")
    from kv_backend.cli import main

    answer: list[bytes] = []
    first_ctrl_c: list[float] = []
    waiting = LogSays("Waiting for connections to close")  # uvicorn's graceful shutdown has begun
    uvicorn_log = logging.getLogger("uvicorn.error")

    def stalled_client(port: int) -> None:
        try:  # a PUT whose body never comes: the shutdown waits for it (up to 10 s)
            conn = stalled_upload(port)
            uvicorn_log.addHandler(waiting)  # uvicorn set its logging up before it listened
        finally:
            first_ctrl_c.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)
        with conn:
            try:
                waiting.said.wait(10)
            finally:
                os.kill(os.getpid(), signal.SIGINT)  # the impatient operator's second Ctrl-C
            answer.append(read_until_closed(conn))

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # (the client starts once this process listens on the port: see serve_here_with_client)
        code, _, client = serve_here_with_client(
            lambda port: main(["http", "--dir", str(tmp_path / "s"), "--port", str(port)]), stalled_client
        )
        stopped = time.monotonic()
    finally:
        signal.signal(signal.SIGINT, previous)
        uvicorn_log.removeHandler(waiting)
    client.join(10)
    err = capfd.readouterr().err
    assert waiting.said.is_set(), err  # the second Ctrl-C came during the graceful shutdown
    assert code == 0 and stopped - first_ctrl_c[0] < 5  # not the 10 s grace
    assert "Traceback" not in err and "Exception in" not in err, err
    assert "Application shutdown complete" in err
    assert answer and answer[0].startswith(b"HTTP/1.1 503") and b"store_closed" in answer[0]
    with DB(str(tmp_path / "s"), read_only=True) as db:
        assert b"k" not in db


def _get(app, server: object, headers: list[tuple[bytes, bytes]]) -> int:
    """GET /v1/stats straight from the ASGI ``app``, for a connection that arrived on ``server``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/stats",
        "raw_path": b"/v1/stats",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": server,
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"]


REBOUND = [(b"host", b"evil.example:8380"), (b"sec-fetch-site", b"same-origin")]


@pytest.mark.parametrize(
    ("server", "refused"),
    [
        (("127.0.0.1", 8380), True),
        (("::1", 8380), True),
        (("::ffff:127.0.0.1", 8380), True),  # a dual-stack socket's IPv4 loopback
        (("/run/kv.sock", None), True),  # uvicorn --uds: local only
        (None, True),
        (("10.1.2.3", 8380), False),  # reachable from elsewhere anyway: the token is the protection
    ],
)
def test_app_from_env_without_a_token_keeps_rebound_pages_out_on_loopback(
    tmp_path, monkeypatch, server, refused
):
    """kvb http on a loopback address refused a browser's request for a foreign Host (DNS rebinding),
    but the app_from_env factory, for the documented uvicorn/gunicorn command (which binds 127.0.0.1
    by default), did not: any web page could rebind its name to the server and use the store."""
    pytest.importorskip("starlette")
    from kv_backend.http import app_from_env

    monkeypatch.setenv("KVB_HTTP_DIR", str(tmp_path / "s"))
    monkeypatch.delenv("KVB_HTTP_TOKEN", raising=False)
    app = app_from_env()
    try:
        assert _get(app, server, REBOUND) == (400 if refused else 200)
        # a program (no browser headers) and a browser that names the server by address are served
        assert _get(app, server, [(b"host", b"evil.example")]) == 200
        assert _get(app, server, [(b"host", b"127.0.0.1:8380"), (b"sec-fetch-site", b"none")]) == 200
    finally:
        app.state.db.close()


def test_app_from_env_with_a_token_leaves_the_host_to_it(tmp_path, monkeypatch):
    pytest.importorskip("starlette")
    from kv_backend.http import app_from_env

    monkeypatch.setenv("KVB_HTTP_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("KVB_HTTP_TOKEN", "s3cret")
    app = app_from_env()
    try:
        auth = [(b"authorization", b"Bearer s3cret")]
        assert _get(app, ("127.0.0.1", 8380), REBOUND + auth) == 200
    finally:
        app.state.db.close()


# ------------------------------------------------------------------ backup and restore


def _store_with_a_backup(tmp_path) -> str:
    url = str(tmp_path / "backups")
    with DB(str(tmp_path / "src")) as db:
        for i in range(20):
            db.put(b"k%d" % i, b"v" * 1000)
        db.backup(url, name="b1")
    return url


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), ValueError("stop")])
def test_an_exception_of_the_progress_callback_comes_through_unchanged_from_restore_as_from_backup(
    tmp_path, error
):
    """docs/backup.md: an exception raised by progress aborts the backup and comes through unchanged.
    restore passed other exceptions on, but wrapped an OSError (a progress bar whose terminal is gone)
    in BackupError("cannot restore into PATH: ..."), as if the restore itself had failed."""
    from kv_backend.backup import backup, restore

    url = _store_with_a_backup(tmp_path)

    def progress(done: int, total: int) -> None:
        if done:
            raise error

    dest = tmp_path / "restored"
    with pytest.raises(type(error)) as info:
        restore(url, str(dest), progress=progress)
    assert info.value is error
    assert not dest.exists() and not [n for n in os.listdir(tmp_path) if ".restore-" in n]  # cleaned up
    with DB(str(tmp_path / "src"), read_only=True) as db, pytest.raises(type(error)) as info:
        backup(db, url, progress=progress)
    assert info.value is error
    # the restore's own OSErrors are still the project's BackupError
    (tmp_path / "file").write_text("x")
    from kv_backend.errors import BackupError

    with pytest.raises(BackupError):
        restore(url, str(tmp_path / "file" / "below"))


def test_a_restore_removes_what_restores_killed_midway_left_but_not_a_running_ones(tmp_path):
    """A restore killed midway (SIGKILL, a power cut) left its .NAME.restore-TOKEN directory, a copy
    of part of the backup, for ever. The next restore into that path now removes such directories,
    but only those whose restore is gone: a running restore holds a lock on its own."""
    import fcntl

    from kv_backend.backup import restore

    url = _store_with_a_backup(tmp_path)
    killed = tmp_path / ".restored.restore-0123456789ab"
    killed.mkdir()
    (killed / "0000000001-000.data").write_bytes(b"x" * 100)
    running = tmp_path / ".restored.restore-ba9876543210"
    running.mkdir()
    other = tmp_path / ".elsewhere.restore-0123456789ab"  # another path's: not this restore's business
    other.mkdir()
    fd = os.open(running, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the restore that made it holds it
        restore(url, str(tmp_path / "restored"))
        assert not killed.exists() and running.is_dir() and other.is_dir()
    finally:
        os.close(fd)
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert len(db) == 20
    restore(url, str(tmp_path / "restored2"))  # its own is gone once it is done
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".restored2.")]


@pytest.mark.parametrize(("mode", "files"), [(0o2770, 0o660), (0o750, 0o640), (0o700, 0o600), (0o755, 0o644)])
def test_restore_into_a_prepared_directory_gives_its_files_the_access_it_grants(tmp_path, mode, files):
    """docs/engine.md: a store shared by a group of service users is a group-writable directory with
    group-writable files. Restored (by root, umask 022) into an empty directory prepared so, the
    directory kept its 2770, but its files came back 0644: no other member of the group could open
    the store (its LOCK file needs write access)."""
    from kv_backend.backup import restore

    url = _store_with_a_backup(tmp_path)
    dest = tmp_path / "kv"
    dest.mkdir()
    os.chmod(dest, mode)
    old = os.umask(0o022)
    try:
        restore(url, str(dest))
    finally:
        os.umask(old)
    assert os.stat(dest).st_mode & 0o7777 == mode
    assert {name: os.stat(dest / name).st_mode & 0o777 for name in os.listdir(dest)} == dict.fromkeys(
        os.listdir(dest), files
    )
    old = os.umask(0o002)  # a writer of a group's store, as docs/engine.md says to start it
    try:
        with DB(str(dest)) as db:  # and the data and hint files the engine adds follow them
            db.put(b"new", b"v")
            db.merge()
    finally:
        os.umask(old)
    added = [name for name in os.listdir(dest) if name.endswith((".data", ".hint"))]
    assert {os.stat(dest / name).st_mode & 0o777 for name in added} == {files}


# ------------------------------------------------------------------ kvb --json


def _kvb(capsys, *args: str) -> tuple[int, str, str]:
    from kv_backend.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_kvb_check_json(tmp_path, capsys):
    """kvb stats had --json for monitoring scripts, kvb check (whose exit status a cron job watches) had
    only text lines to parse."""
    import json

    from kv_backend import record
    from kv_backend.files import list_data_files

    path = str(tmp_path / "s")
    with DB(path, max_file_size=4096) as db:
        for i in range(80):
            db.put(b"k%02d" % i, b"v" * 100)
    files = len(list_data_files(path))
    code, out, err = _kvb(capsys, "check", path, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report == {
        "path": path,
        "ok": True,
        "files": files,
        "records": 80,
        "bytes": report["bytes"],
        "reserved": report["reserved"],
        "damaged": 0,
        "problems": [],
        "notes": [],
    }
    first = os.path.join(path, sorted(n for n in os.listdir(path) if n.endswith(".data"))[0])
    with open(first, "r+b") as f:
        f.seek(record.FILE_HEADER_SIZE + 30)  # inside the first record's value
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    code, out, err = _kvb(capsys, "check", path, "--json")
    report = json.loads(out)
    assert (code, err, report["ok"], report["damaged"]) == (1, "", False, 1)
    assert report["problems"] == [
        {
            "file": os.path.basename(first),
            "offset": record.FILE_HEADER_SIZE,
            "what": "checksum mismatch",
            "key": repr(b"k00"),
        }
    ]


def test_kvb_backups_json(tmp_path, capsys):
    import json

    url = _store_with_a_backup(tmp_path)
    with DB(str(tmp_path / "src"), read_only=True) as db:
        created = db.backup(url, name="b2")
    code, out, err = _kvb(capsys, "backups", url, "--json")
    assert (code, err) == (0, "")
    listing = json.loads(out)
    assert listing["url"] == url and listing["removed"] == []
    assert [b["name"] for b in listing["backups"]] == ["b1", "b2"]  # oldest first, as the lines
    b2 = listing["backups"][1]
    assert b2["ok"] is True and b2["error"] is None and b2["files"] == created.files
    assert b2["bytes"] == created.bytes and b2["source"] == str(tmp_path / "src")
    assert isinstance(b2["created"], float) and abs(b2["created"] - time.time()) < 60
    assert b2["created_utc"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b2["created"]))
    with open(os.path.join(url, "backups", "bad.json"), "w") as f:
        f.write("{")
    code, out, err = _kvb(capsys, "backups", url, "--json", "--keep", "1")
    listing = json.loads(out)
    assert code == 1 and "damaged backup manifest" in err  # as without --json
    assert listing["removed"] == ["b1"]
    bad = next(b for b in listing["backups"] if b["name"] == "bad")
    assert bad["ok"] is False and "damaged" in bad["error"] and bad["created"] is None
    code, out, err = _kvb(capsys, "backups", str(tmp_path / "none"), "--json")
    assert (code, json.loads(out)["backups"]) == (0, [])


def test_kvb_stats_json_of_a_path_that_is_not_utf8_is_valid_json(tmp_path, capsys):
    """The path came out as "\\udcff", a lone surrogate: no valid Unicode, which strict JSON parsers
    (Rust's serde_json, Go's, I-JSON) refuse or mangle. Its other bytes are now U+FFFD."""
    import json

    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/st\xff")
    with DB(path) as db:
        db.put(b"k", b"v")
    for command in ("stats", "check"):
        code, out, err = _kvb(capsys, command, path, "--json")
        assert (code, err) == (0, "")
        assert "\\udc" not in out
        assert json.loads(out)["path"] == str(tmp_path) + "/st\ufffd"
        out.encode("utf-8")  # (no surrogate anywhere)


def test_kvb_check_json_has_the_fields_docs_engine_md_names(tmp_path, capsys):
    import json
    import re

    path = str(tmp_path / "s")
    with DB(path) as db:
        db.put(b"k", b"v")
    report = json.loads(_kvb(capsys, "check", path, "--json")[1])
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "engine.md"), encoding="utf-8") as f:
        doc = f.read()
    para = doc[doc.index("`kvb check PATH --json` prints") :]
    para = para[: para.index("In the JSON of")]
    named = set(re.findall(r"`([a-z_]+)`", para))
    assert named == set(report) | {"file", "offset", "what", "key"}


def test_http_backup_to_a_taken_name_is_409_not_a_failed_destination(tmp_path):
    """POST /v1/backup with a name that a backup at the URL already has was 502 backup_failed, which
    says the destination failed and that a retry may succeed; nothing was wrong with it."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.backup import BackupExistsError
    from kv_backend.errors import BackupError
    from kv_backend.http import create_app

    target = str(tmp_path / "bk")
    with DB(str(tmp_path / "s")) as db, TestClient(create_app(db)) as client:
        db.put(b"k", b"v")
        assert client.post("/v1/backup", json={"url": target, "name": "nightly"}).status_code == 200
        r = client.post("/v1/backup", json={"url": target, "name": "nightly"})
        assert (r.status_code, r.json()["error"]) == (409, "backup_exists")
        assert "already exists" in r.json()["message"]
        with pytest.raises(BackupExistsError) as info:
            db.backup(target, name="nightly")
        assert isinstance(info.value, BackupError)  # what callers caught before


@pytest.mark.parametrize("url", ["backups", "./backups", "~/backups", "../kv-backups"])
def test_http_backup_to_a_relative_path_is_refused(tmp_path, monkeypatch, url):
    """POST /v1/backup {"url": "backups"} wrote the backup relative to the server's working directory,
    which its client does not know (/ under systemd): the backup landed out of sight, or failed."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    monkeypatch.chdir(tmp_path)
    with DB(str(tmp_path / "s")) as db, TestClient(create_app(db)) as client:
        r = client.post("/v1/backup", json={"url": url})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target")
        assert "relative" in r.json()["message"] and "absolute path" in r.json()["message"]
        assert sorted(os.listdir(tmp_path)) == ["s"]  # nothing written anywhere
        r = client.post("/v1/backup", json={"url": "s3:/bucket/kv"})  # a typo: said as such, as before
        assert r.status_code == 400 and "is not a URL" in r.json()["message"]
        assert client.post("/v1/backup", json={"url": str(tmp_path / "bk")}).status_code == 200


def test_http_put_larger_than_the_engine_stores_is_413_before_its_body_is_read(tmp_path):
    """With KVB_HTTP_MAX_VALUE_SIZE above the engine's 1 GiB, a PUT of more was read whole into
    memory (told 100 Continue first) and only then refused by the engine; the PUT limit is now
    capped at what the engine stores, so it is refused from its Content-Length, reading nothing."""
    pytest.importorskip("starlette")
    from kv_backend import record
    from kv_backend.http import create_app

    reads: list[int] = []

    async def receive() -> dict:
        reads.append(1)
        return {"type": "http.request", "body": b"x", "more_body": False}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    size = str(record.MAX_VALUE_SIZE + 1).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": "/v1/keys/big",
        "raw_path": b"/v1/keys/big",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"kv"), (b"content-length", size), (b"expect", b"100-continue")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    with DB(str(tmp_path / "s")) as db:
        asyncio.run(create_app(db, max_value_size=2 << 30)(scope, receive, send))
        assert sent[0]["status"] == 413 and not reads
        assert str(record.MAX_VALUE_SIZE).encode() in sent[1]["body"] and b"big" not in db


def test_a_salvage_removes_what_salvages_killed_midway_left_but_not_a_running_ones(tmp_path):
    """As for restore: a salvage killed midway left its .DST.salvage-TOKEN directory (a partial copy
    of the store's readable keys) for ever; the next salvage into DST removes those no process holds."""
    import fcntl

    from kv_backend.salvage import salvage

    with DB(str(tmp_path / "src")) as db:
        db.put(b"k", b"v")
    killed = tmp_path / ".copy.salvage-0123abcd"
    killed.mkdir()
    (killed / "KVB_FORMAT").write_text("x")
    running = tmp_path / ".copy.salvage-dcba3210"
    running.mkdir()
    fd = os.open(running, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        salvage(str(tmp_path / "src"), str(tmp_path / "copy"))
        assert not killed.exists() and running.is_dir()
    finally:
        os.close(fd)
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".copy.")) == [running.name]
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert db[b"k"] == b"v"


def test_http_answers_name_a_store_path_that_is_not_utf8_as_valid_json(tmp_path):
    """GET /v1/stats of a store whose path is not UTF-8 was 500 internal_error: the path's lone
    surrogate could not be encoded; so was any error whose message named it (503 store_closed)."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/st\xff")
    db = DB(path)
    client = TestClient(create_app(db), raise_server_exceptions=False)
    try:
        r = client.get("/v1/stats")
        assert r.status_code == 200 and r.json()["path"] == str(tmp_path) + "/st\ufffd"
    finally:
        db.close()
    r = client.get("/v1/keys/k")
    assert (r.status_code, r.json()["error"]) == (503, "store_closed")
    assert str(tmp_path) + "/st\ufffd" in r.json()["message"]
