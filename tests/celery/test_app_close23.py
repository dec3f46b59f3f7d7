"""``app.close()`` (also the end of ``with Celery(...) as app``) releases the result store the app's
kvb:// backend opened, its files and locks; the backend still works after it (the store opens again),
and a store another open app of the process shares stays open."""

from __future__ import annotations

import os
import threading

from celery import Celery
from celery_helpers import make_app


def _open_fds_under(path: str) -> list[str]:
    """This process's descriptors on files under ``path``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(path + os.sep):
            found.append(target)
    return found


def test_close_releases_the_store_and_the_backend_reopens_it(tmp_path):
    path = str(tmp_path / "results")
    app = make_app(f"kvb://{path}")
    app.backend.store_result("t1", 42, "SUCCESS")
    db = app.backend.db
    assert _open_fds_under(path)
    app.close()
    assert db.closed
    assert _open_fds_under(path) == []
    assert app.backend.get_task_meta("t1", cache=False)["result"] == 42  # opened again
    app.backend.store_result("t2", 43, "SUCCESS")
    assert app.backend.db is not db and not app.backend.db.closed
    app.close()
    assert _open_fds_under(path) == []


def test_with_block_releases_the_store_of_every_thread_s_backend(tmp_path):
    path = str(tmp_path / "results")
    with Celery("kvb-test", broker="memory://", backend=f"kvb://{path}", set_as_current=False) as app:
        app.backend.store_result("t1", 1, "SUCCESS")
        other: list = []
        thread = threading.Thread(target=lambda: other.append(app.backend.get_task_meta("t1")))
        thread.start()
        thread.join()
        assert other[0]["result"] == 1
    assert _open_fds_under(path) == []


def test_a_store_another_open_app_uses_stays_open(tmp_path):
    url = f"kvb://{tmp_path / 'results'}"
    first, second = make_app(url), make_app(url)
    first.backend.set("a", "1")
    assert second.backend.get("a") == b"1"
    shared = second.backend.db
    assert first.backend.db is shared
    first.close()
    assert not shared.closed
    assert second.backend.get("a") == b"1"
    second.close()
    assert shared.closed
