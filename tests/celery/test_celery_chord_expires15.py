"""result_chord_expires (Celery 5.7+) on kvb://: checked when the backend is built, as the other lifetimes.

Celery reads the setting with int() at every chord: a value such as "1 day", "1.5" or inf
failed the first chord the client sent, with a ValueError or OverflowError naming no setting.
"""

from __future__ import annotations

import datetime

import celery
import celery_helpers
import pytest
from celery.exceptions import ImproperlyConfigured

pytestmark = pytest.mark.skipif(
    tuple(int(part) for part in celery.__version__.split(".")[:2]) < (5, 7),
    reason="Celery 5.7 brought result_chord_expires",
)


@pytest.mark.parametrize("value", ["1 day", "inf", float("inf"), float("nan"), True, [60]])
def test_a_bad_result_chord_expires_fails_when_the_backend_is_built(store_path, value):
    app = celery_helpers.make_app(f"kvb://{store_path}", result_chord_expires=value)
    with pytest.raises(ImproperlyConfigured, match="result_chord_expires"):
        app.backend  # noqa: B018


@pytest.mark.parametrize("value", ["90", "90.5", 90, datetime.timedelta(seconds=90)])
def test_result_chord_expires_as_seconds_a_numeric_string_or_a_timedelta(store_path, monkeypatch, value):
    backend = celery_helpers.make_app(f"kvb://{store_path}", result_chord_expires=value).backend
    gid, ids, body, sent = celery_helpers.make_chord(backend, monkeypatch, parts=2)
    assert 80 < backend.db.ttl(backend.get_key_for_chord(gid)) <= 90.5
    for task_id in ids:
        celery_helpers.finish_part(backend, gid, task_id, body)
    assert sent == [([1, 1],)]
