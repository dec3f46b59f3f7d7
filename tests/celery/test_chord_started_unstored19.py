"""A chord header task whose call asks to ignore its result, with ``task_track_started``, on Celery 5.3.

Celery 5.3 decides whether to store ``STARTED`` from the task's own ``ignore_result``, and whether
to store its result from the call's (``.set(ignore_result=True)``): such a part stored its
``STARTED`` state and no result. The part kept its result with its count only where nothing at all
was stored, and the chord's join waited for that ``STARTED`` to finish: the chord failed with a
ChordError (``TimeoutError``) once ``result_chord_join_timeout`` ran out, although every part had
succeeded. The part's result is now kept whenever no finished state is stored, and the join reads
it there.
"""

from __future__ import annotations

import pytest
from celery import states
from celery.app.task import Context
from celery_helpers import finish_part, make_app, make_chord
from test_celery_chord_recovery9 import _left

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _started_then_done(backend, gid, task_id, body, value):
    """As a Celery 5.3 worker runs a part called with ignore_result=True: STARTED, then no result."""
    request = Context(id=task_id, group=gid, chord=dict(body), ignore_result=True)
    backend.store_result(task_id, {"pid": 1}, states.STARTED, request=request)
    backend.mark_as_done(task_id, value, request=request)


@pytest.mark.parametrize("which", ["first", "last"])
def test_the_callback_gets_the_result_of_a_part_that_stored_only_its_start(store_path, monkeypatch, which):
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.5).backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3)
    chosen = ids[0] if which == "first" else ids[-1]
    for i, task_id in enumerate(ids):
        if task_id == chosen:
            _started_then_done(backend, gid, task_id, body, i * 10)
        else:
            finish_part(backend, gid, task_id, body, value=i * 10)
    assert sent == [([0, 10, 20],)]
    assert backend.get_task_meta(chosen, cache=False)["status"] == states.STARTED  # as Celery 5.3 left it
    assert _left(backend, gid) == []


def test_a_part_that_stored_its_result_is_read_from_there(store_path, monkeypatch):
    # The stored result counts, not the STARTED it replaced: a part that stored its result keeps
    # no copy with its count.
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.5).backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    for i, task_id in enumerate(ids):
        backend.store_result(task_id, None, states.STARTED)
        finish_part(backend, gid, task_id, body, value=i + 5)
        assert backend.db.get(backend._part_marker(gid, task_id)) in (None, b"1")
    assert sent == [([5, 6],)]
