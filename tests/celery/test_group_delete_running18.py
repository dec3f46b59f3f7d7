"""``GroupResult.delete()`` of a running chord's header: the group is gone for readers, the chord ends.

``result.parent.delete()`` while the chord ran deleted the saved group the part completing the
chord reads, and the chord failed with "GroupResult ... no longer exists", where ``redis://``
gives the callback every value. The group now reads as deleted at once (``restore()`` gives
None), the chord keeps it (``chord-unlock-<group id>.group``) and deletes it at its end. A group
lost otherwise (a record expired, or dropped from the disk) still fails the chord with a
ChordError (test_celery_backend.py::test_chord_with_lost_group).
"""

from __future__ import annotations

import time

import celery_helpers
import pytest
import test_nested_order18
from celery import chain, chord, group
from celery.app.task import Context
from celery_helpers import finish_part, make_chord
from kv_backend_celery.backend import KVBackend

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


def _backend(store_path: str, **conf) -> KVBackend:
    backend = celery_helpers.make_app(f"kvb://{store_path}", "kvb-gdel18", **conf).backend
    backend.chord_claim_min = 0.0  # with a short join timeout, a lost sender's claim lapses at once
    return backend


def _chord_keys(backend: KVBackend, gid: str) -> list[bytes]:
    """Every key of the chord and of its group that is still stored."""
    db = backend.db
    return [*db.keys(prefix=backend.get_key_for_chord(gid)), *db.keys(prefix=backend.get_key_for_group(gid))]


@pytest.mark.parametrize("finished", [0, 1, 2])
def test_chord_whose_group_is_deleted_while_it_runs_gets_every_value(store_path, monkeypatch, finished):
    backend = _backend(store_path)
    app = backend.app
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:finished]:
        finish_part(backend, gid, i, body, value=ids.index(i))
    app.GroupResult.restore(gid, backend=backend).delete()  # result.parent.delete()
    assert app.GroupResult.restore(gid, backend=backend) is None  # gone for readers at once
    assert backend.restore_group(gid, cache=False) is None
    for i in ids[finished:]:
        finish_part(backend, gid, i, body, value=ids.index(i))
    assert sent == [([0, 1, 2],)]
    assert backend.get_task_meta(body.id)["status"] == "PENDING"  # no ChordError stored
    assert _chord_keys(backend, gid) == []  # what the chord kept went with its end


def test_group_deleted_twice_or_saved_again_while_the_chord_runs(store_path, monkeypatch):
    backend = _backend(store_path)
    app = backend.app
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    finish_part(backend, gid, ids[0], body)
    header = app.GroupResult.restore(gid, backend=backend)
    header.delete()
    header.delete()  # nothing left to delete: the chord keeps its copy
    finish_part(backend, gid, ids[1], body)
    header.save()
    assert app.GroupResult.restore(gid, backend=backend).id == gid
    finish_part(backend, gid, ids[2], body)
    assert sent == [([1, 1, 1],)]
    assert _chord_keys(backend, gid) == []


def test_kept_group_lives_as_the_group_would(store_path, monkeypatch):
    backend = _backend(store_path, result_expires=600)
    app = backend.app
    gid, ids, body, _ = make_chord(backend, monkeypatch)
    finish_part(backend, gid, ids[0], body)
    group_key = backend.get_key_for_group(gid)
    left = backend.db.ttl(group_key)
    app.GroupResult.restore(gid, backend=backend).delete()
    kept = backend._kept_group_key(gid)
    assert group_key not in backend.db
    assert left - 5 < backend.db.ttl(kept) <= left  # a chord that never ends leaves nothing for ever
    backend.expire(kept, 30)
    finish_part(backend, gid, ids[1], body)  # each part keeps the group alive, where it is
    assert backend.db.ttl(kept) > 500


def test_failed_part_still_names_its_own_error(store_path, monkeypatch):
    backend = _backend(store_path)
    app = backend.app
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    app.GroupResult.restore(gid, backend=backend).delete()
    finish_part(backend, gid, ids[0], body)
    request = Context(id=ids[1], group=gid, chord=dict(body))
    backend.mark_as_failure(ids[1], ValueError("part one failed"), request=request)
    finish_part(backend, gid, ids[2], body)
    assert sent == []
    meta = backend.get_task_meta(body.id)
    assert meta["status"] == "FAILURE"
    assert "part one failed" in str(meta["result"]) and "no longer exists" not in str(meta["result"])
    assert _chord_keys(backend, gid) == []


def test_lost_sender_of_a_chord_whose_group_was_deleted_is_recovered(store_path, monkeypatch):
    # The part completing the chord died before it read the group; the group was deleted next.
    backend = _backend(store_path, result_chord_join_timeout=0.05)
    app = backend.app
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    backend.mark_as_done(ids[-1], 1)
    assert backend._count_part(backend.get_key_for_chord(gid), gid, ids[-1], 60, b"lost", dict(body)) == 0
    app.GroupResult.restore(gid, backend=backend).delete()
    time.sleep(backend._chord_claim_ttl() + 0.05)
    assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],)]
    assert _chord_keys(backend, gid) == []


def test_group_of_no_running_chord_is_deleted_at_once(store_path, monkeypatch):
    backend = _backend(store_path)
    app = backend.app
    saved = app.GroupResult("plain-group", [app.AsyncResult("a"), app.AsyncResult("b")])
    saved.save(backend=backend)
    saved.delete(backend=backend)
    assert _chord_keys(backend, "plain-group") == []
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids:
        finish_part(backend, gid, i, body)
    app.GroupResult(gid, [app.AsyncResult(i) for i in ids]).save(backend=backend)  # after the end
    app.GroupResult(gid, []).delete(backend=backend)
    assert sent == [([1, 1, 1],)]
    assert _chord_keys(backend, gid) == []


def test_header_deleted_while_the_chord_runs_on_workers_as_with_redis(workers):
    """``result.parent.delete()`` right after sending, on kvb:// and redis:// workers at once."""
    sent = {}
    for name, app in workers.items():
        slow, mul, collect = (app.tasks[f"nest18.{task}"] for task in ("slow", "mul", "collect"))
        sent[name] = {"tasks": chord([slow.s(i, 0.3) for i in range(3)])(collect.s())}
        # (before Celery 5.6 redis:// can fire this one early, missing a value, or never: see
        # test_nested_order18.SHARED_NESTED_IDS)
        if name == "kvb" or not test_nested_order18.SHARED_NESTED_IDS:
            sent[name]["chain to a group"] = chord(
                [chain(slow.s(1, 0.3), group(mul.s(10), mul.s(20))), slow.s(4, 0.3)]
            )(collect.s())
        for result in sent[name].values():
            result.parent.delete()
            assert app.GroupResult.restore(result.parent.id) is None
    got = {name: {c: r.get(timeout=30) for c, r in results.items()} for name, results in sent.items()}
    assert got["kvb"]["tasks"] == got["redis"]["tasks"] == [0, 1, 2]
    # redis:// falls back to its flat list of the parts' values; kvb:// keeps the header's shape.
    if "chain to a group" in got["redis"]:
        assert sorted(got["redis"]["chain to a group"]) == [4, 10, 20]  # (in the order they finished)
    assert got["kvb"]["chain to a group"] == [[10, 20], 4]
    app = workers["kvb"]
    for result in sent["kvb"].values():
        assert _chord_keys(app.backend, result.parent.id) == []
