"""A chord's header failing just as its result's get() starts raises the header's error.

AsyncResult.get() first checks the parents itself (a header task that failed already is raised), then
waits; the wait passes its check of the parents again after each look. Where the header failed between
get()'s own check and the wait's first look, the callback's result was ready at that first look and
returned without that check, so get() raised the ChordError the failure left on the callback instead
of the header's ValueError (seen once in a full run under load, with workers). The ready result is now
followed by the check in every case.
"""

from __future__ import annotations

import celery_helpers
import pytest
from celery.exceptions import ChordError

pytestmark = pytest.mark.xdist_group("celery")


@pytest.fixture
def app(store_path):
    return celery_helpers.make_app(f"kvb://{store_path}", "kvb-race22")


def _fail_parent_first(app, monkeypatch, parent_id):
    """Make the header fail as the wait begins (after get()'s own check of the parents)."""
    backend = type(app.backend)
    original = backend.wait_for_pending

    def failing_first(self, result, **kwargs):
        self.mark_as_failure(parent_id, ValueError("header broke"))
        return original(self, result, **kwargs)

    monkeypatch.setattr(backend, "wait_for_pending", failing_first)


def test_a_header_failing_as_the_wait_begins_raises_its_error(app, monkeypatch):
    app.backend.mark_as_failure("callback", ChordError("Dependency header raised ValueError('header broke')"))
    _fail_parent_first(app, monkeypatch, "header")
    result = app.AsyncResult("callback", parent=app.AsyncResult("header"))
    with pytest.raises(ValueError, match="header broke"):
        result.get(timeout=5)


def test_a_ready_result_with_sound_parents_is_returned(app, monkeypatch):
    app.backend.mark_as_done("parent", 1)
    app.backend.mark_as_done("child", 2)
    calls = []
    result = app.AsyncResult("child", parent=app.AsyncResult("parent"))
    assert result.get(timeout=5, on_interval=lambda *_: calls.append(1)) == 2
    assert calls == [1]  # (the check after the look, as after each message on redis://)


def test_without_parents_the_result_is_raised_as_stored(app):
    app.backend.mark_as_failure("alone", ChordError("Dependency x raised ValueError('y')"))
    with pytest.raises(ChordError):
        app.AsyncResult("alone").get(timeout=5)
