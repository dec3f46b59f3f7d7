"""What a user's type checker sees of the public API (the packages ship py.typed).

Both checks run in ``make test``: mypy and basedpyright (pyright's engine, the checker behind VS
Code's Python support, with Node.js from a wheel) are in the dev extra. Outside it, the pyright check
takes ``pyright`` where that is installed instead, and is skipped where neither is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "tests", "typecheck", "user_sample.py")


@pytest.mark.parametrize("package", ["kv_backend", "kv_backend_django", "kv_backend_celery"])
def test_each_package_ships_py_typed(package):
    """Without py.typed a type checker ignores an installed package's annotations (PEP 561)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    (folder,) = spec.submodule_search_locations
    assert os.path.isfile(os.path.join(folder, "py.typed")), f"{package} has no py.typed marker"


def test_mypy_strict_on_user_sample(tmp_path):
    """The documented uses type-check under --strict, with the types the docs promise."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy to run this check)")
    from mypy import api

    # As for an installed package: the library's own modules are read for their types, but
    # only the sample's errors are reported (follow_imports = silent).
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        f"mypy_path = {ROOT}:{os.path.join(ROOT, 'integrations')}\n"
        "ignore_missing_imports = True\n"
        "[mypy-kv_backend.*,kv_backend_django.*,kv_backend_celery.*]\n"
        "follow_imports = silent\n"
    )
    out, err, status = api.run(
        ["--strict", "--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), SAMPLE]
    )
    assert status == 0, out + err


def test_pyright_strict_on_user_sample(tmp_path):
    """The same sample under pyright --strict, which resolves some declarations differently."""
    checker = next((m for m in ("basedpyright", "pyright") if importlib.util.find_spec(m) is not None), None)
    if checker is None:
        pytest.skip("neither basedpyright nor pyright is installed (pip install -e '.[dev]' has the first)")
    config = tmp_path / "pyrightconfig.json"
    config.write_text(
        json.dumps(
            {
                "typeCheckingMode": "strict",
                "extraPaths": [ROOT, os.path.join(ROOT, "integrations")],
                "reportMissingModuleSource": False,
            }
        )
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", checker, "-p", str(config), "--pythonpath", sys.executable, SAMPLE],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("pyright did not run within 120 s (it may be fetching Node.js)")
    if proc.returncode not in (0, 1):  # 1: errors found; anything else: pyright could not run
        pytest.skip(f"pyright could not run: {proc.stdout[-500:]}{proc.stderr[-500:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
