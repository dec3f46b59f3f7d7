"""A chord whose header is a generator, with Celery 5.3 to 5.5: sent as the generator yields it.

Celery before 5.6 sends a replaced chord part's ``group_index`` with every task of the group that
replaces it, so the backend unrolled every generator header there before sending its first task
(Celery issue #3021; Celery's own ``test_chord::test_generator`` failed on ``kvb://``, passing on
``redis://``). Only the chord made of such a group (its callback carries the part's
``group_index``) is unrolled now; any other generator header is sent lazily, its parts recording
their positions, as with Celery 5.6+. There a group nested in the header takes the chord's own id
and announces its own size under it: only the announcement of the thread sending the chord counts.
"""

from __future__ import annotations

import threading

import kv_backend_celery.chords as backend_module
import pytest
from test_chord_generator13 import _Chord, app  # noqa: F401  (the app fixture)

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


@pytest.fixture(autouse=True)
def _before_5_6(monkeypatch):
    monkeypatch.setattr(backend_module, "_GROUPS_KEEP_TASK_INDEXES", False)


def _announce_elsewhere(backend, gid: str, size: int) -> None:
    """A group nested in the header announcing its size under the chord's id, from another thread."""
    thread = threading.Thread(target=backend.set_chord_size, args=(gid, size))
    thread.start()
    thread.join()


@pytest.mark.parametrize("nested_first", [True, False])
def test_a_generator_header_is_sent_as_it_is_made(app, monkeypatch, nested_first):  # noqa: F811
    announce = (
        (lambda c, i: _announce_elsewhere(c.backend, c.gid, 2) if i == 2 else None) if nested_first else None
    )
    c = _Chord(app, monkeypatch, 4, on_pull=announce)
    assert c.events.index(("send", 0)) < c.events.index(("pull", 3))  # not unrolled first
    assert c.backend._slots_key(c.gid) in c.backend.db
    if not nested_first:
        _announce_elsewhere(c.backend, c.gid, 2)
    for task_id, index in reversed(c.parts):
        assert c.sent == []
        c.finish(task_id, index)
    assert c.sent == [([0, 2, 4, 6],)]
    assert c.left() == []
