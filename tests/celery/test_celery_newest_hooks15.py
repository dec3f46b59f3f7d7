"""The hooks Celery 5.5 to 5.7 added or changed in result backends, exercised on kvb://.

Each test runs on every Celery the project supports; where the hook does not exist in the
installed release, the test skips and says which release brought it.
"""

from __future__ import annotations

import errno
import time
import uuid

import celery
import celery_helpers
import pytest
from celery import states
from celery.app.task import Context
from celery.exceptions import ImproperlyConfigured
from celery.exceptions import TimeoutError as CeleryTimeoutError

from kv_backend.files import storage_error

CELERY = tuple(int(part) for part in celery.__version__.split(".")[:2])
needs_57 = pytest.mark.skipif(CELERY < (5, 7), reason="Celery 5.7 brought this hook")


def make_app(url: str, **conf):
    return celery_helpers.make_app(url, "kvb-hooks15", **conf)


@pytest.fixture
def url(store_path):
    return f"kvb://{store_path}"


def raw_result(backend, task_id) -> bytes:
    return backend.db.get(backend.get_key_for_task(task_id))


# ------------------------------------------------------------ result_compression (5.7)


@needs_57
def test_compressed_results_are_readable_by_every_client(url):
    from celery.backends.base import COMPRESSED_PAYLOAD_MAGIC

    writer = make_app(url, result_compression="gzip").backend
    plain = make_app(url).backend  # a client without the setting reads them too
    value = ["page"] * 500
    writer.mark_as_done("t1", value)
    raw = raw_result(writer, "t1")
    assert raw.startswith(COMPRESSED_PAYLOAD_MAGIC)
    assert len(raw) < len(plain.encode(value))
    assert plain.app.AsyncResult("t1").get(timeout=5) == value
    assert dict(plain.get_many(["t1"], timeout=5))["t1"]["result"] == value
    # and the other way round: results stored before the setting was turned on
    plain.mark_as_done("t2", 2)
    assert not raw_result(plain, "t2").startswith(COMPRESSED_PAYLOAD_MAGIC)
    assert writer.app.AsyncResult("t2").get(timeout=5) == 2


@needs_57
def test_a_compressed_finished_state_is_still_kept_from_late_updates(url):
    # The check that a SUCCESS stays and a FAILURE is not replaced by a RETRY reads the
    # stored state: it must see through the compressed payload.
    backend = make_app(url, result_compression="zlib").backend
    backend.mark_as_done("t1", 5)
    backend.mark_as_started("t1")
    backend.mark_as_retry("t1", RuntimeError("late"))
    assert backend.get_task_meta("t1", cache=False)["result"] == 5
    backend.mark_as_failure("t2", RuntimeError("last attempt"))
    backend.mark_as_retry("t2", RuntimeError("an earlier attempt"))
    meta = backend.get_task_meta("t2", cache=False)
    assert meta["status"] == states.FAILURE and "last attempt" in str(meta["result"])


@needs_57
def test_a_chord_fires_with_compressed_results(url, monkeypatch):
    from celery.backends.base import COMPRESSED_PAYLOAD_MAGIC

    backend = make_app(url, result_compression="bzip2").backend
    gid, ids, body, sent = celery_helpers.make_chord(backend, monkeypatch, parts=3)
    assert backend.db.get(backend.get_key_for_group(gid)).startswith(COMPRESSED_PAYLOAD_MAGIC)
    for n, task_id in enumerate(ids):
        celery_helpers.finish_part(backend, gid, task_id, body, value=n * 10)
    assert sent == [([0, 10, 20],)]


@needs_57
def test_an_unknown_compression_fails_when_the_backend_is_built(url):
    with pytest.raises(ImproperlyConfigured, match="result_compression"):
        make_app(url, result_compression="rot13").backend  # noqa: B018


# ------------------------------------------------------------ AsyncResult.exists() (5.7)


@needs_57
def test_exists_tells_a_stored_result_from_an_unknown_forgotten_or_expired_one(store_path):
    app = make_app(f"kvb://{store_path}", result_expires=0.3)
    backend = app.backend
    backend.mark_as_started("running")
    backend.mark_as_done("done", 1)
    backend.mark_as_done("forgotten", 1)
    app.AsyncResult("forgotten").forget()
    assert app.AsyncResult("running").exists()
    assert app.AsyncResult("done").exists()
    assert not app.AsyncResult("never-sent").exists()
    assert not app.AsyncResult("forgotten").exists()
    time.sleep(0.4)
    assert not app.AsyncResult("done").exists()  # expired: gone for every reader


# ------------------------------------------------------------ task ids given as UUIDs (5.7)


@needs_57
def test_task_ids_given_as_uuid_objects(url):
    backend = make_app(url).backend
    task_id = uuid.uuid4()
    backend.mark_as_done(task_id, 7)
    assert raw_result(backend, str(task_id)) is not None  # the key of the id's text
    assert backend.app.AsyncResult(str(task_id)).get(timeout=5) == 7
    assert backend.app.AsyncResult(task_id).exists()
    backend.forget(task_id)
    assert raw_result(backend, str(task_id)) is None


# ------------------------------------------- result_backend_always_retry on groups and forget (5.7)


#: The engine call each operation makes, failed once below.
ENGINE_CALL = {"save_group": "put", "restore_group": "get", "delete_group": "delete", "forget": "delete"}


@needs_57
@pytest.mark.parametrize("operation", sorted(ENGINE_CALL))
def test_always_retry_covers_groups_and_forget(url, monkeypatch, operation):
    backend = make_app(url, result_backend_always_retry=True).backend
    app = backend.app
    group = app.GroupResult("g1", [app.AsyncResult("a"), app.AsyncResult("b")])
    backend.save_group("g1", group)
    backend.mark_as_done("t1", 1)
    db = backend.db
    name = ENGINE_CALL[operation]
    original, failures = getattr(db, name), [OSError(errno.EIO, "Input/output error")]

    def flaky(*args, **kwargs):
        if failures:
            raise storage_error(failures.pop(), "cannot read or write")
        return original(*args, **kwargs)

    monkeypatch.setattr(db, name, flaky)
    sleeps, seen = [], []
    monkeypatch.setattr(backend, "_sleep", sleeps.append)
    monkeypatch.setattr(backend, "on_backend_retryable_error", seen.append)
    if operation == "save_group":
        backend.save_group("g2", group)
        assert [r.id for r in backend.restore_group("g2", cache=False).results] == ["a", "b"]
    elif operation == "restore_group":
        assert [r.id for r in backend.restore_group("g1", cache=False).results] == ["a", "b"]
    elif operation == "delete_group":
        backend.delete_group("g1")
        assert backend.restore_group("g1", cache=False) is None
    else:
        backend.forget("t1")
        assert raw_result(backend, "t1") is None
    assert len(sleeps) == 1
    assert len(seen) == 1 and seen[0].errno == errno.EIO


@needs_57
def test_always_retry_does_not_retry_a_store_that_cannot_be_written(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    backend = make_app(f"kvb://{blocker}/results", result_backend_always_retry=True).backend
    app = backend.app
    sleeps = []
    monkeypatch.setattr(backend, "_sleep", sleeps.append)
    with pytest.raises(OSError):
        backend.save_group("g1", app.GroupResult("g1", [app.AsyncResult("a")]))
    assert sleeps == []


# ------------------------------------------------------------ timeout=0 means "do not block" (5.7)


@needs_57
def test_a_zero_join_timeout_polls_once(url):
    app = make_app(url)
    backend = app.backend
    backend.mark_as_done("ready", 1)
    pending = app.GroupResult("g0", [app.AsyncResult("ready"), app.AsyncResult("pending")])
    for join in (pending.join, pending.join_native):
        started = time.monotonic()
        with pytest.raises(CeleryTimeoutError):
            join(timeout=0, interval=10)
        assert time.monotonic() - started < 5  # no sleep of the interval taken
    done = app.GroupResult("g1", [app.AsyncResult("ready")])
    assert done.join(timeout=0) == [1]
    assert done.join_native(timeout=0) == [1]


# ------------------------------------------------------------ failure meta of a BaseException (5.7)


@needs_57
def test_a_task_failing_with_a_base_exception_keeps_it_as_its_result(url):
    backend = make_app(url).backend
    backend.mark_as_failure("t1", KeyboardInterrupt("stopped"))
    result = backend.app.AsyncResult("t1")
    assert result.state == states.FAILURE
    assert isinstance(result.result, KeyboardInterrupt) and result.result.args == ("stopped",)


@needs_57
@pytest.mark.filterwarnings("ignore:Task name .* is already registered")  # (other tests' shared tasks)
def test_a_generator_header_chord_fires_with_compressed_results(store_path, monkeypatch):
    # Its group is built from the parts' recorded positions by the part that completes it.
    import kv_backend_celery.chords as backend_module
    from celery.backends.base import COMPRESSED_PAYLOAD_MAGIC
    from test_chord_generator13 import _Chord, generator_app

    monkeypatch.setattr(backend_module, "_GROUPS_KEEP_TASK_INDEXES", True)
    url = f"kvb://{store_path}"
    app = generator_app(url, "kvb-hooks15", result_compression="gzip", result_chord_join_timeout=1)
    c = _Chord(app, monkeypatch, 4)
    saved = []
    monkeypatch.setattr(
        app.backend,
        "_end_chord",
        lambda gid, *args, **kwargs: saved.append(app.backend.db.get(app.backend.get_key_for_group(gid))),
    )
    for task_id, index in reversed(c.parts):
        c.finish(task_id, index)
    assert c.sent == [([0, 2, 4, 6],)]
    assert saved[0].startswith(COMPRESSED_PAYLOAD_MAGIC)


@needs_57
def test_extended_results_keep_only_the_stamps_named_in_stamped_headers(url):
    backend = make_app(url).backend  # result_extended=True
    request = Context(
        id="t1",
        task="proj.add",
        args=[1, 2],
        kwargs={},
        stamps={"tenant": "a", "internal": "x"},
        stamped_headers=["tenant"],
    )
    backend.store_result("t1", 3, states.SUCCESS, request=request)
    meta = backend.get_task_meta("t1", cache=False)
    assert (meta["result"], meta["name"], meta["tenant"]) == (3, "proj.add", "a")
    assert meta["stamped_headers"] == ["tenant"] and "internal" not in meta
