"""A part of a chord that expired before it finished is logged as such, not as delivered again.

A chord's records live ``result_chord_expires`` (``result_expires`` when that is unset) after its
last part finished: a part running longer finds the chord gone, and the chord never calls its
callback (as with ``redis://``). Such a part was logged as "finished again after the chord was
complete", which sent users looking for a redelivery while their chord had expired. The warning
now names the expiry and its lifetime unless the chord's callback has finished (then the chord
was complete, and the part was delivered again).
"""

from __future__ import annotations

import logging
import time

import pytest
from celery import states
from celery_helpers import finish_part, make_app, make_chord

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def test_a_part_finishing_after_its_chord_expired_says_so(store_path, monkeypatch, caplog):
    backend = make_app(f"kvb://{store_path}", result_expires=1).backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    finish_part(backend, gid, ids[0], body)
    time.sleep(1.3)  # no part finishes for result_expires: the chord expires
    with caplog.at_level(logging.WARNING, logger="kv_backend_celery.backend"):
        finish_part(backend, gid, ids[1], body)
    assert sent == []
    assert "after the chord expired: no part had finished for 1 s" in caplog.text
    assert "result_chord_expires" in caplog.text


def test_a_part_delivered_again_after_its_chord_was_called_says_so(store_path, monkeypatch, caplog):
    backend = make_app(f"kvb://{store_path}").backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    for task_id in ids:
        finish_part(backend, gid, task_id, body)
    assert sent == [([1, 1],)]
    backend.store_result(body.id, 2, states.SUCCESS)  # the callback ran
    with caplog.at_level(logging.WARNING, logger="kv_backend_celery.backend"):
        finish_part(backend, gid, ids[0], body)
    assert "finished again after the chord was complete; ignored" in caplog.text
    assert "expired" not in caplog.text
    assert sent == [([1, 1],)]
