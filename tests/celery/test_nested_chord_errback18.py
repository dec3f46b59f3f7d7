"""The errback of a chord whose header holds a chord that fails is called once.

Celery links a chord's errbacks to the body of each chord in its header too. When a part of the
nested chord fails, the nested chord's failure calls that errback, and (here, not with Celery's
own backends, where the enclosing chord never completes) the enclosing chord then fails too:
its failure called the same errback a second time (Celery's own test
``test_chord::test_nested_chord_header_link_error`` expects one call). The errbacks the nested
chord's failure called are not called again for the enclosing chord; its other errbacks are.
"""

from __future__ import annotations

import pytest
from celery import states
from celery.app.task import Context
from celery_helpers import finish_part, make_app, make_chord

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _nested(backend, monkeypatch, inner_errbacks, outer_errbacks):
    """A chord nested in another's header, its callback the enclosing chord's first part."""
    inner_gid, inner_ids, inner_body, sent = make_chord(backend, monkeypatch, parts=2, announce=False)
    outer_gid, outer_ids, outer_body, _ = make_chord(backend, monkeypatch, parts=2, sent=sent)
    inner_body.options.update(task_id=outer_ids[0], group_id=outer_gid, chord=dict(outer_body))
    inner_body.options["link_error"] = inner_errbacks
    outer_body.options["link_error"] = outer_errbacks
    backend.set_chord_size(inner_gid, 2)
    return inner_gid, inner_ids, inner_body, outer_gid, outer_ids, outer_body


def test_an_errback_linked_to_both_chords_is_called_once(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}").backend
    app = backend.app
    shared = app.signature("errbacks.shared", args=("errback called",), immutable=True)
    own = app.signature("errbacks.outer_only", immutable=True)
    called: list[str] = []
    monkeypatch.setattr(
        type(backend),
        "_call_task_errbacks",
        lambda self, request, exc, tb: called.extend(e["task"] for e in request.errbacks or []),
    )
    inner_gid, inner_ids, inner_body, outer_gid, outer_ids, outer_body = _nested(
        backend, monkeypatch, [dict(shared)], [dict(shared), dict(own)]
    )
    finish_part(backend, outer_gid, outer_ids[1], outer_body, value=10)
    finish_part(backend, inner_gid, inner_ids[0], inner_body)
    failing = Context(id=inner_ids[1], group=inner_gid, chord=dict(inner_body))
    backend.mark_as_failure(inner_ids[1], ValueError("inner broke"), request=failing)
    assert backend.get_task_meta(outer_body.id, cache=False)["status"] == states.FAILURE  # failed in turn
    assert sorted(called) == ["errbacks.outer_only", "errbacks.shared"]  # each once
