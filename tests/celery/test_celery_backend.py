"""Unit tests of the kvb:// Celery result backend's contract, without a worker."""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import celery_helpers
import pytest
from celery import Celery, states
from celery.app.task import Context
from celery.exceptions import ChordError, ImproperlyConfigured
from celery.exceptions import TimeoutError as CeleryTimeoutError
from helpers import before_expiry, child_env, run_python
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from kv_backend_celery.backend import KVBackend, KVBackendConfigurationError, parse_url

from kv_backend import DB
from kv_backend.errors import (
    KVError,
    NotAnIntegerError,
    NotAStoreError,
    ReadOnlyError,
    StorageError,
)
from kv_backend.files import storage_error


def make_app(url: str, **conf) -> Celery:
    return celery_helpers.make_app(url, "kvb-unit", **conf)


@pytest.fixture
def url(store_path):
    return f"kvb://{store_path}"


@pytest.fixture
def backend(url) -> KVBackend:
    return make_app(url).backend


def tkey(task_id: str) -> bytes:
    return b"celery-task-meta-" + task_id.encode()


# ------------------------------------------------------------------ resolving


def test_url_resolves_through_entry_point_without_import(store_path):
    out = run_python(
        """
        import sys
        from celery import Celery
        app = Celery("proj", broker="memory://", backend=sys.argv[1])
        assert "kv_backend_celery" not in sys.modules
        backend = app.backend
        print(type(backend).__module__, type(backend).__name__, backend.path)
        """,
        f"kvb://{store_path}",
    ).stdout.split()
    assert out == ["kv_backend_celery.backend", "KVBackend", store_path]


def test_result_backend_setting_with_options(store_path):
    app = Celery("proj", broker="memory://", set_as_current=False)
    app.conf.result_backend = f"kvb://{store_path}?sync=always&auto_merge=0.5"
    backend = app.backend
    assert isinstance(backend, KVBackend)
    assert backend.options == {"sync": "always", "auto_merge": 0.5}
    backend.set(b"k", b"v")
    assert backend.db.sync_mode == "always"
    assert backend.db.auto_merge == 0.5


@pytest.mark.parametrize(
    ("url", "path", "options"),
    [
        ("kvb:///var/lib/proj/results", "/var/lib/proj/results", {}),
        ("kvb://localhost/var/lib/r", "/var/lib/r", {}),
        ("kvb:///a/b/../c/", "/a/c", {}),
        ("kvb:///with%20space", "/with space", {}),
        ("kvb:///r?sync=never", "/r", {"sync": "never"}),
        ("kvb:///r?sync=0.25", "/r", {"sync": 0.25}),
        ("kvb:///r?max_file_size=64M", "/r", {"max_file_size": 64 << 20}),
        ("kvb:///r?max_file_size=1048576", "/r", {"max_file_size": 1 << 20}),
        ("kvb:///r?max_file_size=1023G", "/r", {"max_file_size": 1023 << 30}),
        ("kvb:///r?auto_merge=off", "/r", {"auto_merge": None}),
        ("kvb:///r?read_only=yes&auto_merge=0.3", "/r", {"read_only": True, "auto_merge": 0.3}),
    ],
)
def test_parse_url(url, path, options):
    assert parse_url(url) == (path, options)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kvb://relative/path", "must be absolute"),
        ("kvb://", "no absolute directory"),
        ("kvb:///", "not the file system root"),
        ("kvb:///r?colour=red", "unknown option 'colour'"),
        ("kvb:///r?sync=sometimes", "sync must be"),
        ("kvb:///r?sync=-1", "sync must be"),
        ("kvb:///r?auto_merge=2", "auto_merge must be"),
        ("kvb:///r?max_file_size=tiny", "max_file_size must be"),
        ("kvb:///r?max_file_size=100", "at least 4096"),
        ("kvb:///r?max_file_size=1024G", "below 1 TiB"),
        ("kvb:///r?max_file_size=99999999999999G", "below 1 TiB"),
        ("kvb:///r?read_only=maybe", "read_only must be"),
        ("kvb:///r?sync=always&sync=never", "given twice"),
        ("kvb:///r?sync", "cannot parse"),
        ("kvb:///r#frag", "fragment"),
        ("kvb:///r/a%00b", "NUL byte"),
        ("kvb://~/results", "'~' is not expanded"),
        ("kvb:///~/results", "'~' is not expanded"),
        ("kvb://localhost/~/results", "'~' is not expanded"),
        ("kvb://~no-such-user-kvb/r", r"e\.g\. kvb:///var/lib/proj/results"),
        ("redis:///r", "scheme must be kvb"),
        ("", "needs a URL"),
    ],
)
def test_bad_urls_are_improperly_configured(url, message):
    with pytest.raises(ImproperlyConfigured, match=message) as info:
        parse_url(url)
    assert isinstance(info.value, KVError)
    assert isinstance(info.value, KVBackendConfigurationError)


@pytest.mark.parametrize("url", ["kvb://~/proj/results", "kvb:///~/proj/results"])
def test_tilde_url_names_the_absolute_directory_to_write(url, monkeypatch):
    # Following the hint must give the directory that was meant, not a "~" directory at the root.
    monkeypatch.setenv("HOME", "/home/alice")
    with pytest.raises(ImproperlyConfigured, match=r"e\.g\. kvb:///home/alice/proj/results\."):
        parse_url(url)
    assert parse_url("kvb:///srv/~proj/r") == ("/srv/~proj/r", {})  # a "~" deeper down is a plain name


def test_bad_url_fails_when_the_backend_is_built():
    app = Celery("proj", broker="memory://", backend="kvb://relative/results", set_as_current=False)
    with pytest.raises(ImproperlyConfigured, match="relative paths are refused"):
        app.backend  # noqa: B018


# ------------------------------------------------------------ open and share


def test_store_opens_lazily(url, store_path):
    backend = make_app(url).backend
    assert not os.path.exists(store_path)
    backend.store_result("t1", 1, states.SUCCESS)
    assert os.path.isdir(store_path)


def test_backends_of_one_process_share_the_store(url):
    a, b = make_app(url).backend, make_app(url).backend
    assert a is not b
    assert a.db is b.db


def test_closed_store_is_reopened(backend):
    backend.store_result("t1", 1, states.SUCCESS)
    backend.db.close()
    assert backend.get_task_meta("t1", cache=False)["result"] == 1


def test_path_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a store")
    backend = make_app(f"kvb://{path}").backend
    with pytest.raises(NotAStoreError):
        backend.store_result("t1", 1, states.SUCCESS)


@pytest.mark.parametrize("under", ["file", "missing-store?read_only=1", "plain-dir"])
def test_always_retry_raises_configuration_errors_at_once(tmp_path, under):
    # Celery retries without limit by default: a path that can never work must fail at once.
    (tmp_path / "file").write_text("not a store")
    (tmp_path / "plain-dir").mkdir()
    (tmp_path / "plain-dir" / "notes.txt").write_text("not a store")
    url = {
        "file": f"kvb://{tmp_path}/file/results",  # a parent that is a file: ENOTDIR
        "missing-store?read_only=1": f"kvb://{tmp_path}/missing?read_only=1",
        "plain-dir": f"kvb://{tmp_path}/plain-dir",
    }[under]
    backend = make_app(url, result_backend_always_retry=True, result_backend_max_retries=3).backend
    sleeps = []
    backend._sleep = sleeps.append
    with pytest.raises(StorageError):
        backend.store_result("t1", 1, states.SUCCESS)
    if under.endswith("read_only=1"):  # a read-only client reads a missing store as no results yet
        assert backend.get_task_meta("t1")["status"] == states.PENDING
    else:
        with pytest.raises(StorageError):
            backend.get_task_meta("t1")
    assert sleeps == []


def test_always_retry_retries_a_full_disk(backend, monkeypatch):
    backend.app.conf.result_backend_always_retry = True
    backend.always_retry = True
    db, put, failures = backend.db, backend.db.put, [OSError(errno.ENOSPC, "No space left on device")]

    def flaky_put(*args, **kwargs):
        if failures:
            raise storage_error(failures.pop(), "cannot append")
        return put(*args, **kwargs)

    monkeypatch.setattr(db, "put", flaky_put)
    sleeps = []
    backend._sleep = sleeps.append
    backend.store_result("t1", 1, states.SUCCESS)
    assert len(sleeps) == 1
    assert backend.get_task_meta("t1")["result"] == 1


def test_missing_parent_directories_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "results"
    backend = make_app(f"kvb://{path}").backend
    backend.store_result("t1", 1, states.SUCCESS)
    assert backend.get_task_meta("t1")["result"] == 1


def test_read_only_client(url, store_path):
    # No worker created the store yet: no result is stored yet (test_read_only_missing17.py).
    assert make_app(url + "?read_only=1").backend.get_task_meta("t1")["status"] == states.PENDING
    writer = make_app(url).backend
    writer.store_result("t1", {"a": 1}, states.SUCCESS)
    reader = make_app(url + "?read_only=1").backend
    assert reader.get_task_meta("t1")["result"] == {"a": 1}
    with pytest.raises(ReadOnlyError):
        reader.store_result("t2", 1, states.SUCCESS)
    assert reader.cleanup() is None


# -------------------------------------------------------------- the contract


def test_key_value_primitives(backend):
    backend.set("celery-task-meta-x", "text value")
    assert backend.get(b"celery-task-meta-x") == b"text value"
    assert backend.mget([b"celery-task-meta-x", "missing"]) == [b"text value", None]
    assert backend.incr(b"counter") == 1
    assert backend.incr("counter") == 2
    assert backend.incr("counter", -5) == -3
    backend.delete(b"counter")
    backend.delete(b"counter")  # missing is fine
    assert backend.get(b"counter") is None
    with pytest.raises(NotAnIntegerError):
        backend.incr(b"celery-task-meta-x")
    assert backend.expire(b"celery-task-meta-x", 100) is True
    assert 0 < backend.db.ttl(b"celery-task-meta-x") <= 100
    assert backend.expire(b"celery-task-meta-x", 0) is True  # 0 = keep forever, as Celery means it
    assert backend.db.ttl(b"celery-task-meta-x") is None
    assert backend.expire(b"nope", 10) is False
    with pytest.raises(TypeError):
        backend.get(12345)


def test_store_result_layout_and_ttl(backend):
    backend.store_result("t1", {"answer": 42}, states.SUCCESS)
    raw = backend.db.get(tkey("t1"))
    meta = json.loads(raw)
    assert meta["status"] == "SUCCESS" and meta["result"] == {"answer": 42} and meta["task_id"] == "t1"
    ttl = backend.db.ttl(tkey("t1"))
    assert 86000 < ttl <= 86400  # result_expires defaults to one day
    assert backend.get_state("t1") == states.SUCCESS
    assert backend.get_result("t1") == {"answer": 42}
    assert backend.get_task_meta("unknown")["status"] == states.PENDING


@pytest.mark.parametrize("expires", [None, 0])
def test_result_expires_off_keeps_results(store_path, expires):
    backend = make_app(f"kvb://{store_path}", result_expires=expires).backend
    backend.store_result("t1", 1, states.SUCCESS)
    assert backend.db.ttl(tkey("t1")) is None


def test_result_expires_from_the_environment_is_a_number(store_path):
    # A setting read from an environment variable is a string: Celery's redis backend takes it too.
    backend = make_app(f"kvb://{store_path}", result_expires="3600", result_failure_expires="60").backend
    backend.store_result("t1", 1, states.SUCCESS)
    backend.store_result("t2", None, states.FAILURE)
    assert 3500 < backend.db.ttl(tkey("t1")) <= 3600
    assert 0 < backend.db.ttl(tkey("t2")) <= 60


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("result_expires", float("inf")),
        ("result_expires", float("nan")),
        ("result_expires", "one day"),
        ("result_expires", True),
        ("result_failure_expires", float("inf")),
        ("result_failure_expires", "soon"),
    ],
)
def test_bad_result_lifetime_fails_when_the_backend_is_built(store_path, setting, value):
    app = make_app(f"kvb://{store_path}", **{setting: value})
    with pytest.raises(ImproperlyConfigured, match=f"{setting} must be a finite number of seconds"):
        app.backend  # noqa: B018


def test_results_expire(store_path):
    def store(lifetime: float) -> tuple[object, str]:
        backend = make_app(f"kvb://{store_path}", result_expires=lifetime).backend
        backend.store_result("t1", 1, states.SUCCESS)
        return backend, backend.get_task_meta("t1", cache=False)["status"]

    (backend, status), expired_by = before_expiry((0.2, 1, 5), store)
    assert status == states.SUCCESS
    time.sleep(max(expired_by - time.time(), 0) + 0.05)
    assert backend.get_task_meta("t1", cache=False)["status"] == states.PENDING
    assert tkey("t1") not in backend.db


def test_failure_with_traceback_and_failure_expires(store_path):
    backend = make_app(f"kvb://{store_path}", result_failure_expires=60).backend
    try:
        raise KeyError("lost")
    except KeyError as exc:
        backend.mark_as_failure("t1", exc, traceback="Traceback ... KeyError: 'lost'")
    meta = backend.get_task_meta("t1")
    assert meta["status"] == states.FAILURE
    assert isinstance(meta["result"], KeyError)
    assert backend.get_traceback("t1") == "Traceback ... KeyError: 'lost'"
    assert 0 < backend.db.ttl(tkey("t1")) <= 60


def test_success_is_never_overwritten(backend):
    backend.mark_as_done("t1", 5)
    backend.mark_as_started("t1")
    backend.mark_as_retry("t1", RuntimeError("late"))
    assert backend.get_task_meta("t1", cache=False)["result"] == 5


def test_finished_state_is_not_replaced_by_an_unfinished_one(backend):
    # a retried task: attempt n stores RETRY only after attempt n+1 (run by another
    # pool process) has already failed for good
    backend.mark_as_failure("t2", RuntimeError("attempt 5 failed"))
    backend.mark_as_retry("t2", RuntimeError("attempt 3 failed"))
    backend.mark_as_started("t2")
    meta = backend.get_task_meta("t2", cache=False)
    assert meta["status"] == states.FAILURE and "attempt 5" in str(meta["result"])
    backend.mark_as_done("t2", 7)  # a new run under the same id may still finish it
    assert backend.get_task_meta("t2", cache=False)["result"] == 7


def test_forget(backend):
    backend.mark_as_done("t1", 5)
    assert backend.get_task_meta("t1")["result"] == 5
    backend.forget("t1")
    assert tkey("t1") not in backend.db
    assert backend.get_task_meta("t1")["status"] == states.PENDING


def test_result_extended(backend):
    request = Context(
        id="t1",
        task="proj.add",
        args=[1, 2],
        kwargs={"z": 3},
        hostname="w1@host",
        retries=2,
        delivery_info={"routing_key": "q1"},
    )
    backend.store_result("t1", 3, states.SUCCESS, request=request)
    result = backend.app.AsyncResult("t1")
    assert result.get(timeout=5) == 3
    assert (result.name, result.args, result.kwargs) == ("proj.add", [1, 2], {"z": 3})
    assert (result.worker, result.retries, result.queue) == ("w1@host", 2, "q1")


def test_groups(backend):
    app = backend.app
    results = [app.AsyncResult(f"g-{i}") for i in range(3)]
    for i, r in enumerate(results):
        backend.mark_as_done(r.id, i * 10)
    group = app.GroupResult("g1", results)
    backend.save_group("g1", group)
    assert 86000 < backend.db.ttl(b"celery-taskset-meta-g1") <= 86400
    restored = backend.restore_group("g1", cache=False)
    assert [r.id for r in restored.results] == ["g-0", "g-1", "g-2"]
    assert restored.join_native(timeout=5) == [0, 10, 20]
    assert restored.get(timeout=5) == [0, 10, 20]
    backend.delete_group("g1")
    assert backend.restore_group("g1", cache=False) is None


# ---------------------------------------------------------------- waiting


def test_wait_for_wakes_on_a_write_from_another_process(backend):
    backend.mark_as_done("warm", 0)  # open the store before forking

    def late_write():
        time.sleep(0.3)
        backend.mark_as_done("late", {"from": "child"})
        return 0

    pid, r = _fork(late_write)
    meta = backend.wait_for("late", timeout=60)
    assert meta["result"] == {"from": "child"}
    assert backend.app.AsyncResult("late").get(timeout=60) == {"from": "child"}
    assert _join(pid, r) == 0


def test_wait_for_timeout_and_on_interval(backend):
    ticks = []
    with pytest.raises(CeleryTimeoutError):
        backend.wait_for("never", timeout=0.2, interval=0.05, on_interval=lambda: ticks.append(1))
    assert len(ticks) >= 1
    with pytest.raises(CeleryTimeoutError):
        backend.wait_for("never", timeout=0)
    with pytest.raises(CeleryTimeoutError):
        backend.app.AsyncResult("never").get(timeout=0.05)


def test_wait_for_does_not_spin_on_unrelated_writes(backend):
    # Writes to other keys wake the waiter, which checks again and keeps waiting.
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            backend.set(f"noise-{i % 5}", b"x")
            i += 1
            time.sleep(0.005)
        backend.mark_as_done("target", "done")

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.1)
        stop.set()
        assert backend.wait_for("target", timeout=30)["result"] == "done"
    finally:
        stop.set()
        t.join()


def test_get_many(backend):
    for i in range(3):
        backend.mark_as_done(f"m{i}", i)
    threading.Timer(0.2, backend.mark_as_done, ("m3", 3)).start()
    got = dict(backend.get_many([f"m{i}" for i in range(4)], timeout=30))
    assert {k: v["result"] for k, v in got.items()} == {"m0": 0, "m1": 1, "m2": 2, "m3": 3}
    # Cached successes come back without reading the store.
    assert dict(backend.get_many(["m0"]))["m0"]["result"] == 0
    assert list(backend.get_many(["none"], max_iterations=1)) == []
    with pytest.raises(CeleryTimeoutError):
        list(backend.get_many(["none"], timeout=0.1))


# ------------------------------------------------------- processes and pickling


def test_pickled_backend_reopens(backend):
    backend.mark_as_done("t1", "hello")
    copy = pickle.loads(pickle.dumps(backend))
    assert isinstance(copy, KVBackend)
    assert copy._db is None
    assert (copy.url, copy.path, copy.expires) == (backend.url, backend.path, backend.expires)
    assert copy.get_task_meta("t1")["result"] == "hello"


def test_pickled_backend_works_in_another_process(backend):
    backend.mark_as_done("parent", "from parent")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys\n"
            "b = pickle.loads(sys.stdin.buffer.read())\n"
            "print(b.get_task_meta('parent')['result'])\n"
            "b.mark_as_done('child', 'from child')\n",
        ],
        input=pickle.dumps(backend),
        env=child_env(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "from parent"
    assert backend.wait_for("child", timeout=30)["result"] == "from child"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_backend_keeps_working_after_fork(backend):
    backend.mark_as_done("before", 1)  # the store is open in the parent
    pids = []
    for n in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                assert backend.get_task_meta("before", cache=False)["result"] == 1
                backend.mark_as_done(f"child-{n}", n)
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert [backend.get_task_meta(f"child-{n}")["result"] for n in range(3)] == [0, 1, 2]


def _fork(fn) -> tuple[int, int]:
    """Run ``fn()`` in a forked child; return (pid, read end of a pipe carrying its int result)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.write(w, str(fn()).encode())
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(w)
    return pid, r


def _join(pid: int, r: int) -> int:
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return int(out)


def test_chord_counter_reaches_zero_exactly_once_across_processes(backend):
    parts, procs = 400, 4
    gid = str(uuid.uuid4())
    key = backend.get_key_for_chord(gid)
    children = [
        _fork(lambda: sum(1 for _ in range(parts // procs) if backend.incr(key) == 0)) for _ in range(procs)
    ]
    # The size may arrive while parts are counting, or (on a slow machine) after
    # all of them: then the size itself brings the counter to zero. Either way
    # zero is reached exactly once, and no increment is lost.
    size_hits_zero = backend.incr(key, -parts) == 0  # the incr set_chord_size makes
    assert sum(_join(pid, r) for pid, r in children) + size_hits_zero == 1
    assert int(backend.get(key)) == 0


@pytest.fixture
def chord_setup(backend, monkeypatch):
    return _start_chord(backend, monkeypatch)


def _start_chord(backend, monkeypatch):
    """Apply a 5-part chord on ``backend``; callbacks it sends are collected instead of queued."""
    app = backend.app

    @app.task(name="unit.tsum")
    def tsum(values):  # pragma: no cover - never run, only signed
        return sum(values)

    sent = []
    from celery.canvas import Signature

    monkeypatch.setattr(Signature, "delay", lambda self, *args, **kw: sent.append(args))
    gid = str(uuid.uuid4())
    ids = [f"{gid}-{i}" for i in range(5)]
    body = tsum.s()
    body.freeze()
    backend.apply_chord((gid, [app.AsyncResult(i) for i in ids]), body)
    return backend, gid, ids, body, sent


def _part(backend, gid, task_id, body):
    request = Context(id=task_id, group=gid, chord=dict(body))
    backend.on_chord_part_return(request, states.SUCCESS, None)


def test_chord_fires_once_whatever_the_order(chord_setup):
    backend, gid, ids, body, sent = chord_setup
    # Three parts finish before the client announces the size, two after.
    for i in ids[:3]:
        backend.mark_as_done(i, 1)
        _part(backend, gid, i, body)
    backend.set_chord_size(gid, len(ids))
    assert sent == []
    for i in ids[3:]:
        backend.mark_as_done(i, 1)
        _part(backend, gid, i, body)
    assert sent == [([1, 1, 1, 1, 1],)]
    # A late duplicate does not fire again; the chord's keys are gone.
    _part(backend, gid, ids[0], body)
    assert len(sent) == 1
    assert backend.restore_group(gid, cache=False) is None


def test_chord_counter_lives_for_result_chord_expires_where_celery_has_it(store_path, monkeypatch):
    # Celery 5.7+ has result_chord_expires; before it (make test-oldest runs Celery 5.3)
    # the chord's keys live for result_expires, and nothing may depend on the newer API.
    backend = make_app(f"kvb://{store_path}", result_expires=6000, result_chord_expires=100).backend
    backend, gid, ids, body, sent = _start_chord(backend, monkeypatch)
    backend.set_chord_size(gid, len(ids))
    backend.mark_as_done(ids[0], 1)
    _part(backend, gid, ids[0], body)
    counter_ttl = backend.db.ttl(backend.get_key_for_chord(gid))
    if hasattr(backend, "chord_expires"):
        assert 0 < counter_ttl <= 100
    else:
        assert 100 < counter_ttl <= 6000
    for i in ids[1:]:
        backend.mark_as_done(i, 1)
        _part(backend, gid, i, body)
    assert sent == [([1, 1, 1, 1, 1],)]


def test_chord_counts_a_redelivered_part_once(chord_setup):
    backend, gid, ids, body, sent = chord_setup
    backend.set_chord_size(gid, len(ids))
    for i in ids[:-1]:
        backend.mark_as_done(i, 2)
        _part(backend, gid, i, body)
        _part(backend, gid, i, body)  # the same task reported twice (e.g. redelivered)
    assert sent == []
    backend.mark_as_done(ids[-1], 2)
    _part(backend, gid, ids[-1], body)
    assert sent == [([2, 2, 2, 2, 2],)]
    # Nothing of the chord is left behind.
    assert list(backend.db.keys(prefix=b"chord-unlock-" + gid.encode())) == []


def _chord_with_a_failed_part(backend, gid, ids, body, sent, failing: int, message: str) -> dict:
    """Run every part of the chord, part ``failing`` raising ValueError(message); the callback's meta."""
    backend.set_chord_size(gid, len(ids))
    for n, i in enumerate(ids):
        if n == failing:
            backend.mark_as_failure(i, ValueError(message))
        else:
            backend.mark_as_done(i, 1)
        _part(backend, gid, i, body)
    assert sent == []
    meta = backend.get_task_meta(body.id)
    assert meta["status"] == states.FAILURE
    assert isinstance(meta["result"], ChordError)
    return meta


def test_chord_failure_reaches_the_callback(chord_setup):
    meta = _chord_with_a_failed_part(*chord_setup, failing=2, message="part broke")
    assert "part broke" in str(meta["result"])


def test_chord_failure_inside_a_nested_header_group_reaches_the_callback(chord_setup):
    # A header chain that ends in a group leaves a GroupResult (no .state) among the chord's results.
    backend, gid, ids, body, sent = chord_setup
    app = backend.app
    inner = app.GroupResult(f"{gid}-inner", [app.AsyncResult(i) for i in ids[3:]])
    header = app.GroupResult(gid, [app.AsyncResult(i) for i in ids[:3]] + [inner])
    header.save(backend=backend)
    meta = _chord_with_a_failed_part(backend, gid, ids, body, sent, failing=4, message="nested part broke")
    assert f"Dependency {ids[4]} raised ValueError('nested part broke')" in str(meta["result"])


def test_chord_with_lost_group(chord_setup):
    backend, gid, ids, body, sent = chord_setup
    backend.set_chord_size(gid, len(ids))
    # A lost record (expired, or dropped from the disk), not GroupResult.delete(): the chord keeps
    # a group deleted while it runs (tests/celery/test_group_delete_running18.py).
    backend.delete(backend.get_key_for_group(gid))
    for i in ids:
        backend.mark_as_done(i, 1)
        _part(backend, gid, i, body)
    assert sent == []
    assert "no longer exists" in str(backend.get_task_meta(body.id)["result"])


# ------------------------------------------------------------------ cleanup


def test_cleanup_merges_the_store(store_path):
    pytest.importorskip("kv_backend.merge", reason="merge (#3) is not in this checkout yet")
    backend = make_app(f"kvb://{store_path}?max_file_size=4096", result_expires=3600).backend
    for i in range(200):
        backend.mark_as_done(f"t{i}", "x" * 100)
    for i in range(150):
        backend.forget(f"t{i}")
    before = backend.db.stats()
    backend.cleanup()
    after = backend.db.stats()
    assert after["dead_bytes"] < before["dead_bytes"]
    assert [backend.get_task_meta(f"t{i}")["result"] for i in range(150, 200)] == ["x" * 100] * 50
    report = backend.cleanup()  # (the merge's report, as docs/celery.md says)
    assert report is not None and report.files_before >= 1


def test_cleanup_through_a_read_only_client_merges_nothing_and_returns_none(store_path):
    writer = make_app(f"kvb://{store_path}?max_file_size=4096").backend
    for i in range(100):
        writer.mark_as_done(f"t{i}", "x" * 100)
    for i in range(80):
        writer.forget(f"t{i}")
    before = writer.db.stats()["dead_bytes"]
    reader = make_app(f"kvb://{store_path}?read_only=1").backend
    assert reader.cleanup() is None  # (a read-only client may not write the store: no merge, no error)
    assert writer.db.stats()["dead_bytes"] == before
    assert reader.get_task_meta("t99")["result"] == "x" * 100


# --------------------------------------------------------------- crash safety


@pytest.mark.parametrize("run", range(3))
def test_results_acknowledged_before_sigkill_survive(url, run):
    rng = random.Random(run)
    backend = make_app(url).backend
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: store results until killed
        os.close(r)
        i = 0
        while True:
            backend.mark_as_done(f"k{i}", {"n": i, "pad": "p" * (i % 300)})
            os.write(w, f"{i}\n".encode())  # acknowledged: written only after the store returned
            i += 1
    os.close(w)
    with os.fdopen(r, "rb", buffering=0) as pipe:
        assert pipe.read(2) == b"0\n"  # the writer is up and storing
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        out = b"0\n" + pipe.read()
    acknowledged = [int(line) for line in out.split()]
    reader = pickle.loads(pickle.dumps(backend))  # a fresh handle, as after a restart
    reader_db = DB(reader.path)
    try:
        for i in acknowledged:
            meta = json.loads(reader_db.get(tkey(f"k{i}")))
            assert meta["status"] == states.SUCCESS, i
            assert meta["result"]["n"] == i
    finally:
        reader_db.close()
    # The store keeps working after the crash.
    backend.mark_as_done("after", 1)
    assert backend.get_task_meta("after")["result"] == 1


@pytest.mark.parametrize("run", range(3))
def test_chord_count_and_marker_survive_sigkill_together(backend, run):
    rng = random.Random(100 + run)
    gid = str(uuid.uuid4())
    key = backend.get_key_for_chord(gid)
    backend.set_chord_size(gid, 1_000_000)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: count parts until killed
        os.close(r)
        i = 0
        while True:
            backend._count_part(key, gid, f"part-{i}", 3600)
            os.write(w, f"{i}\n".encode())
            i += 1
    os.close(w)
    with os.fdopen(r, "rb", buffering=0) as pipe:
        assert pipe.read(2) == b"0\n"
        time.sleep(rng.uniform(0.02, 0.2))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        acknowledged = len((b"0\n" + pipe.read()).split())
    db = DB(backend.path)
    try:
        markers = sum(1 for _ in db.keys(prefix=key + b".part."))
        counted = int(db.get(key)) + 1_000_000
    finally:
        db.close()
    # Every acknowledged part is counted, at most one more was, and never a count without its marker.
    assert counted == markers
    assert acknowledged <= counted <= acknowledged + 1


# -------------------------------------------------------- model-based test


class BackendMachine(RuleBasedStateMachine):
    """The backend's key-value primitives against a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kvb-celery-hyp-{uuid.uuid4().hex}")
        self.backend = make_app(f"kvb://{self.path}").backend
        self.model: dict[bytes, bytes] = {}

    keys = st.sampled_from([b"celery-task-meta-a", b"celery-task-meta-b", b"chord-unlock-c", b"x"])

    values = st.one_of(
        st.integers(-1000, 1000).map(lambda i: str(i).encode()),
        st.binary(min_size=1, max_size=30).filter(lambda b: not any(48 <= c <= 57 for c in b)),
    )

    @rule(key=keys, value=values)
    def set(self, key, value):
        self.backend.set(key, value)
        self.model[key] = value

    @rule(key=keys)
    def delete(self, key):
        self.backend.delete(key)
        self.model.pop(key, None)

    @rule(key=keys, delta=st.integers(-5, 5))
    def incr(self, key, delta):
        old = self.model.get(key, b"0")
        if old.lstrip(b"-").isdigit():
            expected = int(old) + delta
            assert self.backend.incr(key, delta) == expected
            self.model[key] = str(expected).encode()
        else:
            with pytest.raises(NotAnIntegerError):
                self.backend.incr(key, delta)

    @rule(key=keys)
    def persist(self, key):
        assert self.backend.expire(key, None) == (key in self.model)

    @invariant()
    def same(self):
        keys = sorted(self.model)
        assert self.backend.mget(keys) == [self.model[k] for k in keys]

    def teardown(self):
        import shutil

        self.backend.close()
        shutil.rmtree(self.path, ignore_errors=True)


TestBackendMachine = BackendMachine.TestCase
TestBackendMachine.settings = settings(max_examples=15, stateful_step_count=15, deadline=None)


def test_open_the_same_store_as_a_plain_db(backend, store_path):
    backend.mark_as_done("t1", 1)
    with DB(store_path) as db:
        assert json.loads(db[tkey("t1")])["result"] == 1


def test_example_project_uses_the_kvb_backend(tmp_path):
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "example_project")
    if not os.path.isdir(os.path.join(example, "mysite")):
        pytest.skip("no example project in this checkout")
    env = child_env()
    env.update(
        PYTHONPATH=os.pathsep.join([example, env["PYTHONPATH"]]),
        DJANGO_SETTINGS_MODULE="mysite.settings",
        KVB_EXAMPLE_VAR=str(tmp_path),
    )
    code = (
        "import django; django.setup()\n"
        "from mysite import celery_app\n"
        "celery_app.loader.import_default_modules()\n"
        "b = celery_app.backend\n"
        "print(type(b).__name__, b.path, sorted(celery_app.tasks.keys() & {'pages.tasks.word_count'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = ["KVBackend", str(tmp_path / "celery-results"), "['pages.tasks.word_count']"]
    assert proc.stdout.split() == expected
