"""More tests of the kvb:// Celery result backend, compared with Celery's redis:// backend."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import celery_helpers
import pytest
from celery import Celery, chord
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_chord
from kv_backend_celery.backend import KVBackend, parse_url

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]

TIMEOUT = 30


def make_app(url: str, **conf) -> Celery:
    return celery_helpers.make_app(url, "kvb-more8", **conf)


@pytest.fixture
def backend(store_path) -> KVBackend:
    return make_app(f"kvb://{store_path}").backend


# ------------------------------------------------------------------ waiting


def test_get_raises_the_failed_parent_not_the_chord_error_it_left(backend):
    # As with redis://: when a chord's header fails while the client waits on the
    # body, get() raises the header's error, not the ChordError the failure then
    # stores on the body (which it raised only when the failure landed before get()).
    app = backend.app
    header = app.GroupResult("hdr", [app.AsyncResult("hdr-0"), app.AsyncResult("hdr-1")])
    body = app.AsyncResult("body", parent=header)

    def fail_the_chord():
        backend.mark_as_done("hdr-0", 1)
        backend.mark_as_failure("hdr-1", ValueError("header part broke"))
        backend.mark_as_failure("body", ChordError("Dependency hdr-1 raised ValueError('header part broke')"))

    timer = threading.Timer(0.1, fail_the_chord)
    timer.start()
    try:
        with pytest.raises(ValueError, match="header part broke"):
            body.get(timeout=TIMEOUT)
    finally:
        timer.join()
    # Without parents to follow, the body's own failure is what get() raises.
    with pytest.raises(ChordError):
        app.AsyncResult("body").get(timeout=TIMEOUT)


def test_get_calls_on_message_with_each_state(backend):
    # AsyncResult.get(on_message=...) works with redis:// (progress reporting); it
    # raised ImproperlyConfigured here, as with Celery's synchronous backends.
    seen: list = []
    delivered = threading.Semaphore(0)

    def on_message(meta):
        seen.append((meta["status"], meta["result"]))
        delivered.release()

    def run_task():
        backend.store_result("t-msg", {"pid": 1}, "STARTED")
        for i in range(2):
            assert delivered.acquire(timeout=TIMEOUT)
            backend.store_result("t-msg", {"done": i}, "PROGRESS")
        assert delivered.acquire(timeout=TIMEOUT)
        backend.mark_as_done("t-msg", 42)

    worker = threading.Thread(target=run_task)
    worker.start()
    try:
        assert backend.app.AsyncResult("t-msg").get(timeout=TIMEOUT, on_message=on_message) == 42
    finally:
        worker.join()
    assert seen == [
        ("STARTED", {"pid": 1}),
        ("PROGRESS", {"done": 0}),
        ("PROGRESS", {"done": 1}),
        ("SUCCESS", 42),
    ]


def test_chord_header_failure_raises_the_header_error_with_workers(celery_env):
    m = celery_env.app_module
    for _ in range(3):
        r = chord([m.add.s(1, 1), m.fail.s("header broke")])(m.tsum.s())
        with pytest.raises(ValueError, match="header broke"):
            r.get(timeout=TIMEOUT)


# ------------------------------------------------------------------- chords


def _chord_backend(store_path):
    # A short join timeout makes the claim on a completed chord lapse quickly.
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05).backend
    backend.chord_claim_min = 0.0
    return backend


def test_chord_fires_once_when_the_process_sending_its_callback_is_killed(store_path, monkeypatch):
    # A worker killed (acks_late) after its part completed the chord but before the callback
    # was sent: the part is delivered again, and that delivery sends the callback, once.
    backend = _chord_backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: completes the chord, then dies before sending
        os.close(r)

        def stall(*args):
            os.write(w, b"joining")
            time.sleep(60)

        backend._run_chord_callback = stall
        finish_part(backend, gid, ids[-1], body)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb", buffering=0) as pipe:
        assert pipe.read(7) == b"joining"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert sent == []
    time.sleep(backend._chord_claim_ttl() + 0.05)  # the dead process's claim lapses
    finish_part(backend, gid, ids[0], body)  # any counted part, delivered again, takes the chord over
    assert sent == [([1, 1, 1],)]
    assert list(backend.db.keys(prefix=backend.get_key_for_chord(gid))) == []  # the chord is over
    for i in ids:  # later copies don't send it again
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]


def test_chord_owned_by_a_live_process_is_not_taken_over(store_path, monkeypatch):
    backend = _chord_backend(store_path)
    backend.chord_claim_min = 30.0
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    key = backend.get_key_for_chord(gid)
    backend.mark_as_done(ids[-1], 1)
    assert backend._count_part(key, gid, ids[-1], 60, b"owner") == 0  # counted; the owner is joining
    finish_part(backend, gid, ids[-1], body)  # a copy of the last part, while the owner still holds the claim
    assert sent == []
    backend._run_chord_callback(gid, dict(body), key, b"owner")  # the owner sends it
    assert sent == [([1, 1, 1],)]


def test_slow_owner_does_not_send_a_callback_taken_over_by_a_redelivered_part(store_path, monkeypatch):
    backend = _chord_backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    key = backend.get_key_for_chord(gid)
    backend.mark_as_done(ids[-1], 1)
    assert backend._count_part(key, gid, ids[-1], 60, b"slow") == 0
    time.sleep(backend._chord_claim_ttl() + 0.05)  # the owner's claim lapses while it is slow
    finish_part(backend, gid, ids[1], body)  # a redelivered part takes the chord over and sends it
    assert sent == [([1, 1, 1],)]
    backend._run_chord_callback(gid, dict(body), key, b"slow")  # the slow owner gets there at last
    assert sent == [([1, 1, 1],)]


# ------------------------------------------------------------------ the store


def test_results_stored_after_the_store_directory_was_deleted_are_seen(store_path):
    # The results directory removed while workers and clients run: results stored from
    # then on must reach the clients (before, they went into the deleted files for ever).
    backend = make_app(f"kvb://{store_path}").backend
    backend.mark_as_done("before", 1)  # the store is open in this process and in the child
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: a client waiting for a result
        os.close(r)
        code = 1
        try:
            meta = backend.wait_for("after", timeout=5, interval=0.05)
            os.write(w, str(meta["result"]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    time.sleep(0.1)
    os.rename(store_path, f"{store_path}.deleted")
    shutil.rmtree(f"{store_path}.deleted")
    backend.mark_as_done("after", 2)  # a worker storing a result after the deletion
    with os.fdopen(r) as pipe:
        got = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == "2"
    fresh = make_app(f"kvb://{store_path}?sync=always").backend  # a process started later
    assert fresh.get_task_meta("after")["result"] == 2
    assert fresh.get_task_meta("before")["status"] == "PENDING"  # deleted with the directory


# ------------------------------------------------------------------------ URL


@pytest.mark.parametrize("host", ["LOCALHOST", "LocalHost"])
def test_localhost_is_accepted_in_any_case(host):
    # Host names are case-insensitive (RFC 3986): the error used to call it a
    # host and suggest kvb:///LOCALHOST/var/lib/r, a different directory.
    assert parse_url(f"kvb://{host}/var/lib/r?sync=always") == ("/var/lib/r", {"sync": "always"})
