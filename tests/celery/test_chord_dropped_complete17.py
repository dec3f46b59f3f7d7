"""A complete chord whose sender was lost and whose counter is gone is sent, once, not cleared.

A merge of an earlier release did not copy a record that failed its checksum: a chord's damaged
counter was gone after it (merges now keep such a record as it is). A complete chord (all parts
counted, its callback stored) whose sender was lost and whose counter was dropped so was taken by
the workers' recovery for a chord that had expired: it was cleared and its callback never sent. The
chord's size key lives no longer than its counter and goes with the chord's end, so a counter missing
while it is there was dropped, and counted 0: the recovery sends the callback, once, as for a
complete chord whose counter is only damaged, and a sender still alive sends it at once.
"""

from __future__ import annotations

import time

import pytest
from celery_helpers import finish_part, make_app, make_chord
from kv_backend_celery.backend import KVBackend
from test_celery_chord_recovery9 import _left
from test_chord_counter_dropped16 import _lose_count

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _backend(store_path: str) -> KVBackend:
    # A short claim on completed chords.
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05).backend
    backend.chord_claim_min = 0.0
    return backend


def _complete(backend: KVBackend, monkeypatch, claim: bytes):
    """A chord whose last part was counted (claiming it with ``claim``) and whose callback is not sent."""
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    backend.mark_as_done(ids[-1], 1)
    key = backend.get_key_for_chord(gid)
    assert backend._count_part(key, gid, ids[-1], 60, claim, dict(body)) == 0
    return gid, ids, body, sent


def test_recovery_sends_a_complete_chord_whose_counter_was_dropped(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, ids, body, sent = _complete(backend, monkeypatch, b"lost")
    _lose_count(backend, gid)
    time.sleep(backend._chord_claim_ttl() + 0.05)  # the lost sender's claim lapses
    assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []
    assert backend.recover_chords() == 0
    for i in ids:  # late copies of the parts: nothing more happens
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []


def test_live_sender_sends_a_chord_whose_counter_was_dropped_after_it_completed(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, _, body, sent = _complete(backend, monkeypatch, b"mine")
    _lose_count(backend, gid)
    backend._run_chord_callback(gid, dict(body), backend.get_key_for_chord(gid), b"mine")
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []
    assert backend.recover_chords() == 0


def test_the_size_never_outlives_the_counter(store_path, monkeypatch):
    # What tells a dropped counter from an expired one (test_celery_chord_recovery9.py has the latter).
    backend = _backend(store_path)
    gid, ids, body, _ = make_chord(backend, monkeypatch, parts=3, announce=False)
    finish_part(backend, gid, ids[0], body)
    backend.set_chord_size(gid, 3)
    finish_part(backend, gid, ids[1], body)
    db = backend.db
    assert db.ttl(backend.get_key_for_chord(gid)) >= db.ttl(backend._size_key(gid)) > 0
