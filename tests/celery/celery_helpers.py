"""Helpers of the Celery tests: apps on a kvb:// URL, and chords built directly on a KVBackend."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery
from celery.app.task import Context


def make_app(url: str, main: str = "kvb-test", **conf: Any) -> Celery:
    """A Celery app with results at ``url``, an in-memory broker and extended results, not made current."""
    app = Celery(main, broker="memory://", backend=url, set_as_current=False)
    app.conf.update(result_extended=True, **conf)
    return app


def make_chord(
    backend: Any, monkeypatch: Any, parts: int = 3, sent: list | None = None, announce: bool = True
):
    """A chord of ``parts`` parts on ``backend``, size announced (unless not ``announce``: the client
    announces it before sending the last part); the callbacks it sends go to ``sent``.

    Returns ``(group id, part ids, callback signature, sent)``.
    """
    from celery.canvas import Signature

    app = backend.app

    @app.task(name=f"chords.tsum.{uuid.uuid4()}", shared=False)
    def tsum(values):  # pragma: no cover - never run, only signed
        return sum(values)

    sent = [] if sent is None else sent
    monkeypatch.setattr(Signature, "delay", lambda self, *args, **kw: sent.append(args))
    gid = str(uuid.uuid4())
    ids = [f"{gid}-{i}" for i in range(parts)]
    body = tsum.s()
    body.freeze()
    backend.apply_chord((gid, [app.AsyncResult(i) for i in ids]), body)
    if announce:
        backend.set_chord_size(gid, parts)
    return gid, ids, body, sent


def finish_part(backend: Any, gid: str, task_id: str, body: Any, value: Any = 1) -> None:
    """A header part finishing (or being delivered again): store its result, then count it."""
    backend.mark_as_done(task_id, value, request=Context(id=task_id, group=gid, chord=dict(body)))


class CountingList(list):
    """A ``sent`` list whose appends, in whichever process, also count in the store under ``key``."""

    def __init__(self, backend: Any, key: bytes) -> None:
        super().__init__()
        self.backend, self.key = backend, key

    def append(self, item: Any) -> None:
        super().append(item)
        self.backend.db.incr(self.key)
