"""``GroupResult.delete()`` of a running chord whose header is a generator, before its last part.

No group is saved for such a header until its last part completes it (see
test_chord_generator13.py): the delete found nothing to delete, and the completing part then saved
the group, which ``GroupResult.restore()`` gave back again from then until the chord's end, after
it had been deleted (``redis://`` saves no group for such a header, and ``restore()`` gives None
throughout). The delete is now noted with the chord, and the completing part keeps the group with
the chord (``chord-unlock-<group id>.group``), as for a group deleted after it was saved: readers
find it deleted, and the callback still gets every value.
"""

from __future__ import annotations

import kv_backend_celery.chords as backend_module
import pytest
from celery import chord
from celery.canvas import Signature
from test_chord_generator13 import _Chord, app  # noqa: F401  (the app fixture)

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


@pytest.fixture(autouse=True)
def _generator_path(request, monkeypatch):
    """The generator path on any Celery in the tests run in this process (5.6 and later take it;
    they give each part its index); the workers' test takes the path of the Celery it runs."""
    if "workers" not in request.fixturenames:
        monkeypatch.setattr(backend_module, "_GROUPS_KEEP_TASK_INDEXES", True)


@pytest.mark.parametrize("finished_before", [0, 2])
def test_a_generator_header_deleted_before_its_end_stays_deleted(app, monkeypatch, finished_before):  # noqa: F811
    c = _Chord(app, monkeypatch, 3)
    seen: list = []

    def send(sig, *args, **kwargs):  # the callback, sent once the chord completes
        seen.append(app.GroupResult.restore(c.gid))
        c.sent.append(args)

    monkeypatch.setattr(Signature, "delay", send)
    for task_id, index in c.parts[:finished_before]:
        c.finish(task_id, index)
    c.result.parent.delete()
    assert app.GroupResult.restore(c.gid) is None
    for task_id, index in c.parts[finished_before:]:
        c.finish(task_id, index)
    assert c.sent == [([0, 2, 4],)]
    assert seen == [None]  # deleted for every reader, also while the callback was sent
    assert app.GroupResult.restore(c.gid) is None
    assert c.left() == []


def test_a_generator_header_not_deleted_is_read_while_its_callback_is_sent(app, monkeypatch):  # noqa: F811
    c = _Chord(app, monkeypatch, 2)
    seen: list = []
    monkeypatch.setattr(
        Signature,
        "delay",
        lambda sig, *args, **kw: (seen.append(app.GroupResult.restore(c.gid)), c.sent.append(args)),
    )
    for task_id, index in c.parts:
        c.finish(task_id, index)
    assert c.sent == [([0, 2],)]
    assert [r.id for r in seen[0].results] == [t for t, _ in c.parts]
    assert c.left() == []


def test_deleted_as_with_redis_on_workers(workers):
    """A generator header deleted right after sending, on kvb:// and redis:// workers at once."""
    sent = {}
    for name, on in workers.items():
        slow, collect = on.tasks["nest18.slow"], on.tasks["nest18.collect"]
        sent[name] = chord((slow.s(i, 0.2 * (3 - i)) for i in range(4)), collect.s())()
        sent[name].parent.delete()
    for name, result in sent.items():
        assert result.get(timeout=30) == [0, 1, 2, 3], name
        assert workers[name].GroupResult.restore(result.parent.id) is None, name
