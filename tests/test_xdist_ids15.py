"""Tests in an xdist group keep their plain pytest ids under ``-n 2 --dist loadgroup``
(tests/xdist_scheduling.py): a report names ``test[RESP3]``, not ``test[RESP3]@group]``, and that id
reruns the test."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers import child_env

HERE = os.path.dirname(os.path.abspath(__file__))

GENERATED = """
import os

import pytest


@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("p", [2, 3, 4, 5], ids=lambda p: f"RESP{p}")
def test_grouped(p):
    assert p != 3


@pytest.mark.parametrize("i", range(4))
def test_free(i):
    pass
"""


def _pytest(cwd: str, *args: str) -> subprocess.CompletedProcess:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins named: quicker start-up
    # (--basetemp: not pytest-of-<user> in the TMPDIR of the processes this session starts)
    plugins = ["-p", "xdist", "-p", "xdist_scheduling", "-p", "no:cacheprovider", "--basetemp=basetemp"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-n2", "--dist=loadgroup", "-v", "-rA", *plugins, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[str, str]:
    """(the directory of GENERATED, the output of its run on two workers)."""
    tmp_path = tmp_path_factory.mktemp("generated")
    (tmp_path / "test_generated.py").write_text(GENERATED)
    done = _pytest(str(tmp_path), "test_generated.py")
    assert done.returncode == 1, done.stdout + done.stderr  # test_grouped[RESP3] fails
    return str(tmp_path), done.stdout


def test_reports_name_the_plain_ids(generated):
    _, out = generated
    summary = re.findall(r"^(PASSED|FAILED) (\S+)", out, re.M)
    assert ("FAILED", "test_generated.py::test_grouped[RESP3]") in summary, out
    assert len(summary) == 8 and not any("@" in nodeid for _, nodeid in summary), out
    progress = re.findall(r"^\[gw\d\] .*(?:PASSED|FAILED) (\S+)", out, re.M)
    assert len(progress) == 8 and not any("@" in nodeid for nodeid in progress), out


def test_the_group_still_runs_on_one_worker(generated):
    _, out = generated
    workers = set(re.findall(r"^\[(gw\d)\] .*(?:PASSED|FAILED) test_generated\.py::test_grouped", out, re.M))
    assert len(workers) == 1, out


def test_a_reported_id_reruns_its_test(generated):
    cwd, _ = generated
    done = _pytest(cwd, "test_generated.py::test_grouped[RESP3]")
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^FAILED test_generated\.py::test_grouped\[RESP3\] ", done.stdout, re.M), done.stdout
    assert re.search(r"=+ 1 failed in ", done.stdout), done.stdout  # that one alone
