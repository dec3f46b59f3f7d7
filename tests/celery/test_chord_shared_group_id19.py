"""A chord whose header holds a chain that ends in a group, as Celery before 5.6 sends it.

There the nested group takes the chord's own group id, and the worker that applies it (the
chain's first task) announces the group's size under that id: the chord's counter was given a
second size to subtract (``chord([a, chain(b, group(c, d))])``: 3 by the client, 2 by the
worker) and never came back to zero, so the callback was never called (``get()`` timed out with
Celery 5.3 to 5.5; ``redis://`` keeps only the size announced last, and fires once, early, or
never, depending on the order). The client now counts such a chord's size when it sends the
chord, and both announcements are ignored, in whichever order they and the parts come.
"""

from __future__ import annotations

import uuid

import pytest
from celery import chain, chord, group, states
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_app
from kv_backend_celery import chords as chords_module
from test_celery_chord_recovery9 import _left

from kv_backend.errors import CorruptionError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _shared_id_chord(store_path, monkeypatch):
    """chord([a, chain(b, group(c, d))], echo) as Celery 5.3 saves it: the nested group bears the
    chord's id. Returns the backend, the group id, the top part, the nested parts, the callback
    and what it was sent."""
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=2).backend
    app = backend.app

    @app.task(name="shared19.echo", shared=False)
    def echo(values):  # pragma: no cover - never run, only signed
        return values

    sent: list = []
    from celery.canvas import Signature

    monkeypatch.setattr(Signature, "delay", lambda self, *args, **kw: sent.append(args))
    gid = str(uuid.uuid4())
    top, nested = f"{gid}-a", [f"{gid}-c", f"{gid}-d"]
    body = echo.s()
    body.freeze()
    header = [app.AsyncResult(top), app.GroupResult(gid, [app.AsyncResult(i) for i in nested])]
    backend.apply_chord((gid, header), body)
    return backend, gid, top, nested, body, sent


# Each order: "client" announces 3 (the chord), "nested" announces 2 under the same id (the chain's
# first task applying its group, before that group's last task), "a", "c", "d" finish. The client
# announces before its last task is sent, the worker before the group's last one.
ORDERS = {
    "client first": ["client", "a", "nested", "c", "d"],
    "nested first": ["nested", "c", "d", "client", "a"],
    "a part between them": ["client", "c", "nested", "d", "a"],
    "parts before both": ["a", "c", "client", "nested", "d"],
}


@pytest.mark.parametrize("order", ORDERS)
def test_the_chord_fires_once_with_every_value_whichever_order(store_path, monkeypatch, order):
    backend, gid, top, nested, body, sent = _shared_id_chord(store_path, monkeypatch)
    values = {"a": (top, 1), "c": (nested[0], 10), "d": (nested[1], 20)}
    for step in ORDERS[order]:
        if step == "client":
            backend.set_chord_size(gid, 3)
        elif step == "nested":
            backend.set_chord_size(gid, 2)
        else:
            assert sent == [], step  # not before its last part
            task_id, value = values[step]
            finish_part(backend, gid, task_id, body, value=value)
    assert sent == [([1, [10, 20]],)]
    assert _left(backend, gid) == []
    for task_id, value in values.values():  # late copies are not counted again
        finish_part(backend, gid, task_id, body, value=value)
    assert sent == [([1, [10, 20]],)]
    assert _left(backend, gid) == []


def test_a_chord_failed_for_its_damaged_counter_leaves_nothing_when_its_size_comes_after(
    store_path, monkeypatch
):
    # Failed for a damaged counter before the announcements: they (and the parts still to come)
    # find the chord failed, and leave no counter behind.
    backend, gid, top, nested, body, sent = _shared_id_chord(store_path, monkeypatch)
    db = backend.db
    counter = backend.get_key_for_chord(gid)

    def damaged(key, *args, **kwargs):
        if key == counter:
            raise CorruptionError("checksum mismatch (test)")
        return real_get(key, *args, **kwargs)

    real_get = db.get
    monkeypatch.setattr(db, "get", damaged)
    finish_part(backend, gid, top, body)
    monkeypatch.setattr(db, "get", real_get)
    callback = backend.app.AsyncResult(body.id)
    assert callback.state == states.FAILURE and isinstance(callback.result, ChordError)
    backend.set_chord_size(gid, 2)
    backend.set_chord_size(gid, 3)
    for task_id in nested:
        finish_part(backend, gid, task_id, body)
    assert sent == []
    assert counter not in db
    assert not [k for k in _left(backend, gid) if k != backend._damaged_key(gid)]


def test_newer_celery_nested_groups_are_not_sized_when_sent(store_path, monkeypatch):
    # A nested group with an id of its own (Celery 5.6+) announces its size there: the chord's
    # own size is announced by the client as before.
    backend = make_app(f"kvb://{store_path}").backend
    app = backend.app
    gid, inner = str(uuid.uuid4()), str(uuid.uuid4())
    header = [app.AsyncResult(f"{gid}-a"), app.GroupResult(inner, [app.AsyncResult(f"{inner}-c")])]
    assert chords_module._size_if_shared(gid, header) is None
    assert chords_module._size_if_shared(inner, header) == 2


def test_with_workers(celery_env):
    """On the suite's workers (whichever Celery runs them), with the nested group first and last."""
    m = celery_env.app_module
    for first, expected in ((True, [[6, 8], 2]), (False, [2, [6, 8]])):
        nested = chain(m.add.s(2, 2), group(m.add.si(3, 3), m.add.si(4, 4)))
        header = [nested, m.add.s(1, 1)] if first else [m.add.s(1, 1), nested]
        result = chord(header)(m.echo.s())
        assert result.get(timeout=30) == {"args": [expected], "kwargs": {}}
