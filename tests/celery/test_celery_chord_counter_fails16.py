"""A chord whose counter is damaged on disk fails with a ChordError, once, instead of hanging.

Its parts stored their results but were not counted, so the chord never completed and its
callback was never failed: ``get()`` on the chord waited for ever. The first part to meet the
damage now fails the callback with a ChordError naming the damaged record, however many parts
(in however many processes) meet it at once; a process killed doing so leaves the chord to a
part delivered again or to the workers' recovery, which fail it in turn, and it is never sent.
"""

from __future__ import annotations

import glob
import os
import signal

import pytest
from celery import states
from celery.exceptions import ChordError
from celery_helpers import CountingList, finish_part, make_app, make_chord
from helpers import exit_code, fork_child
from kv_backend_celery.backend import KVBackend
from test_celery_chord_recovery9 import _backend, _lapse, _left, _stuck

from kv_backend.errors import CorruptionError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _damage_count(backend: KVBackend, store_path: str, gid: str) -> None:
    """Damage a value byte of the record of the chord's current count (reopening the store from its files).

    Its key left intact, the store indexes the damaged record, and reads of the count raise
    CorruptionError (a record damaged in its key would be skipped for the one before it).
    """
    key = backend.get_key_for_chord(gid)
    record = key + backend.db.get(key)  # no marker key has a value right after it
    for path in glob.glob(os.path.join(store_path, "*.data")):
        with open(path, "r+b") as f:
            at = f.read().rfind(record)
            if at >= 0:
                f.seek(at + len(key))
                f.write(b"X")
    backend.db.close()
    with pytest.raises(CorruptionError):
        backend.db.get(key)


def _failed_with_chord_error(backend: KVBackend, body, gid: str) -> ChordError:
    meta = backend.get_task_meta(body.id, cache=False)
    assert meta["status"] == states.FAILURE
    error = meta["result"]
    assert isinstance(error, ChordError)
    assert backend.get_key_for_chord(gid).decode() in str(error) and "damaged" in str(error)
    return error


def _counting_failures(backend: KVBackend, monkeypatch, key: bytes) -> None:
    """Count, in the store (any process), each time a chord callback is failed."""
    fail = KVBackend.chord_error_from_stack

    def counted(self, callback, exc=None):
        self.db.incr(key)
        return fail(self, callback, exc)

    monkeypatch.setattr(KVBackend, "chord_error_from_stack", counted)


def test_the_part_meeting_a_damaged_counter_fails_the_chord(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}").backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=4)
    finish_part(backend, gid, ids[0], body)
    _damage_count(backend, store_path, gid)
    finish_part(backend, gid, ids[1], body, value=11)
    assert backend.get_task_meta(ids[1], cache=False)["result"] == 11
    _failed_with_chord_error(backend, body, gid)
    assert _left(backend, gid) == []
    for task_id in ids:  # the other parts, and copies of the first ones: nothing more happens
        finish_part(backend, gid, task_id, body)
    assert sent == []
    assert _left(backend, gid) == []
    assert backend.get_task_meta(ids[3], cache=False)["status"] == states.SUCCESS


def test_parts_meeting_the_damage_at_once_fail_the_chord_once(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}").backend
    failures = b"test-chord-failures"
    _counting_failures(backend, monkeypatch, failures)
    gid, ids, body, _ = make_chord(backend, monkeypatch, parts=6, sent=CountingList(backend, b"test-sent"))
    finish_part(backend, gid, ids[0], body)
    _damage_count(backend, store_path, gid)
    r, w = os.pipe()

    def part(task_id):
        def run():
            os.close(w)
            os.read(r, 1)  # all start together
            finish_part(backend, gid, task_id, body)

        return run

    pids = [fork_child(part(task_id)) for task_id in ids[1:]]
    os.close(r)
    os.write(w, b"x" * len(pids))
    os.close(w)
    assert [exit_code(pid) for pid in pids] == [0] * len(pids)
    assert backend.db.get(failures) == b"1"
    assert backend.db.get(b"test-sent") is None
    _failed_with_chord_error(backend, body, gid)
    assert _left(backend, gid) == []
    assert backend.recover_chords() == 0


def test_a_process_killed_failing_the_chord_leaves_it_to_the_recovery(store_path, monkeypatch):
    backend = _backend(store_path)
    sent: list = []
    gid, ids, body, _ = make_chord(backend, monkeypatch, sent=sent)
    finish_part(backend, gid, ids[0], body)
    _damage_count(backend, store_path, gid)

    def killed_after_taking_the_failure():
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        KVBackend._run_chord_callback = die  # the child's own copy of the class
        finish_part(backend, gid, ids[1], body)

    assert exit_code(fork_child(killed_after_taking_the_failure)) == -signal.SIGKILL
    finish_part(backend, gid, ids[2], body)  # a part after the failure was taken: not counted
    assert backend.get_task_meta(body.id, cache=False)["status"] == states.PENDING
    _lapse(backend)
    assert backend.recover_chords() == 1
    _failed_with_chord_error(backend, body, gid)
    assert sent == []
    assert _left(backend, gid) == []


def test_the_recovery_sends_a_stuck_chord_whose_count_is_damaged(store_path, monkeypatch):
    # Complete (its callback is stored) and its sender lost: its count was 0, every part is there.
    backend = _backend(store_path)
    sent: list = []
    damaged, ids, body, _ = _stuck(backend, monkeypatch, sent=sent)
    other, _, _, _ = _stuck(backend, monkeypatch, sent=sent)
    _damage_count(backend, store_path, damaged)
    _lapse(backend)
    assert backend.recover_chords() == 2
    assert sent == [([1, 1, 1],), ([1, 1, 1],)]
    assert _left(backend, damaged) == _left(backend, other) == []
    assert backend.recover_chords() == 0
    finish_part(backend, damaged, ids[0], body)  # a late copy of a part
    assert len(sent) == 2


def test_a_part_delivered_again_sends_a_complete_chord_whose_count_is_damaged(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, ids, body, sent = _stuck(backend, monkeypatch)
    _damage_count(backend, store_path, gid)
    _lapse(backend)
    finish_part(backend, gid, ids[1], body)
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []


def test_the_owner_of_a_chord_keeps_it_when_its_count_is_damaged(store_path, monkeypatch):
    # Nobody else can have claimed a chord whose count cannot be read: its owner still sends it.
    backend = _backend(store_path)
    gid, _, _, _ = _stuck(backend, monkeypatch)  # claimed by b"lost"
    key = backend.get_key_for_chord(gid)
    _damage_count(backend, store_path, gid)
    assert backend._keep_claim(gid, key, b"lost", 30.0) is True
    assert backend._keep_claim(gid, key, b"another", 30.0) is False
