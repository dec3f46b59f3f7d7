"""benchmarks/soak_django.py tells what a SIGKILLed Celery main process took with it.

Its report gave one count ("lost ...: 4") and lines such as "<id> never finished", with no word of
whether the id was a task or a group, of how many kills of the main process the count came from, or
of when the work was sent against those kills, which comparing the brokers over seeds needs. It now
counts tasks, groups and chords apart, names the kills, and gives each loss the times of the kills
from its sending.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _soak(tmp_path: Path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("soak_django_under_test", BENCHMARKS / "soak_django.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    args = argparse.Namespace(seed=1, workdir=str(tmp_path / "soak"), preload=False, clients=8)
    return module.Soak(args)


def test_a_loss_gives_the_times_of_the_kills_from_its_sending(tmp_path):
    soak = _soak(tmp_path)
    soak.main_kills = [10.0, 12.5, 50.0]
    assert soak.since_main_kill(10.4) == "main process killed 0.40 s before, 2.10 s after it was sent"
    assert soak.since_main_kill(45.0) == "main process killed 5.00 s after it was sent"


def test_the_report_counts_tasks_groups_and_chords_and_the_kills(tmp_path, capsys):
    soak = _soak(tmp_path)
    st = soak.stats
    st.tasks_late = {"t1": "/task/", "t2": "/task/"}
    st.groups_late = {"g1": "/group/"}
    st.chords = {f"c{i}": ("cb", "gid") for i in range(5)}
    soak.kills["celery main"] = 3
    soak.lost = ["task t1 never finished", "chord c0 never fired"]
    soak.lost_kinds.update(task=1, chord=1)
    soak.expected_tracebacks = 0
    soak.report(10.0, [], [])
    out = capsys.readouterr().out
    assert (
        ": 2 in 3 kills of the main process: tasks 1 (of 2 late), groups 0 (of 1 late), chords 1 (of 5)"
    ) in out
    assert "    task t1 never finished\n" in out
