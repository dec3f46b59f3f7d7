"""The temporary directory of the processes a test session starts (loaded by tests/conftest.py).

The tests SIGKILL children on purpose (Celery workers, servers, writers in crash loops).
multiprocessing (and Celery's billiard) makes a ``pymp-*`` directory in the temporary directory
of a process that needs one and removes it at exit, which a killed process never reaches: every
run left a few in /tmp. The session's processes (pytest-xdist's workers and everything the tests
start) get ``TMPDIR`` under a directory of the session's own; at the end its ``pymp-*``
directories are removed, and anything else found there is named on stderr and left in place: a
temporary file the project (or a test) leaks stays visible.

The pytest process itself keeps the usual temporary directory (pytest's ``tmp_path`` and its
retention of the last runs' directories live there).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

SESSION_TMPDIR = pytest.StashKey[tuple[str, "str | None"]]()


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: its TMPDIR is the one the controller made
    tempfile.gettempdir()  # fixed for this process before TMPDIR changes
    path = tempfile.mkdtemp(prefix="kvb-tests-tmp-")
    os.chmod(path, 0o1777)  # as /tmp: tests run children as another user (nobody)
    config.stash[SESSION_TMPDIR] = (path, os.environ.get("TMPDIR"))
    os.environ["TMPDIR"] = path


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION_TMPDIR not in config.stash:
        return
    path, previous = config.stash[SESSION_TMPDIR]
    if previous is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = previous
    left = sorted(name for name in os.listdir(path) if not remove_multiprocessing_dir(path, name))
    if left:
        print(f"temporary files left by the tests' processes, in {path}: {', '.join(left)}", file=sys.stderr)
    else:
        os.rmdir(path)


def remove_multiprocessing_dir(path: str, name: str) -> bool:
    """Remove ``name`` in ``path`` if it is the directory multiprocessing gives a process."""
    entry = os.path.join(path, name)
    if not name.startswith("pymp-") or os.path.islink(entry) or not os.path.isdir(entry):
        return False
    shutil.rmtree(entry)
    return True
