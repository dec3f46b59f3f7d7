"""Django's own cache-backend test-suite, run against KVCache.

The tests ship in Django's source distribution, not in the installed package,
so this fetches the sdist of the installed Django version from PyPI (once; it
is kept in the user's cache directory), unpacks its tests (once too, next to it),
copies them for the run, adds ``suite/kv_cache_suite.py`` to the copy's ``tests/cache/``
(and ``suite/kv_session_suite.py`` to its ``tests/sessions_tests/``) and runs it with
Django's own ``runtests.py``. Without network access it skips (and fails under CI).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import django
import pytest
from helpers import child_env

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = [pytest.mark.xdist_group("django-suite"), pytest.mark.timeout(600)]


def _sdist(version: str) -> str:
    cache = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kv_backend-tests"
    )
    os.makedirs(cache, exist_ok=True)

    def cached() -> str | None:
        names = [n for n in os.listdir(cache) if n.lower() == f"django-{version}.tar.gz"]
        return os.path.join(cache, names[0]) if names else None

    path = cached()
    if path is not None:
        return path
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    done = subprocess.run(
        [*cmd, f"django=={version}", "-d", cache], capture_output=True, text=True, timeout=300
    )
    path = cached()
    if path is not None:
        return path
    message = f"cannot download Django {version}'s source distribution: {done.stderr.strip()[-300:]}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _unpacked(archive: str) -> str:
    """The ``tests/`` directory of the Django sdist ``archive``, unpacked once next to it (in a directory
    named for the sdist's SHA-256, so another download of the same version is unpacked anew) and
    never written to: unpacking took 4 to 6 s of every run. A process that finds it missing
    unpacks it beside it and renames it into place, so one that runs at the same time never sees
    a part of it (and removes what a run killed while unpacking left)."""
    with open(archive, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = os.path.dirname(archive)
    done = os.path.join(cache, f"{os.path.basename(archive)[: -len('.tar.gz')].lower()}-tests-{digest}")
    if not os.path.isdir(done):
        for name in os.listdir(cache):  # (what a run killed while unpacking left, an hour ago or more)
            stale = os.path.join(cache, name)
            try:
                if name.startswith(".unpacking-") and os.path.getmtime(stale) < time.time() - 3600:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                continue  # (removed meanwhile)
        part = tempfile.mkdtemp(prefix=".unpacking-", dir=cache)
        try:
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if "/tests/" in m.name or m.name.endswith("/tests")]
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(part, members=members, **safe)
            os.rename(part, done)
        except OSError:
            if not os.path.isdir(done):  # (else another process renamed its own into place first)
                raise
        finally:
            shutil.rmtree(part, ignore_errors=True)
    return next(
        os.path.join(done, n, "tests")
        for n in os.listdir(done)
        if os.path.exists(os.path.join(done, n, "tests", "runtests.py"))
    )


#: The directories of Django's ``tests/`` that the runs below need, beside its files (runtests.py,
#: the settings): the two test packages run (they import nothing of the others) and the templates of
#: runtests.py's settings.
NEEDED_DIRS = ("cache", "sessions_tests", "templates")


@pytest.fixture(scope="module")
def django_tests_dir(tmp_path_factory):
    """A copy, for this module, of what the runs need of the ``tests/`` directory of the installed
    Django's source: the tests add their suites to it, and Django's runs write their bytecode there.
    (The whole directory, 2,500 files, took 2.5 to 4 s to copy; runtests.py lists the test packages
    it finds, and runs those of the labels it is given.)"""
    unpacked = _unpacked(_sdist(django.get_version()))
    tests = tmp_path_factory.mktemp("django-src") / os.path.basename(os.path.dirname(unpacked)) / "tests"
    tests.mkdir(parents=True)
    for entry in os.scandir(unpacked):
        if entry.is_file():
            shutil.copy2(entry.path, tests / entry.name)
        elif entry.name in NEEDED_DIRS:
            shutil.copytree(entry.path, tests / entry.name)
    return tests


def _runtests(tests_dir, label: str, part: str | None = None) -> subprocess.Popen:
    """Start Django's ``runtests.py`` on ``label`` (only the tests of ``part``, if given: see
    ``PARTS`` in suite/kv_cache_suite.py); ``_finish`` waits for it."""
    env = child_env()
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if part is not None:
        env["KV_SUITE_PART"] = part
    return subprocess.Popen(
        [sys.executable, "runtests.py", label, "--parallel", "1", "-v", "1"],
        cwd=tests_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, what: str) -> int:
    """Wait for a ``runtests.py`` that ``_runtests`` started; check that it passed; how many tests ran."""
    try:
        _, err = proc.communicate(timeout=500)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = err[-6000:]
    assert proc.returncode == 0, f"Django's {what} failed on KVCache:\n{report}"
    ran = re.search(r"Ran (\d+) tests?", err)
    assert ran and int(ran.group(1)) > 0, report
    return int(ran.group(1))


# The parts of Django's cache tests (suite/kv_cache_suite.py's PARTS, and the rest): they run side by
# side, so the suite takes about as long as its longest wait (test_touch's 7 s) instead of their sum.
CACHE_PARTS = ("touch", "expiry", "view_decorator", "page_timeout", "rest")


def test_djangos_cache_suite_passes_on_kvcache(django_tests_dir):
    tests_dir = django_tests_dir
    shutil.copy(os.path.join(HERE, "suite", "kv_cache_suite.py"), tests_dir / "cache" / "kv_cache_suite.py")
    procs = [_runtests(tests_dir, "cache.kv_cache_suite", part) for part in CACHE_PARTS]
    try:
        ran = {
            part: _finish(proc, f"cache tests ({part})")
            for part, proc in zip(CACHE_PARTS, procs, strict=True)
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sum(ran.values()) >= 100, ran  # 141 with Django 5.2.20, 169 with 6.1.3 (BaseCacheTests alone: 54)


def test_djangos_session_tests_pass_with_the_cache_on_kvcache(django_tests_dir):
    """The cache and cached_db session engines, and the session middleware on each."""
    target = django_tests_dir / "sessions_tests" / "kv_session_suite.py"
    shutil.copy(os.path.join(HERE, "suite", "kv_session_suite.py"), target)
    ran = _finish(_runtests(django_tests_dir, "sessions_tests.kv_session_suite"), "session tests")
    assert ran >= 140, ran  # 239 with Django 5.2.20, 238 with 6.1.3, 148 with 4.2
