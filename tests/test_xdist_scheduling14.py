"""The suite's scheduling over pytest-xdist workers (tests/xdist_scheduling.py), checked on a small
generated suite run with ``-n 2 --dist loadgroup`` as ``make test`` runs the real one."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys

import pytest
from helpers import child_env

HERE = os.path.dirname(os.path.abspath(__file__))

GENERATED = """
import os
import time

import pytest


@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with open(os.environ["SETUPS"], "a") as f:
        f.write("started\\n")
    return "started"


@pytest.mark.parametrize("i", range(6))
def test_uses_the_server(server, i):
    time.sleep(0.05)


@pytest.mark.parametrize("i", range(6))
def test_free(i):
    time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[dict[str, set[str]], str]:
    """GENERATED run on two workers: ({test name: workers that ran it}, the module fixture's setups)."""
    tmp_path = tmp_path_factory.mktemp("generated")
    (tmp_path / "test_generated.py").write_text(GENERATED)
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins named: quicker start-up
    env["SETUPS"] = str(tmp_path / "setups")
    plugins = ["-p", "xdist", "-p", "xdist_scheduling", "-p", "no:cacheprovider", "--basetemp=basetemp"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n2", "--dist=loadgroup", "-v", *plugins, "test_generated.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workers: dict[str, set[str]] = collections.defaultdict(set)
    for worker, name in re.findall(r"^\[(gw\d)\] .*PASSED test_generated\.py::(\w+)", done.stdout, re.M):
        workers[name].add(worker)
    assert set(workers) == {"test_grouped", "test_uses_the_server", "test_free"}, done.stdout
    return workers, (tmp_path / "setups").read_text()


def test_a_group_runs_on_one_worker(generated):
    workers, _ = generated
    assert len(workers["test_grouped"]) == 1, workers


def test_a_module_fixture_is_set_up_once_for_its_tests(generated):
    workers, setups = generated
    assert len(workers["test_uses_the_server"]) == 1, workers
    assert setups == "started\n"
