"""A read-only client whose store does not exist (yet) waits for its results, as for results not stored yet.

A ``?read_only=1`` client (a web process that only reads results) whose store directory was
deleted, or that started before any worker had created the store, raised StoreNotFoundError
at once from ``AsyncResult.get()``, ``.state`` and ``GroupResult.get()``. For such a client a
missing store means no worker has stored anything there yet: its results read as ``PENDING``,
``get()`` waits (``timeout=`` raises Celery's TimeoutError as usual) and returns them once a
worker creates the store and stores them. Writing through it still raises at once.
"""

from __future__ import annotations

import shutil
import threading

import pytest
from celery import states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery_helpers import make_app

from kv_backend.errors import StoreNotFoundError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _get_later(result, **kwargs):
    """Call ``result.get(**kwargs)`` in a thread; returns the thread and where its outcome lands."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = result.get(**kwargs)
        except BaseException as exc:  # the test asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("deleted", [False, True])
def test_get_waits_for_a_store_not_created_yet(store_path, deleted, caplog):
    url = f"kvb://{store_path}"
    if deleted:  # the client had read from the store before its directory was deleted
        make_app(url).backend.store_result("before", 1, states.SUCCESS)
    reader = make_app(url + "?read_only=1")
    if deleted:
        assert reader.AsyncResult("before").get(timeout=5) == 1
        shutil.rmtree(store_path)
    result = reader.AsyncResult("t1")
    assert result.state == states.PENDING
    assert reader.AsyncResult("before").state == states.PENDING  # gone with its store
    with pytest.raises(CeleryTimeoutError):
        result.get(timeout=0.3, interval=0.05)
    assert "reading every result as not stored yet" in caplog.text
    thread, outcome = _get_later(result, timeout=20, interval=0.05)
    thread.join(0.3)
    assert thread.is_alive()  # waiting, not failing
    make_app(url).backend.store_result("t1", {"a": 1}, states.SUCCESS)  # a worker creates the store
    thread.join(20)
    assert outcome == {"value": {"a": 1}}


def test_group_get_waits_for_a_store_not_created_yet(store_path):
    url = f"kvb://{store_path}"
    reader = make_app(url + "?read_only=1")
    group = reader.GroupResult("g1", [reader.AsyncResult("a"), reader.AsyncResult("b")])
    with pytest.raises(CeleryTimeoutError):
        group.get(timeout=0.3, interval=0.05)
    thread, outcome = _get_later(group, timeout=20, interval=0.05)
    writer = make_app(url).backend
    writer.store_result("a", 1, states.SUCCESS)
    writer.store_result("b", 2, states.SUCCESS)
    thread.join(20)
    assert outcome == {"value": [1, 2]}


def test_writing_through_a_read_only_client_without_a_store_still_raises(store_path):
    backend = make_app(f"kvb://{store_path}?read_only=1").backend
    with pytest.raises(StoreNotFoundError):
        backend.store_result("t1", 1, states.SUCCESS)
    with pytest.raises(StoreNotFoundError):
        backend.forget("t1")
