"""Celery app for the chord recovery worker test: a pool process killed while it sends a chord's callback.

The broker, result store and side store come from the environment. Claims
lapse within about a second and worker processes look for lost chords every
0.1 s, so a lost callback is sent again quickly.
"""

from __future__ import annotations

import os
import signal

from celery import Celery
from kv_backend_celery.backend import KVBackend

from kv_backend import DB

BROKER, BACKEND = os.environ["KVB_TEST_BROKER"], os.environ["KVB_TEST_BACKEND"]
app = Celery("kvb_chord_kill_app", broker=BROKER, backend=BACKEND)
app.conf.update(
    result_extended=True,
    result_chord_join_timeout=0.2,
    task_publish_retry_policy={"max_retries": 0, "interval_start": 0, "interval_step": 0, "interval_max": 0},
    broker_connection_timeout=0.5,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
)
KVBackend.chord_claim_min = 0.0
KVBackend.chord_recovery_interval = 0.1

_side: DB | None = None


def side() -> DB:
    global _side
    if _side is None:
        _side = DB(os.environ["KVB_TEST_SIDE"])
    return _side


_publish = KVBackend._publish_callback


def _publish_or_die(self, callback, values):
    """Kill this pool process when it sends the callback of a chord tagged to die (once per tag)."""
    tag, when = callback.args[-2:]
    if when == "before" and side().incr(f"killed-{tag}".encode()) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    result = _publish(self, callback, values)
    if when == "after" and side().incr(f"killed-{tag}".encode()) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return result


KVBackend._publish_callback = _publish_or_die


@app.task
def part(i: int) -> int:
    return i


@app.task
def collect(values: list, tag: str, when: str) -> dict:
    """The chord's callback: counts its runs in the side store."""
    return {"sum": sum(values), "runs": side().incr(f"runs-{tag}".encode())}
