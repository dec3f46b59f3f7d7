"""A chord whose claim is damaged on disk while its callback is being sent.

The process finishing a chord reads its claim back before sending the callback. A claim record
failing its checksum (a disk fault) raised CorruptionError out of the part finishing the chord,
and out of the whole recovery round, whose other chords were then not sent. A damaged claim
cannot tell its owner, so it is now taken as another process's: nobody sends the callback while
it lives (seconds), and the recovery then sends it, once; the round goes on with other chords.
"""

from __future__ import annotations

import pytest
from celery import states
from celery_helpers import finish_part, make_chord
from kv_backend_celery.backend import KVBackend
from test_celery_chord_damaged15 import damage
from test_celery_chord_recovery9 import _backend, _lapse, _left, _stuck

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _damage_claim_when_kept(monkeypatch, store_path: str, gid: str) -> list[bytes]:
    """Damage the claim of chord ``gid`` on disk the first time its owner reads it back."""
    keep = KVBackend._keep_claim
    damaged: list[bytes] = []

    def kept(self, group_id, key, claim, ttl):
        if group_id == gid and not damaged:
            damaged.append(claim)
            damage(store_path, claim)  # the claim is a unique uuid: only its record holds it
        return keep(self, group_id, key, claim, ttl)

    monkeypatch.setattr(KVBackend, "_keep_claim", kept)
    return damaged


def test_a_damaged_claim_does_not_stop_the_recovery(store_path, monkeypatch):
    backend = _backend(store_path)
    sent: list = []
    first, _, body, _ = _stuck(backend, monkeypatch, sent=sent)
    other, _, _, _ = _stuck(backend, monkeypatch, sent=sent)
    damaged = _damage_claim_when_kept(monkeypatch, store_path, first)
    _lapse(backend)
    assert backend.recover_chords() == 2
    assert damaged and sent == [([1, 1, 1],)]  # the other chord's callback
    assert _left(backend, other) == []
    assert backend.get_task_meta(body.id, cache=False)["status"] == states.PENDING
    assert backend.recover_chords() == 0  # the damaged claim still lives: nobody sends it
    _lapse(backend)
    assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],), ([1, 1, 1],)]
    assert _left(backend, first) == []


def test_a_part_whose_claim_is_damaged_leaves_the_callback_to_the_recovery(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    _damage_claim_when_kept(monkeypatch, store_path, gid)
    for task_id in ids:
        finish_part(backend, gid, task_id, body)  # the last one completes the chord
    assert sent == []
    _lapse(backend)
    assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []
