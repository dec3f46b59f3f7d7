"""kvb http reads a small record on its event loop and hands every other read to a worker thread.

A GET or HEAD of a key is made where the event loop runs when it cannot wait (DB.read_is_quick: the
view is current, the record is small, no transaction of this process is being written); the rest
goes to a worker thread as before. Either way the answer is the same.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from helpers import ROOT, child_env, trace_calls
from helpers import key_url as url
from starlette.testclient import TestClient

from kv_backend.errors import DatabaseClosedError
from kv_backend.http import create_app
from kv_backend.http.app import QUICK_READ, _ReadGate


def _put_from_another_process(path, key: bytes, value: bytes) -> None:
    code = f"from kv_backend import DB\nwith DB({str(path)!r}) as d: d.put({key!r}, {value!r})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(), check=True, timeout=60)


@pytest.fixture
def traced(db, monkeypatch):
    """The DB, its reads recorded as (method, key, made on the event loop)."""
    db.seen = trace_calls(
        monkeypatch,
        db,
        ("get_with_tag", "size_with_tag"),
        lambda name, args, on_loop: (name, args[0], on_loop),
    )
    return db


@pytest.fixture
def client(traced):
    with TestClient(create_app(traced)) as c:
        yield c


def test_read_is_quick_says_when_a_read_needs_nothing_more(db, tmp_path):
    db.put(b"small", b"x" * 10)
    db.put(b"large", b"x" * (QUICK_READ + 1))
    assert db.read_is_quick(b"small", QUICK_READ)
    assert db.read_is_quick(b"absent", QUICK_READ)
    assert not db.read_is_quick(b"large", QUICK_READ)
    assert db.read_is_quick(b"large", None)  # any size, for a read of the header only
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from kv_backend import DB\nwith DB({str(db.path)!r}) as d: d.put(b'k', b'v')",
        ],
        cwd=ROOT,
        env=child_env(),
        check=True,
    )
    assert other.returncode == 0
    assert not db.read_is_quick(b"small", QUICK_READ)  # another process wrote: a read catches up first
    assert db.get(b"k") == b"v"
    assert db.read_is_quick(b"small", QUICK_READ)
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.read_is_quick(b"small", QUICK_READ)


def test_small_reads_are_made_on_the_event_loop(client, traced):
    traced.put(b"k", b"value")
    r = client.get(url(b"k"))
    assert (r.status_code, r.content) == (200, b"value")
    assert client.get(url(b"absent")).status_code == 404
    h = client.head(url(b"k"))
    assert (h.status_code, h.headers["content-length"], h.headers["etag"]) == (200, "5", r.headers["etag"])
    assert traced.seen == [
        ("get_with_tag", b"k", True),
        ("get_with_tag", b"absent", True),
        ("size_with_tag", b"k", True),
    ]


def test_large_values_are_read_in_a_worker_thread_and_headers_on_the_loop(client, traced):
    value = bytes(range(256)) * (QUICK_READ // 256 + 1)
    traced.put(b"big", value)
    r = client.get(url(b"big"))
    assert (r.status_code, r.content) == (200, value)
    assert client.head(url(b"big")).headers["content-length"] == str(len(value))
    assert traced.seen == [("get_with_tag", b"big", False), ("size_with_tag", b"big", True)]


def test_reads_after_another_process_wrote_catch_up_in_a_worker_thread(client, traced):
    traced.put(b"k", b"old")
    assert client.get(url(b"k")).content == b"old"
    _put_from_another_process(traced.path, b"k", b"new")
    assert client.get(url(b"k")).content == b"new"
    assert client.get(url(b"k")).content == b"new"
    assert [on_loop for _, _, on_loop in traced.seen] == [True, False, True]


def test_a_read_while_a_transaction_is_written_waits_for_it_in_a_thread(traced, monkeypatch):
    """The gate keeps every read out of a transaction being written: the loop does not wait for it,
    the read goes to a worker thread, which waits, and sees the whole transaction."""
    gates = []
    made = _ReadGate.__init__

    def recorded(self):
        made(self)
        gates.append(self)

    monkeypatch.setattr(_ReadGate, "__init__", recorded)
    traced.put(b"a", b"0")
    traced.put(b"b", b"0")
    with TestClient(create_app(traced)) as client:
        (gate,) = gates
        inside = threading.Event()
        release = threading.Event()

        def writer():
            with gate.writing(5) as clear:
                assert clear
                inside.set()
                release.wait(5)
                with traced.transaction() as t:
                    t.put(b"a", b"1")
                    t.put(b"b", b"1")

        w = threading.Thread(target=writer)
        w.start()
        assert inside.wait(5)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(client.get(url(b"a")).content))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive()  # waiting in its worker thread for the transaction
        assert client.get("/healthz").status_code == 200  # the event loop was not held meanwhile
        release.set()
        w.join(5)
        reader.join(5)
        assert got == [b"1"]
        assert client.get(url(b"b")).content == b"1"
    assert ("get_with_tag", b"a", False) in traced.seen


def test_errors_of_a_read_on_the_loop_are_the_apis(client, traced):
    traced.put(b"k", b"value")
    traced.close()
    r = client.get(url(b"k"))
    assert r.status_code == 503
    assert r.json()["error"] == "store_closed"


@pytest.mark.parametrize(
    ("options", "request_line", "startup_line"),
    [([], True, True), (["--no-access-log"], False, True), (["--log-level", "warning"], False, False)],
    ids=["default", "no-access-log", "log-level-warning"],
)
def test_access_log_and_log_level_options(tmp_path, options, request_line, startup_line):
    from test_http import Server

    store = str(tmp_path / "store")
    srv = Server(store, str(tmp_path / "log"), command=["-m", "kv_backend", "http", "--dir", store, *options])
    try:
        with srv.client(token=None) as c:
            assert c.put("/v1/keys/k", content=b"v").status_code in (200, 201)
            assert c.get("/v1/keys/k").content == b"v"
    finally:
        srv.stop()
    log = srv.log()
    assert ('"GET /v1/keys/k HTTP/1.1" 200' in log) is request_line, log
    assert ("Uvicorn running on" in log) is startup_line, log


def test_an_unknown_log_level_is_a_usage_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "kv_backend", "http", "--dir", str(tmp_path / "s"), "--log-level", "loud"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--log-level" in done.stderr and "invalid choice" in done.stderr
    assert not (tmp_path / "s").exists()  # refused before the store was made


def test_a_put_of_a_key_no_store_can_hold_is_refused_before_its_body(db):
    """The key is checked where the request is handled (not in a worker thread): still a 400
    invalid_key, and nothing is stored."""
    from test_http_review11 import _call

    status, body = _call(create_app(db), "PUT", b"/v1/keys/" + b"k" * 65537)
    assert status == 400 and b"invalid_key" in body
    assert list(db.keys()) == []
