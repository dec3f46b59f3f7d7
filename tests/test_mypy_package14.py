"""The package itself passes ``mypy --strict``, as configured in pyproject.toml's ``[tool.mypy]``.

tests/test_typing11.py checks what a user's type checker sees of the public API; this checks
every module of kv_backend and of both integrations, so that the annotations the package ships
stay true of its code. mypy is in the dev extra: the check is skipped only where it is not
installed. It runs in a process of its own, in its own xdist group, alongside the rest.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("kv_backend", "integrations/kv_backend_django", "integrations/kv_backend_celery")

pytestmark = [pytest.mark.xdist_group("mypy"), pytest.mark.timeout(900)]


def _modules() -> int:
    return sum(
        name.endswith(".py")
        for package in PACKAGES
        for _, _, names in os.walk(os.path.join(ROOT, package))
        for name in names
    )


def test_the_package_passes_mypy_strict(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the dev extra: pip install -e '.[dev]')")
    proc = subprocess.run(
        # A cache of its own: a cold run, whatever an earlier run (or the developer's) left.
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--cache-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # Every module was checked: none left out of [tool.mypy] files, or skipped as unfound.
    checked = re.search(r"no issues found in (\d+) source files", out)
    assert checked is not None, out
    assert int(checked.group(1)) == _modules(), out
