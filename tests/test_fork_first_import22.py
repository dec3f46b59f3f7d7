"""A child forked while another thread makes the first use of a module kv_backend imports at first use.

``import kv_backend`` leaves out ``restore``'s backup machinery, the front ends other than ``Store``
(``kv_backend.shelve``...), the module ``Store.clear()`` and ``popitem()`` need, the dataclass of a
merge's report and ``json`` for a JSON store: each is imported by its first use. A fork in one
thread while another thread was importing one (gunicorn ``--preload``, a Celery prefork pool, a
``multiprocessing`` fork) left the child the module's import lock, held by a thread the child has
not: its own first use of the module hung for ever. A fork now waits for such an import to end
(kv_backend/lazy.py), and the child uses the module.
"""

from __future__ import annotations

import pytest
from helpers import run_python

_FORK_DURING_FIRST_USE = """
import importlib.abc, os, signal, sys, threading, time
import kv_backend
from kv_backend import DB, Store

MODULE, PATH = sys.argv[1], sys.argv[2]
entered = threading.Event()


class SlowFinder(importlib.abc.MetaPathFinder):
    # Holds the import lock of MODULE for a while, as a thread importing it on a loaded machine does.
    def find_spec(self, name, path=None, target=None):
        if name == MODULE and threading.current_thread() is not threading.main_thread():
            entered.set()
            time.sleep(0.5)
        return None


def first_use():
    if MODULE == "kv_backend.backup":
        assert callable(kv_backend.restore)
    elif MODULE == "kv_backend.shelve":
        with kv_backend.shelve.open(os.path.join(PATH, "shelf"), "c") as shelf:
            shelf["k"] = [1]
    elif MODULE == "kv_backend.structures.layout":
        with Store(os.path.join(PATH, "store")) as store:
            store["k"] = 1
            store.clear()
    elif MODULE == "kv_backend.merge_report":
        with DB(os.path.join(PATH, "db")) as db:
            db.put(b"k", b"v")
            db.merge(wait=True)
    elif MODULE == "json":
        with Store(os.path.join(PATH, "json"), serializer="json") as store:
            store["k"] = [1]
            assert store["k"] == [1]


assert MODULE not in sys.modules
sys.meta_path.insert(0, SlowFinder())
user = threading.Thread(target=first_use)
user.start()
assert entered.wait(10)
pid = os.fork()
if pid == 0:
    signal.alarm(10)  # a child that hangs dies of SIGALRM
    first_use()
    os._exit(0)
_, status = os.waitpid(pid, 0)
user.join()
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize(
    "module",
    [
        "kv_backend.backup",
        "kv_backend.shelve",
        "kv_backend.structures.layout",
        "kv_backend.merge_report",  # (the dataclass of a merge's report, made by a first merge)
        "json",  # (by a first JSON store)
    ],
)
def test_a_child_forked_during_another_threads_first_use_can_use_the_module(module, tmp_path):
    out = run_python(_FORK_DURING_FIRST_USE, module, str(tmp_path), timeout=60)
    assert out.stdout.strip() == "0", out.stdout + out.stderr


def test_a_fork_does_not_wait_for_its_own_threads_import(tmp_path):
    """A fork made by the importing thread itself (a module that forks as it is imported) goes on at
    once: the fork waits only for the imports of other threads."""
    out = run_python(
        """
        import os, threading, time
        from kv_backend import lazy

        lazy._importing[threading.get_ident()] = 1  # (as inside load() in this thread)
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print(time.monotonic() - t0 < 5)
        """,
        timeout=60,
    )
    assert out.stdout.strip() == "True"
