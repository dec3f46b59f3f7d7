"""A negative result lifetime is refused when the backend is built, naming the setting.

``result_expires=-1`` (or a negative ``timedelta``, ``result_failure_expires`` or
``result_chord_expires``) kept every result for ever: the opposite of any lifetime, and unlike
Celery's redis backend, which refuses such an expiry at the first result stored.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import ImproperlyConfigured
from celery_helpers import make_app


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("result_expires", -1),
        ("result_expires", "-60"),
        ("result_expires", timedelta(days=-1)),
        ("result_failure_expires", -5),
        ("result_chord_join_timeout", -0.5),
    ],
)
def test_a_negative_lifetime_is_refused(store_path, setting, value):
    app = make_app(f"kvb://{store_path}", **{setting: value})
    with pytest.raises(ImproperlyConfigured, match=rf"^{setting} must be a finite number of seconds >= 0"):
        app.backend  # noqa: B018


def test_a_negative_chord_lifetime_is_refused(store_path):
    if not hasattr(make_app(f"kvb://{store_path}").backend, "_chord_expires"):
        pytest.skip("result_chord_expires: Celery 5.7+")
    app = make_app(f"kvb://{store_path}", result_chord_expires=-1)
    expected = r"^result_chord_expires must be a finite number of seconds >= 0"
    with pytest.raises(ImproperlyConfigured, match=expected):
        app.backend  # noqa: B018


@pytest.mark.parametrize("value", [0, None])
def test_zero_and_none_still_keep_results_for_ever(store_path, value):
    backend = make_app(f"kvb://{store_path}", result_expires=value).backend
    backend.store_result("t1", 1, "SUCCESS")
    assert backend.db.ttl(backend.get_key_for_task("t1")) is None
