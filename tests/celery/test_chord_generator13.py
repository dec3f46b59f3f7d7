"""A chord whose header is a generator sends each header task as the generator yields it.

The chord bookkeeping saved the header's group before sending its first task
(as Celery's generic key-value chord code does), which pulled the whole
generator first: a header of slow or many items went out only once all were
made (Celery issue #3021; Celery's ``test_chord::test_generator``). Celery's
``redis://`` backend sends each task as it is yielded and records each
part's header position as it finishes. Now ``kvb://`` does too: the parts of
such a chord record their position and task id, and the part that completes
the chord saves the group from them, in the batch that counts it, so the
callback gets the results in header order, once, and the take-over and the
recovery of a lost sender work as for any chord.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import celery_helpers
import kv_backend_celery.chords as backend_module
import pytest
from celery import Celery, chain, chord, signals
from celery.app.task import Context
from celery.canvas import Signature
from helpers import exit_code, fork_child
from kv_backend_celery.backend import KVBackend

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


def make_app(url: str, **conf) -> Celery:
    return celery_helpers.make_app(url, "kvb-generator13", **conf)


@pytest.fixture(autouse=True)
def _groups_keep_task_indexes(request, monkeypatch):
    """The in-process tests give each part its index themselves: they test the generator path
    on any Celery (5.6 and later take it; older ones unroll the header, see the last tests)."""
    if "celery_env" not in request.fixturenames:
        monkeypatch.setattr(backend_module, "_GROUPS_KEEP_TASK_INDEXES", True)


def generator_app(url: str, main: str = "kvb-generator13", **conf: object) -> Celery:
    """An app on ``url`` with the two tasks the chords of these tests sign: gen13.add for the header
    and gen13.tsum for the callback (neither is run)."""
    app = celery_helpers.make_app(url, main, **conf)

    @app.task(name="gen13.add", shared=False)
    def add(x, y):  # pragma: no cover - never run, only signed
        return x + y

    @app.task(name="gen13.tsum", shared=False)
    def tsum(values):  # pragma: no cover - never run, only signed
        return sum(values)

    return app


@pytest.fixture
def app(store_path) -> Celery:
    return generator_app(f"kvb://{store_path}", result_chord_join_timeout=0.05)


class _Chord:
    """A chord sent on ``app`` with a generator header of ``n`` additions, as a worker sees its parts.

    ``on_pull(chord, i)`` runs as the generator makes its item ``i``. ``replacing``: the chord is
    sent as Celery's ``Task.replace()`` sends the chord made of a group replacing a chord part
    (with that part's ``group_index``).
    """

    def __init__(self, app: Celery, monkeypatch, n: int, on_pull=None, replacing: bool = False) -> None:
        self.app, self.backend = app, app.backend
        self.events: list[tuple[str, int]] = []
        self.parts: list[tuple[str, int]] = []  # (task id, group_index) of each header task sent
        self.sent: list[tuple] = []  # the callbacks sent
        self.done: set[str] = set()
        self.gid = ""
        monkeypatch.setattr(Signature, "delay", lambda sig, *args, **kw: self.sent.append(args))

        def published(sender=None, body=None, headers=None, **kwargs):
            self.gid = headers["group"]
            self.chord_sig = body[2]["chord"]
            self.parts.append((headers["id"], headers["group_index"]))
            self.events.append(("send", headers["group_index"]))

        def header():
            for i in range(n):
                self.events.append(("pull", i))
                if on_pull is not None:
                    on_pull(self, i)
                yield app.tasks["gen13.add"].s(i, i)

        signals.before_task_publish.connect(published, weak=False)
        try:
            sig = chord(header(), app.tasks["gen13.tsum"].s())
            self.result = (sig.set(group_index=1) if replacing else sig).apply_async()
        finally:
            signals.before_task_publish.disconnect(published)

    def request(self, task_id: str, index: int) -> Context:
        return Context(id=task_id, group=self.gid, chord=self.chord_sig, group_index=index)

    def finish(self, task_id: str, index: int) -> None:
        """The header task ``task_id`` (at ``index``) finishing in a worker: its result stored and counted."""
        self.done.add(task_id)
        self.backend.mark_as_done(task_id, index * 2, request=self.request(task_id, index))

    def left(self) -> list[bytes]:
        """Every key the chord still has (counter, markers, slots, claim, stored callback, saved group)."""
        db = self.backend.db
        keys = [
            *db.keys(prefix=self.backend.get_key_for_chord(self.gid)),
            *db.keys(prefix=self.backend.get_key_for_group(self.gid)),
        ]
        if self.gid in self.backend._firing(db):
            keys.append(self.backend._firing_key())
        return keys


def test_header_tasks_are_sent_as_the_generator_yields_them(app, monkeypatch):
    c = _Chord(app, monkeypatch, 8)
    assert [e for e in c.events if e[0] == "send"] == [("send", i) for i in range(8)]
    # Celery looks a few items ahead (its lazy lists, and the size it announces before the
    # last task), but the first task goes out long before the generator is exhausted.
    assert c.events.index(("send", 0)) < c.events.index(("pull", 4))
    assert c.events.index(("send", 3)) < c.events.index(("pull", 7))
    assert c.result.parent.id == c.gid
    assert [r.id for r in c.result.parent.results] == [t for t, _ in c.parts]


def test_parts_finishing_while_the_header_is_sent_fire_the_callback_once_in_order(app, monkeypatch):
    def finish_sent(c: _Chord, i: int) -> None:
        # The parts sent so far finish (the last sent first) before the generator makes the next item.
        for task_id, index in reversed(c.parts):
            if task_id not in c.done:
                c.finish(task_id, index)

    c = _Chord(app, monkeypatch, 6, on_pull=finish_sent)
    assert 0 < len(c.done) < 6
    assert c.sent == []
    for task_id, index in reversed(c.parts):
        if task_id not in c.done:
            c.finish(task_id, index)
    assert c.sent == [([0, 2, 4, 6, 8, 10],)]  # in header order, whatever order the parts finished in
    assert c.left() == []
    # A part delivered again after the chord fired is ignored and leaves nothing behind.
    c.finish(*c.parts[2])
    assert c.sent == [([0, 2, 4, 6, 8, 10],)]
    assert c.left() == []


def test_part_delivered_again_before_the_end_is_counted_once(app, monkeypatch):
    c = _Chord(app, monkeypatch, 4)
    for i in [2, 0, 0, 3, 2, 1]:
        c.finish(*c.parts[i])
    assert c.sent == [([0, 2, 4, 6],)]
    assert c.left() == []


def test_failed_part_fails_the_callback_with_a_chord_error(app, monkeypatch):
    c = _Chord(app, monkeypatch, 3)
    c.finish(*c.parts[0])
    failed, index = c.parts[1]
    app.backend.mark_as_failure(failed, RuntimeError("part failed"), request=c.request(failed, index))
    c.finish(*c.parts[2])
    assert c.sent == []
    meta = app.backend.get_task_meta(c.result.id)
    assert meta["status"] == "FAILURE"
    assert f"Dependency {failed} raised RuntimeError('part failed')" in str(meta["result"])
    assert c.left() == []


def test_lost_sender_of_a_generator_chord_is_taken_over_by_the_recovery(app, monkeypatch):
    app.backend.chord_claim_min = 0.0
    c = _Chord(app, monkeypatch, 3)
    for task_id, index in c.parts[:2]:
        c.finish(task_id, index)
    last, index = c.parts[2]
    app.backend.mark_as_done(last, 4)
    # Counted (and the group saved from the positions) by a process that then died.
    key = app.backend.get_key_for_chord(c.gid)
    assert app.backend._count_part(key, c.gid, last, 60, b"lost", c.chord_sig, index) == 0
    assert app.backend.recover_chords() == 0  # its claim still holds
    time.sleep(app.backend._chord_claim_ttl() + 0.05)
    assert app.backend.recover_chords() == 1
    assert c.sent == [([0, 2, 4],)]
    assert c.left() == []


def test_completing_part_killed_while_saving_the_group_leaves_nothing_half_done(app, store_path, monkeypatch):
    c = _Chord(app, monkeypatch, 3)
    for task_id, index in c.parts[:2]:
        c.finish(task_id, index)
    before = sorted(c.left())

    def killed_while_saving_the_group():
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        KVBackend._slotted_group = die  # the child's own copy of the class: inside the transaction
        c.finish(*c.parts[2])

    assert exit_code(fork_child(killed_while_saving_the_group)) == -signal.SIGKILL
    fresh = make_app(f"kvb://{store_path}").backend
    assert fresh.get_task_meta(c.parts[2][0])["status"] == "PENDING"  # no result, no count, slots kept
    assert sorted(c.left()) == before
    c.finish(*c.parts[2])  # delivered again
    assert c.sent == [([0, 2, 4],)]
    assert c.left() == []


def test_lost_position_fails_the_chord_rather_than_firing_it_short(app, monkeypatch):
    c = _Chord(app, monkeypatch, 3)
    c.finish(*c.parts[0])
    app.backend.db.delete(app.backend._slot_key(c.gid, 1))  # expired, say
    c.finish(*c.parts[1])
    c.finish(*c.parts[2])
    assert c.sent == []
    meta = app.backend.get_task_meta(c.result.id)
    assert meta["status"] == "FAILURE"
    assert "no longer exists" in str(meta["result"])
    assert [k for k in c.left() if b".part." not in k] == []  # the markers expire with the chord


def test_list_header_still_saves_its_group_first(app, monkeypatch):
    """A header given as a list keeps the state chords always stored: its group, saved before sending."""
    seen = []
    real = KVBackend.set_chord_size

    def spy(self, group_id, size):
        seen.append(self.db.get(self.get_key_for_group(group_id)) is not None)
        return real(self, group_id, size)

    monkeypatch.setattr(KVBackend, "set_chord_size", spy)
    add = app.tasks["gen13.add"]
    result = chord([add.s(1, 1), add.s(2, 2)], app.tasks["gen13.tsum"].s()).apply_async()
    assert seen == [True]
    assert app.backend._slots_key(result.parent.id) not in app.backend.db


# ------------------------------------------------------------------ with workers


def test_generator_chord_on_workers(celery_env):
    """Celery's test_generator, shortened: the last item is made only once the first task has run."""
    m = celery_env.app_module
    first = str(uuid.uuid4())
    ran_first: list[bool] = []

    def header(n: int):
        for i in range(n):
            if i == n - 1:
                deadline = time.monotonic() + 20
                while not m.app.AsyncResult(first).ready() and time.monotonic() < deadline:
                    time.sleep(0.01)
                ran_first.append(m.app.AsyncResult(first).ready())
            if i == 0:
                yield m.add.s(i, i).set(task_id=first)
            elif i % 2:
                yield chain(m.add.s(i, 0), m.add.s(i))  # a chain's last task is the part
            else:
                yield m.add.s(i, i)

    result = chord(header(6), m.echo.s()).apply_async()
    assert result.get(timeout=30) == {"args": [[0, 2, 4, 6, 8, 10]], "kwargs": {}}
    assert ran_first == [True]


def test_before_celery_5_6_a_generator_header_is_unrolled_and_its_group_saved_first(app, monkeypatch):
    """Celery 5.3 to 5.5 send a replaced task's own group_index with every task of the group that
    replaces it (a chord of its own): the parts all report index 0, so the group cannot be
    ordered from them (the results came back as [0, 2, 1]). There such a header is unrolled and
    its group saved first, as for a list (test_generator_lazy_before_5_6_19.py: other chords)."""
    monkeypatch.setattr(backend_module, "_GROUPS_KEEP_TASK_INDEXES", False)
    c = _Chord(app, monkeypatch, 4, replacing=True)
    sends = [i for i, e in enumerate(c.events) if e[0] == "send"]
    assert sends and min(sends) > c.events.index(("pull", 3))  # the whole generator first
    saved = [r.id for r in c.backend.restore_group(c.gid).results]
    assert saved == [t for t, _ in c.parts]  # saved in header order before any part ran
    assert c.backend._slots_key(c.gid) not in c.backend.db  # no slots: the list's bookkeeping
    for pos, (task_id, _) in reversed(list(enumerate(c.parts))):  # in reverse, all with index 0
        c.backend.mark_as_done(task_id, pos * 2, request=c.request(task_id, 0))
    assert c.sent == [([0, 2, 4, 6],)]
    assert c.left() == []
