"""Django's own cache-backend test-suite, run against KVCache.

The tests ship in Django's source distribution, not in the installed package,
so this fetches the sdist of the installed Django version from PyPI (once; it
is kept in the user's cache directory), unpacks it, adds
``suite/kv_cache_suite.py`` to its ``tests/cache/`` (and ``suite/kv_session_suite.py``
to its ``tests/sessions_tests/``) and runs it with Django's own ``runtests.py``.
Without network access it skips (and fails under CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile

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


@pytest.fixture(scope="module")
def django_tests_dir(tmp_path_factory):
    """The ``tests/`` directory of the installed Django's source, unpacked once for this module."""
    root = tmp_path_factory.mktemp("django-src")
    with tarfile.open(_sdist(django.get_version())) as tar:
        members = [m for m in tar.getmembers() if "/tests/" in m.name or m.name.endswith("/tests")]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(root, members=members, **safe)
    return next(p for p in root.glob("*/tests") if (p / "runtests.py").exists())


def _runtests(tests_dir, label: str) -> subprocess.CompletedProcess:
    env = child_env()
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "runtests.py", label, "--parallel", "1", "-v", "1"],
        cwd=tests_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )


def test_djangos_cache_suite_passes_on_kvcache(django_tests_dir):
    tests_dir = django_tests_dir
    shutil.copy(os.path.join(HERE, "suite", "kv_cache_suite.py"), tests_dir / "cache" / "kv_cache_suite.py")
    done = _runtests(tests_dir, "cache.kv_cache_suite")
    report = done.stderr[-6000:]
    assert done.returncode == 0, f"Django's cache tests failed on KVCache:\n{report}"
    ran = re.search(r"Ran (\d+) tests", done.stderr)
    assert ran and int(ran.group(1)) >= 100, report  # 138 with Django 5.2 (BaseCacheTests alone: 54)


def test_djangos_session_tests_pass_with_the_cache_on_kvcache(django_tests_dir):
    """The cache and cached_db session engines, and the session middleware on each."""
    target = django_tests_dir / "sessions_tests" / "kv_session_suite.py"
    shutil.copy(os.path.join(HERE, "suite", "kv_session_suite.py"), target)
    done = _runtests(django_tests_dir, "sessions_tests.kv_session_suite")
    report = done.stderr[-6000:]
    assert done.returncode == 0, f"Django's session tests failed on KVCache:\n{report}"
    ran = re.search(r"Ran (\d+) tests", done.stderr)
    assert ran and int(ran.group(1)) >= 140, report  # 239 with Django 5.2, 148 with 4.2
