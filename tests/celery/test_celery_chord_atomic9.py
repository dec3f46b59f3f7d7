"""A chord part's result and its count are written in one transaction.

They were two writes: a pool process killed between storing a part's result
and counting it left the result stored and the part never counted, so its
chord never completed (Celery 5.7 acknowledges such a part: nothing delivers
it again) and the stuck-chord recovery could not fire it. Now a kill leaves
both or neither, and a part delivered again is counted once.
"""

from __future__ import annotations

import os
import signal
import threading

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
    return celery_helpers.make_app(url, "kvb-atomic9", **conf)


@pytest.fixture
def backend(store_path) -> KVBackend:
    return make_app(f"kvb://{store_path}").backend


def _part_request(gid: str, task_id: str, body) -> Context:
    return Context(id=task_id, group=gid, chord=dict(body))


def _spy_count(monkeypatch, backend: KVBackend) -> list[tuple[bool, str]]:
    """Record, at each count, whether a transaction is open and the part's stored state then."""
    seen: list[tuple[bool, str]] = []
    count = KVBackend._count_part

    def spy(self, key, gid, task_id, *args, **kwargs):
        seen.append((self.db._txn is not None, self.get_task_meta(task_id)["status"]))
        return count(self, key, gid, task_id, *args, **kwargs)

    monkeypatch.setattr(KVBackend, "_count_part", spy)
    return seen


def test_part_killed_between_storing_and_counting_leaves_neither(backend, store_path, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    key = backend.get_key_for_chord(gid)
    before = backend.db.get(key)

    def killed_before_counting():
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        KVBackend._count_part = die  # the child's own copy of the class: the kill point in the transaction
        finish_part(backend, gid, ids[-1], body)

    assert exit_code(fork_child(killed_before_counting)) == -signal.SIGKILL
    fresh = make_app(f"kvb://{store_path}").backend
    assert fresh.get_task_meta(ids[-1])["status"] == "PENDING"  # no result ...
    assert fresh.db.get(key) == before  # ... and no count
    assert backend._part_marker(gid, ids[-1]) not in fresh.db
    assert sent == []
    # The part is delivered again: counted once, and the chord fires once.
    finish_part(backend, gid, ids[-1], body)
    assert sent == [([1, 1, 1],)]
    assert backend.get_task_meta(ids[-1])["status"] == "SUCCESS"
    finish_part(backend, gid, ids[-1], body)
    assert sent == [([1, 1, 1],)]


def test_error_in_the_count_discards_the_stored_result(backend, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)

    def broken(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(KVBackend, "_count_part", broken)
    with pytest.raises(OSError, match="disk gone"):
        finish_part(backend, gid, ids[0], body)
    assert backend.get_task_meta(ids[0])["status"] == "PENDING"
    monkeypatch.undo()
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids:
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]


def test_success_part_is_stored_and_counted_in_one_transaction(backend, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    seen = _spy_count(monkeypatch, backend)
    for i in ids:
        finish_part(backend, gid, i, body)
    # In the transaction, the count reads the result the same block stored.
    assert seen == [(True, "SUCCESS")] * 3
    assert sent == [([1, 1, 1],)]
    for i in ids:
        assert backend._part_marker(gid, i) not in backend.db  # the chord was cleared


def test_failed_part_is_stored_and_counted_in_one_transaction(backend, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    seen = _spy_count(monkeypatch, backend)
    finish_part(backend, gid, ids[0], body)
    backend.mark_as_failure(ids[1], RuntimeError("part failed"), request=_part_request(gid, ids[1], body))
    finish_part(backend, gid, ids[2], body)
    assert seen == [(True, "SUCCESS"), (True, "FAILURE"), (True, "SUCCESS")]
    assert sent == []
    callback = backend.get_task_meta(body.id)
    assert callback["status"] == "FAILURE"
    assert "part failed" in str(callback["result"])
    assert backend.db.get(backend.get_key_for_chord(gid)) is None  # cleared


def test_revoked_part_is_stored_and_counted_in_one_transaction(backend, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=1)
    seen = _spy_count(monkeypatch, backend)
    backend.mark_as_revoked(ids[0], "revoked", request=_part_request(gid, ids[0], body))
    assert seen == [(True, "REVOKED")]
    assert sent == []
    assert backend.get_task_meta(body.id)["status"] == "FAILURE"
    assert backend.db.get(backend.get_key_for_chord(gid)) is None


def test_redelivered_part_after_its_success_is_counted_once(backend, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    key = backend.get_key_for_chord(gid)
    finish_part(backend, gid, ids[0], body)
    counted = backend.db.get(key)
    finish_part(backend, gid, ids[0], body, value=5)  # delivered again: SUCCESS kept, not counted again
    assert backend.db.get(key) == counted
    assert backend.get_task_meta(ids[0])["result"] == 1
    for i in ids[1:]:
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]


def test_ignored_result_part_and_plain_tasks_take_no_transaction(backend, monkeypatch):
    gid, ids, body, _sent = make_chord(backend, monkeypatch)
    seen = _spy_count(monkeypatch, backend)
    transactions: list[bool] = []
    begin = DB.transaction
    monkeypatch.setattr(DB, "transaction", lambda self: transactions.append(True) or begin(self))
    backend.mark_as_done("plain-task", 1)
    backend.mark_as_done("plain-task-2", 2, request=Context(id="plain-task-2"))
    backend.mark_as_failure("plain-task-3", RuntimeError("x"), request=Context(id="plain-task-3"))
    backend.mark_as_retry("plain-task-4", RuntimeError("x"), request=_part_request(gid, "plain-task-4", body))
    assert transactions == []
    request = _part_request(gid, ids[0], body)
    request.ignore_result = True  # nothing stored: only counted, as before
    backend.mark_as_done(ids[0], 1, request=request)
    assert transactions == []
    assert seen == [(False, "PENDING")]


def test_callback_is_sent_with_the_write_lock_free(backend, store_path, monkeypatch):
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    wrote: list[bool] = []
    from celery.canvas import Signature

    def delay(self, *args, **kwargs):
        # Another thread (and so any other process) can write while the callback is sent.
        writer = threading.Thread(target=lambda: wrote.append(backend.db.put(b"other", b"1") is None))
        writer.start()
        writer.join(5)
        wrote.append(backend.db._txn is None)
        sent.append(args)

    monkeypatch.setattr(Signature, "delay", delay)
    for i in ids:
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]
    assert wrote == [True, True]


def test_chord_error_names_the_failed_part_with_its_own_exception(backend, monkeypatch):
    # With two failed parts, the join may stop at either (the order of a set of ids):
    # the ChordError named the first failed part with the other part's exception.
    from celery.result import ResultSet

    gid, ids, body, sent = make_chord(backend, monkeypatch)
    finish_part(backend, gid, ids[0], body)
    backend.mark_as_failure(ids[1], KeyError("of part 1"), request=_part_request(gid, ids[1], body))

    def join_stops_at_part_2(self, *args, **kwargs):
        raise ValueError("of part 2")

    monkeypatch.setattr(ResultSet, "join_native", join_stops_at_part_2)
    backend.mark_as_failure(ids[2], ValueError("of part 2"), request=_part_request(gid, ids[2], body))
    error = backend.get_task_meta(body.id)["result"]
    assert str(error) == f"Dependency {ids[1]} raised KeyError('of part 1')"
    assert sent == []
