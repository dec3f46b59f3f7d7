"""``result_chord_join_timeout`` given as a string is read as seconds, or refused when the backend is built.

The part completing a chord reads that setting in the transaction that stores its result
with its count. A numeric string (a value read from the environment, as ``result_expires``
accepts) raised TypeError there: every chord part's result was lost (``PENDING`` for good) and
the chord never completed. Such a string is now read as seconds; anything else is refused
when the backend is built, naming the setting.
"""

from __future__ import annotations

import pytest
from celery import states
from celery.exceptions import ImproperlyConfigured
from celery_helpers import finish_part, make_app, make_chord
from kv_backend_celery.backend import KVBackendConfigurationError


def test_a_numeric_string_join_timeout_completes_the_chord(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout="2.5").backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    finish_part(backend, gid, ids[0], body, value=3)
    assert backend.get_task_meta(ids[0], cache=False)["status"] == states.SUCCESS
    finish_part(backend, gid, ids[1], body, value=4)
    assert sent == [([3, 4],)]
    assert backend._chord_claim_ttl() == 5.0  # twice the join timeout


@pytest.mark.parametrize("value", ["10 s", "inf", True, [3]])
def test_a_bad_join_timeout_is_refused_naming_the_setting(store_path, value):
    with pytest.raises(KVBackendConfigurationError) as raised:
        make_app(f"kvb://{store_path}", result_chord_join_timeout=value).backend  # noqa: B018
    assert isinstance(raised.value, ImproperlyConfigured)
    assert "result_chord_join_timeout must be a finite number of seconds" in str(raised.value)
    assert repr(value) in str(raised.value)


def test_no_join_timeout_waits_for_ever(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=None).backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=1)
    finish_part(backend, gid, ids[0], body, value=5)
    assert sent == [([5],)]
