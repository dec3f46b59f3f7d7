"""Chords whose callback sender was lost and whose parts never come again are finished by the workers.

Celery 5.7 acknowledges a part whose pool process was killed after it stored
its result, so when that process completed a chord and died sending the
callback, no part is delivered again: the chord stayed complete, unclaimed and
unfired for good (as with redis://). Worker processes now look for such chords
and take them over, exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import celery_helpers
import pytest
from celery import Celery, chord
from celery.app.task import Context
from celery_helpers import CountingList, finish_part, make_chord
from helpers import child_env, wait_for
from kv_backend_celery.backend import KVBackend, start_chord_recovery
from kv_backend_celery.chord_recovery import ChordRecovery
from resp_helpers import start_redis_server

from kv_backend import DB

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]

HERE = os.path.dirname(os.path.abspath(__file__))


def make_app(url: str, **conf) -> Celery:
    return celery_helpers.make_app(url, "kvb-recovery9", **conf)


def _backend(store_path: str) -> KVBackend:
    # A short join timeout makes the claim on a completed chord lapse quickly.
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05).backend
    backend.chord_claim_min = 0.0
    return backend


def _stuck(backend: KVBackend, monkeypatch, sent: list | None = None):
    """A chord whose last part was counted by a process that died before sending the callback."""
    gid, ids, body, sent = make_chord(backend, monkeypatch, sent=sent)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    backend.mark_as_done(ids[-1], 1)
    key = backend.get_key_for_chord(gid)
    assert backend._count_part(key, gid, ids[-1], 60, b"lost", dict(body)) == 0
    return gid, ids, body, sent


def _lapse(backend: KVBackend) -> None:
    time.sleep(backend._chord_claim_ttl() + 0.05)  # the dead process's claim lapses


def _left(backend: KVBackend, gid: str) -> list[bytes]:
    """Every key the chord still has (counter, claim, markers, stored callback, saved group, listing)."""
    db = backend.db
    keys = [*db.keys(prefix=backend.get_key_for_chord(gid)), *db.keys(prefix=backend.get_key_for_group(gid))]
    if gid in backend._firing(db):
        keys.append(backend._firing_key())
    return keys


# ------------------------------------------------------------------ states


def test_stuck_chord_is_sent_once_by_the_recovery(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, ids, body, sent = _stuck(backend, monkeypatch)
    assert backend.recover_chords() == 0  # the sender's claim still holds: it may be alive
    assert sent == []
    _lapse(backend)
    assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []
    assert backend.recover_chords() == 0
    for i in ids:  # late copies of the parts neither send it again nor leave anything
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []


@pytest.mark.parametrize("state", ["SUCCESS", "FAILURE"])
def test_stuck_chord_whose_callback_finished_is_only_cleared(store_path, monkeypatch, state):
    # The sender was killed after the broker took the callback, before clearing the chord.
    backend = _backend(store_path)
    gid, _, body, sent = _stuck(backend, monkeypatch)
    if state == "SUCCESS":
        backend.mark_as_done(body.id, 3)
    else:
        backend.mark_as_failure(body.id, RuntimeError("the chord's error"))
    _lapse(backend)
    assert backend.recover_chords() == 1
    assert sent == []
    assert backend.get_task_meta(body.id)["status"] == state
    assert _left(backend, gid) == []


def test_part_delivered_again_while_the_lost_claim_holds_leaves_it_to_the_recovery(store_path, monkeypatch):
    # A redelivered part that finds the dead sender's claim still valid returns ("counted
    # already"); nothing else may come, and the chord used to stay unfired.
    backend = _backend(store_path)
    backend.chord_claim_min = 0.3
    gid, ids, body, sent = _stuck(backend, monkeypatch)
    finish_part(backend, gid, ids[-1], body)
    assert sent == []
    _lapse(backend)
    assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []


def test_normal_chord_and_lost_group_leave_no_recovery_entry(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids:
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []
    assert backend.db.get(backend._firing_key()) is None
    # A chord whose saved group was lost ends with a ChordError on its callback, and is cleared too.
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    backend.delete(backend.get_key_for_group(gid))  # lost, not GroupResult.delete()
    for i in ids:
        finish_part(backend, gid, i, body)
    assert backend.get_task_meta(body.id)["status"] == "FAILURE"
    assert not [k for k in _left(backend, gid) if b".part." not in k]  # markers expire with the chord
    assert backend.recover_chords() == 0


def test_expired_chord_is_dropped_from_the_recovery_list(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, _, _, sent = _stuck(backend, monkeypatch)
    backend.delete(backend.get_key_for_chord(gid))  # result_chord_expires ended: the counter and
    backend.delete(backend._size_key(gid))  # the size expire together (the callback may outlive them)
    _lapse(backend)
    assert backend.recover_chords() == 0
    assert sent == []
    assert backend._firing(backend.db) == []
    assert backend.db.get(backend._callback_key(gid)) is None


def test_callback_the_result_serializer_cannot_encode_is_left_to_a_redelivered_part(store_path, monkeypatch):
    # Nothing to recover it with: the chord still fires normally, and a part delivered
    # again after the lost sender's claim lapsed still sends it.
    backend = _backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    body.args = (object(),)  # pickled in the message, not encodable as json
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    backend.mark_as_done(ids[-1], 1)
    key = backend.get_key_for_chord(gid)
    assert backend._count_part(key, gid, ids[-1], 60, b"lost", dict(body)) == 0
    assert backend._firing(backend.db) == []
    _lapse(backend)
    assert backend.recover_chords() == 0
    finish_part(backend, gid, ids[0], body)
    assert len(sent) == 1
    assert _left(backend, gid) == []


def test_chord_recovered_by_several_processes_at_once_is_sent_once(store_path, monkeypatch):
    backend = _backend(store_path)
    sent_key = b"test-callbacks-sent"
    gid, _, _, _ = _stuck(backend, monkeypatch, sent=CountingList(backend, sent_key))
    _lapse(backend)
    r, w = os.pipe()
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                os.close(w)
                os.read(r, 1)  # all start together
                for _ in range(20):
                    backend.recover_chords()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(r)
    os.write(w, b"go!!")
    os.close(w)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert backend.db.get(sent_key) == b"1"
    assert _left(backend, gid) == []


def test_recovery_thread_finishes_a_stuck_chord(store_path, monkeypatch):
    # What a worker process starts: a thread that looks at once, then every interval.
    backend = _backend(store_path)
    sent_key = b"test-callbacks-sent"
    gid, _, _, _ = _stuck(backend, monkeypatch, sent=CountingList(backend, sent_key))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: a daemon thread must not outlive the test
        code = 1
        try:
            KVBackend.chord_recovery_interval = 0.02
            backend.app.conf.result_chord_join_timeout = 0.05
            KVBackend.chord_claim_min = 0.0
            assert start_chord_recovery(backend.app)
            assert not start_chord_recovery(backend.app)  # one thread per process
            deadline = time.monotonic() + 10
            while backend.db.get(sent_key) is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)  # a second send would show now
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.db.get(sent_key) == b"1"
    assert _left(backend, gid) == []


# ------------------------------------------------------- with real workers


@pytest.fixture(scope="module")
def kill_env(tmp_path_factory):
    """A redis-server broker and a prefork worker whose pool processes die sending tagged callbacks."""
    base = tmp_path_factory.mktemp("recovery9")
    redis_proc, port = start_redis_server(str(base))
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"]])
    env.update(
        KVB_TEST_BROKER=f"redis://127.0.0.1:{port}/0",
        KVB_TEST_BACKEND=f"kvb://{base / 'results'}",
        KVB_TEST_SIDE=str(base / "side"),
    )
    log = str(base / "worker.log")
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "kvb_chord_kill_app", "worker"),
            *("-P", "prefork", "-c", "2", "-l", "info", "--logfile", log),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env=env,
        cwd=str(base),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    app = Celery(
        "kvb-recovery9-client",
        broker=env["KVB_TEST_BROKER"],
        backend=env["KVB_TEST_BACKEND"],
        set_as_current=False,
    )
    app.conf.update(broker_connection_retry_on_startup=True)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5, limit=1):
            assert worker.poll() is None, f"the worker exited; see {log}"
            assert time.monotonic() < deadline, f"the worker did not answer; see {log}"
        yield app, DB(env["KVB_TEST_SIDE"]), log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
        redis_proc.terminate()
        redis_proc.wait(5)


@pytest.mark.parametrize("when", ["before", "after"])
# Sending a task finalizes the app, which then takes in the shared tasks other tests declared.
@pytest.mark.filterwarnings("ignore:Task name .* is already registered")
def test_chord_fires_once_when_the_pool_process_sending_its_callback_is_killed(kill_env, when):
    # The pool process that completed the chord is SIGKILLed as it sends the callback
    # (before the broker has it, or after, before it clears the chord). Its part is
    # acknowledged (Celery 5.7: it succeeded before the worker was lost), so no part comes
    # again: the chord never fired. Another pool process now sends it, once.
    app, side, _ = kill_env
    tag = f"{when}-{uuid.uuid4()}"
    header = [app.signature("kvb_chord_kill_app.part", args=(i,)) for i in range(4)]
    r = chord(header)(app.signature("kvb_chord_kill_app.collect", args=(tag, when)))
    assert r.get(timeout=30) == {"sum": 6, "runs": 1}
    # Each send passes the hook: the killed one, then (if the callback never left) the recovery's.
    # ("after" counts once the send returns, which may be after the callback has run: waited for.)
    killed = f"killed-{tag}".encode()
    wait_for(lambda: side.get(killed) is not None, 15, "the hook's count of the killed send")
    assert side.get(killed) == (b"2" if when == "before" else b"1")
    backend = app.backend
    gid = r.parent.id
    deadline = time.monotonic() + 15  # the chord is cleared once the dead sender's claim lapses
    while _left(backend, gid):
        assert time.monotonic() < deadline, _left(backend, gid)
        time.sleep(0.05)
    time.sleep(0.5)  # several recovery intervals: a second send would show now
    assert side.get(f"runs-{tag}".encode()) == b"1"
    assert side.get(f"killed-{tag}".encode()) == (b"2" if when == "before" else b"1")


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_worker_ready_starts_the_recovery_only_where_tasks_run(store_path, pool):
    # A prefork worker's pool children look for lost chords (worker_process_init); its main
    # process must not run a thread that could hold a lock while the pool forks a child.
    from types import SimpleNamespace

    from celery.concurrency.prefork import TaskPool as PreforkPool
    from celery.concurrency.solo import TaskPool as SoloPool
    from kv_backend_celery import chord_recovery as module

    app = make_app(f"kvb://{store_path}")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: a daemon thread must not outlive the test
        code = 1
        try:
            cls = PreforkPool if pool == "prefork" else SoloPool
            module._recover_chords_in_worker(sender=SimpleNamespace(app=app, pool=object.__new__(cls)))
            threads = [t for t in threading.enumerate() if t.name == "kvb-chord-recovery"]
            assert len(threads) == (0 if pool == "prefork" else 1)
            assert not start_chord_recovery(app)  # and no later start in this process
            request = Context(id="t", group="g", chord={}, hostname="w@h")
            module._start_recovery_late(app, request)
            assert len([t for t in threading.enumerate() if t.name == "kvb-chord-recovery"]) == len(threads)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_recovery_thread_keeps_looking_after_a_failure(store_path):
    # A store or broker error in one look (building the backend, or the look itself) is
    # logged once; the next look still comes.
    app = make_app(f"kvb://{store_path}")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: a daemon thread must not outlive the test
        code = 1
        try:
            looks: list[int] = []
            backend_property = type(app).backend

            def backend(self):
                looks.append(1)  # the first is start_chord_recovery's own check
                if len(looks) == 2:
                    raise OSError("the store is unreachable")
                return backend_property.__get__(self)

            def recover(self):
                if len(looks) == 3:
                    raise OSError("the store is unreachable")
                return 0

            type(app).backend = property(backend)
            KVBackend.recover_chords = recover
            KVBackend.chord_recovery_interval = 0.01
            # (after a failure to build the backend, the thread waits the class's default interval,
            # which it knows without a backend: 2 s)
            ChordRecovery.chord_recovery_interval = 0.01
            assert start_chord_recovery(app)
            deadline = time.monotonic() + 5
            while len(looks) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            code = 0 if len(looks) >= 5 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
