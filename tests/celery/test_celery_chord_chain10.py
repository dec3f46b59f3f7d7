"""A chord part failed with its chain is stored and counted in one transaction.

When a task of a chain in a chord header fails, Celery stores the same
failure for the tasks chained after it and counts the chain's last task (the
chord's part). That failure was stored, then counted, in two writes: a process
killed between them left the part failed but uncounted, and its chord never
completed. Now a kill leaves both or neither, and a failure delivered again is
counted once.
"""

from __future__ import annotations

import os
import signal
import uuid

import celery_helpers
import pytest
from celery import Celery
from celery.app.task import Context
from celery_helpers import finish_part, make_chord
from helpers import exit_code, fork_child
from kv_backend_celery.backend import KVBackend

from kv_backend import DB

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


def make_app(url: str, **conf) -> Celery:
    return celery_helpers.make_app(url, "kvb-chain10", **conf)


@pytest.fixture
def backend(store_path) -> KVBackend:
    return make_app(f"kvb://{store_path}").backend


def _spy_count(monkeypatch) -> list[tuple[str, bool, str]]:
    """Record, at each count, the part, whether a transaction is open, and the part's stored state then."""
    seen: list[tuple[str, bool, str]] = []
    count = KVBackend._count_part

    def spy(self, key, gid, task_id, *args, **kwargs):
        seen.append((task_id, self.db._txn is not None, self.get_task_meta(task_id)["status"]))
        return count(self, key, gid, task_id, *args, **kwargs)

    monkeypatch.setattr(KVBackend, "_count_part", spy)
    return seen


def _chain_ending_in(backend: KVBackend, gid: str, part_id: str, body) -> tuple[str, Context, str]:
    """The request of a chain's first task whose chain is (a plain task, then the chord part ``part_id``).

    Returns the first task's id, its request and the plain task's id. Celery
    lists the rest of a chain last task first, and only that task carries
    the chord's group and callback.
    """
    step = backend.app.tasks.get("chain10.step")
    if step is None:

        @backend.app.task(name="chain10.step", shared=False)
        def step(x):  # pragma: no cover - never run, only signed
            return x

    middle = step.s()
    middle.set(task_id=str(uuid.uuid4()))
    last = step.s()
    last.set(task_id=part_id, group_id=gid, chord=body)
    first_id = str(uuid.uuid4())
    return first_id, Context(id=first_id, chain=[dict(last), dict(middle)]), middle.id


def _fail_chain(backend: KVBackend, first_id: str, request: Context) -> None:
    backend.mark_as_failure(first_id, RuntimeError("step 1 failed"), request=request)


def test_chained_part_is_stored_and_counted_in_one_transaction(backend, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    first_id, request, middle_id = _chain_ending_in(backend, gid, ids[-1], body)
    seen = _spy_count(monkeypatch)
    transactions: list[bool] = []
    begin = DB.transaction
    monkeypatch.setattr(DB, "transaction", lambda self: transactions.append(True) or begin(self))
    _fail_chain(backend, first_id, request)
    # In the transaction, the count reads the failure the same block stored.
    assert seen == [(ids[-1], True, "FAILURE")]
    assert transactions == [True]  # the failed task and the plain chained one: as before, no transaction
    for task_id in (first_id, middle_id, ids[-1]):
        assert backend.get_task_meta(task_id)["status"] == "FAILURE"
    assert sent == []
    callback = backend.get_task_meta(body.id)
    assert callback["status"] == "FAILURE"
    assert str(callback["result"]) == f"Dependency {ids[-1]} raised RuntimeError('step 1 failed')"
    assert backend.db.get(backend.get_key_for_chord(gid)) is None  # the chord was cleared


def test_chained_part_killed_between_storing_and_counting_leaves_neither(backend, store_path, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    first_id, request, _ = _chain_ending_in(backend, gid, ids[0], body)
    key = backend.get_key_for_chord(gid)
    before = backend.db.get(key)

    def killed_before_counting():
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        KVBackend._count_part = die  # the child's own copy of the class: the kill point in the transaction
        _fail_chain(backend, first_id, request)

    assert exit_code(fork_child(killed_before_counting)) == -signal.SIGKILL
    fresh = make_app(f"kvb://{store_path}").backend
    assert fresh.get_task_meta(ids[0])["status"] == "PENDING"  # no failure stored ...
    assert fresh.db.get(key) == before  # ... and no count
    assert backend._part_marker(gid, ids[0]) not in fresh.db
    # The failed task is delivered again (twice): its chained part is counted once.
    _fail_chain(backend, first_id, request)
    counted = backend.db.get(key)
    assert int(counted) == int(before) + 1
    _fail_chain(backend, first_id, request)
    assert backend.db.get(key) == counted
    for i in ids[1:]:
        finish_part(backend, gid, i, body)
    assert sent == []  # the chord fires once, with the chained part's failure
    callback = backend.get_task_meta(body.id)
    assert callback["status"] == "FAILURE"
    assert str(callback["result"]) == f"Dependency {ids[0]} raised RuntimeError('step 1 failed')"
    assert backend.db.get(key) is None


def test_error_in_the_count_discards_the_chained_failure(backend, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=1)
    first_id, request, _ = _chain_ending_in(backend, gid, ids[0], body)
    count = KVBackend._count_part
    failures = [OSError("disk gone")]

    def broken_once(*args, **kwargs):
        if failures:
            raise failures.pop()
        return count(*args, **kwargs)

    monkeypatch.setattr(KVBackend, "_count_part", broken_once)
    with pytest.raises(OSError, match="disk gone"):
        _fail_chain(backend, first_id, request)
    assert backend.get_task_meta(ids[0])["status"] == "PENDING"
    _fail_chain(backend, first_id, request)  # delivered again
    assert backend.get_task_meta(ids[0])["status"] == "FAILURE"
    assert backend.get_task_meta(body.id)["status"] == "FAILURE"
    assert sent == []


def test_chained_part_of_a_failed_callback_is_counted_with_its_failure(backend, monkeypatch):
    # The tasks chained after a chord callback that failed are failed too (by Celery 5.7+ itself,
    # by the backend before: see test_failed_callback_chain19.py): one that is a part of an
    # enclosing chord is stored and counted in one transaction too.
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=1)
    inner_gid, inner_ids, inner_body, _ = make_chord(backend, monkeypatch, parts=1, sent=sent)
    _, request, _ = _chain_ending_in(backend, gid, ids[0], body)
    inner_body.options["chain"] = request.chain
    seen = _spy_count(monkeypatch)
    backend.mark_as_failure(
        inner_ids[0],
        KeyError("inner part"),
        request=Context(id=inner_ids[0], group=inner_gid, chord=dict(inner_body)),
    )
    assert seen[0] == (inner_ids[0], True, "FAILURE")
    assert (ids[0], True, "FAILURE") in seen[1:]
    assert backend.get_task_meta(inner_body.id)["status"] == "FAILURE"
    assert backend.get_task_meta(body.id)["status"] == "FAILURE"
    assert sent == []
