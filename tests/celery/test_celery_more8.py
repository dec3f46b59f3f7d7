"""More tests of the kvb:// Celery result backend, compared with Celery's redis:// backend."""

from __future__ import annotations

import threading

import pytest
from celery import Celery, chord
from celery.exceptions import ChordError
from kv_backend_celery.backend import KVBackend

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]

TIMEOUT = 30


def make_app(url: str, **conf) -> Celery:
    app = Celery("kvb-more8", broker="memory://", backend=url, set_as_current=False)
    app.conf.update(result_extended=True, **conf)
    return app


@pytest.fixture
def backend(store_path) -> KVBackend:
    return make_app(f"kvb://{store_path}").backend


# ------------------------------------------------------------------ waiting


def test_get_raises_the_failed_parent_not_the_chord_error_it_left(backend):
    # As with redis://: when a chord's header fails while the client waits on the
    # body, get() raises the header's error, not the ChordError the failure then
    # stores on the body (which it raised only when the failure landed before get()).
    app = backend.app
    header = app.GroupResult("hdr", [app.AsyncResult("hdr-0"), app.AsyncResult("hdr-1")])
    body = app.AsyncResult("body", parent=header)

    def fail_the_chord():
        backend.mark_as_done("hdr-0", 1)
        backend.mark_as_failure("hdr-1", ValueError("header part broke"))
        backend.mark_as_failure("body", ChordError("Dependency hdr-1 raised ValueError('header part broke')"))

    timer = threading.Timer(0.1, fail_the_chord)
    timer.start()
    try:
        with pytest.raises(ValueError, match="header part broke"):
            body.get(timeout=TIMEOUT)
    finally:
        timer.join()
    # Without parents to follow, the body's own failure is what get() raises.
    with pytest.raises(ChordError):
        app.AsyncResult("body").get(timeout=TIMEOUT)


def test_chord_header_failure_raises_the_header_error_with_workers(celery_env):
    m = celery_env.app_module
    for _ in range(3):
        r = chord([m.add.s(1, 1), m.fail.s("header broke")])(m.tsum.s())
        with pytest.raises(ValueError, match="header broke"):
            r.get(timeout=TIMEOUT)
