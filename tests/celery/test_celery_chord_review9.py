"""Review of the stuck-chord recovery: where its thread runs, what it stores and sends, and its list.

Each test proves a defect found in the recovery that landed with #6.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from celery import Celery

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def make_app(url: str, **conf) -> Celery:
    app = Celery("kvb-review9", broker="memory://", backend=url, set_as_current=False)
    app.conf.update(result_extended=True, **conf)
    return app


def _in_child(body) -> None:
    """Run ``body`` in a forked child (a daemon thread must not outlive the test); assert it passed."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            body()
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _recovery_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kvb-chord-recovery"]


# ------------------------------------------------------------- where it runs


def test_pool_child_that_loads_the_backend_after_its_start_runs_the_recovery(store_path):
    # `celery -q worker` prints no banner, so nothing loads this module before the pool
    # forks: no child had a worker_process_init handler, and a chord stuck while no
    # worker ran was only finished once some child ran a chord part (maybe never).
    # A child now starts the recovery when it builds its backend (its first task).
    def body():
        from celery.concurrency import prefork

        app = make_app(f"kvb://{store_path}")
        prefork._process_hostname = "w@h"  # what Celery's process initializer sets in a pool child
        assert _recovery_threads() == []
        app.backend  # noqa: B018 - the first task of the child builds it
        assert len(_recovery_threads()) == 1
        threading.Thread(target=lambda: app.backend).start()  # other threads' backends: no more
        time.sleep(0.05)
        assert len(_recovery_threads()) == 1
        # Not in processes outside a pool child (clients, web processes, the worker's main process).
        prefork._process_hostname = None
        other = make_app(f"kvb://{store_path}")
        other.backend  # noqa: B018
        assert len(_recovery_threads()) == 1

    _in_child(body)
