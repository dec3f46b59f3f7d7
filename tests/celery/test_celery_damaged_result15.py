"""A task whose stored state is damaged on disk can still store its result.

Before it writes a task's state, the backend reads the stored one (a SUCCESS must stay, a
finished state must not become unfinished again). That read raised CorruptionError when the
stored record failed its checksum (a disk fault), so every later state of the task failed to
be stored, its final result included: the task stayed unreadable for ever.
"""

from __future__ import annotations

import uuid

import celery_helpers
import pytest
from celery import states
from test_celery_chord_damaged15 import damage

from kv_backend.errors import CorruptionError


@pytest.fixture
def damaged(store_path):
    """A backend, and a task id whose stored RETRY is damaged on disk."""
    backend = celery_helpers.make_app(f"kvb://{store_path}").backend
    marker = uuid.uuid4().hex
    backend.mark_as_retry("t1", RuntimeError(marker))
    damage(store_path, marker.encode())
    backend.db.close()  # reopened from the files (this process read the record as it was written)
    with pytest.raises(CorruptionError):
        backend.get_task_meta("t1", cache=False)
    return backend


@pytest.mark.parametrize(
    ("finish", "state"),
    [("done", states.SUCCESS), ("failure", states.FAILURE), ("revoked", states.REVOKED)],
)
def test_a_finished_state_replaces_a_damaged_record(damaged, finish, state):
    backend = damaged
    if finish == "done":
        backend.mark_as_done("t1", 5)
    elif finish == "failure":
        backend.mark_as_failure("t1", ValueError("the last attempt"))
    else:
        backend.mark_as_revoked("t1", "revoked")
    assert backend.get_task_meta("t1", cache=False)["status"] == state
    assert backend.app.AsyncResult("t1").ready()


def test_an_unfinished_state_leaves_a_damaged_record_for_the_final_one(damaged):
    # The damaged record may have held a finished state: a STARTED or RETRY must not replace it.
    backend = damaged
    backend.mark_as_started("t1")
    backend.mark_as_retry("t1", RuntimeError("again"))
    with pytest.raises(CorruptionError):
        backend.get_task_meta("t1", cache=False)
    backend.mark_as_done("t1", 7)
    assert backend.app.AsyncResult("t1").get(timeout=5) == 7
