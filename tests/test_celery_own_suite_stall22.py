"""benchmarks/celery_own_suite.py finishes when a test of Celery's suite hangs where pytest-timeout
does not stop it.

The redis:// reference run on Celery 5.3 never finished: test_multiprocess_producer (a flaky test,
rerun up to 5 times) hung in its first run, pytest-timeout stopped that run after 60 s, and the rerun
hung for good, untimed (pytest-timeout times a test's first run only, unless told to time the test
function alone); the script read pytest's output to its end and printed nothing before it. Now it runs
pytest with ``-v``, echoes each test's outcome as it comes, kills a session that prints nothing for
``--stall`` seconds with every process it started (the test's forked children held the output pipe
open), and runs the remaining tests in a new session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import celery_own_suite  # noqa: E402
from _watched_pytest import run_segments  # noqa: E402

TESTS = """\
import os
import threading
import time


def _child_sleeping(tag):
    pid = os.fork()
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    with open(os.path.join(os.environ["PIDS"], tag), "w") as f:
        f.write(str(pid))


def test_a():
    pass


def test_b_hangs():
    _child_sleeping("b")
    threading.Event().wait()


def test_c_leaves_a_child():
    _child_sleeping("c")
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs 5 s from now (a SIGKILL takes effect after kill() returns)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1][0] == "Z":
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.05)
    return True


def test_a_stalled_session_is_killed_and_the_rest_run_again(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_x.py").write_text(TESTS)
    pids = tmp_path / "pids"
    pids.mkdir()
    # (no plugins: a session starting slowly on a loaded machine would count as stalled)
    env = dict(os.environ, PIDS=str(pids), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rfE"]
    echoed: list[str] = []
    started = time.monotonic()
    segments = run_segments(cmd, ["test_x.py"], str(tmp_path), env, 4, echoed.append)
    assert time.monotonic() - started < 40  # test_c's child, sleeping 600 s, kept the pipe open
    assert len(segments) == 2, echoed
    first, second = segments
    assert first.stalled and first.hung == "test_x.py::test_b_hangs"
    assert first.reported == {"test_x.py::test_a": "PASSED"}
    assert not second.stalled and second.hung is None
    assert second.reported == {"test_x.py::test_c_leaves_a_child": "PASSED"}
    assert second.lines[-1].strip("= ").startswith("1 passed, 2 deselected")
    assert any(line.startswith("STALLED: nothing printed for 4 s") for line in echoed)
    for tag in ("b", "c"):  # every process a session started is gone when it ends
        assert not _alive(int((pids / tag).read_text()))
    assert celery_own_suite.summary(first) == "1 passed, then stalled in test_x.py::test_b_hangs"
    assert celery_own_suite.summary(second) == second.lines[-1].strip("= ")


def test_each_run_of_a_test_is_timed_and_the_broken_producers_are_left_out(monkeypatch, capsys):
    """A flaky test's reruns are timed too (pytest-timeout on the test function), and the two tests
    Celery now skips as broken, which hung on Celery 5.3 with redis://, are deselected."""
    seen = {}

    def fake_segments(cmd, tests, cwd, env, stall, echo):
        seen.update(cmd=cmd, tests=tests, stall=stall)
        from _watched_pytest import Segment

        return [Segment(lines=["===== 3 passed in 1.00s ====="])]

    monkeypatch.setattr(celery_own_suite, "run_segments", fake_segments)
    args = celery_own_suite.argparse.Namespace(
        timeout=60.0, unskip=False, k=None, tests=[], verbose=False, stall=420.0, backend="redis"
    )
    assert celery_own_suite.run("/nowhere", "redis://b", "redis://r", 1, args) == []
    cmd = seen["cmd"]
    assert cmd[cmd.index("-o") + 1] == "timeout_func_only=true" and "-v" in cmd
    for node in celery_own_suite.BROKEN_UPSTREAM:
        assert f"--deselect={node}" in cmd
    assert any(node.endswith("::test_multiprocess_producer") for node in celery_own_suite.BROKEN_UPSTREAM)
    assert seen["tests"] == celery_own_suite.DEFAULT_FILES and seen["stall"] == 420.0
    assert "backend redis://r: 3 passed in 1.00s (0 min)" in capsys.readouterr().out


def test_the_counts_are_pytests_closing_line_not_what_the_interpreter_prints_after_it():
    """With redis:// results, Celery's backend prints "Exception ignored" tracebacks as the session's
    interpreter exits, after pytest's counts: the run's counts read 'ImportError: sys.meta_path is None'."""
    from _watched_pytest import Segment

    closing = "=========== 1 failed, 2 passed, 3 subtests passed in 9.50s ==========="
    noise = ["Exception ignored in: <function AsyncResult.__del__>", "ImportError: sys.meta_path is None"]
    seg = Segment(lines=["t/a.py::t PASSED [ 50%]", closing, *noise])
    assert celery_own_suite.summary(seg) == "1 failed, 2 passed, 3 subtests passed in 9.50s"
    assert celery_own_suite.summary(Segment(lines=noise)) == noise[-1]  # no counts: what it printed last


def test_chord_on_error_is_known_to_fail_with_redis_on_5_7():
    """It failed the redis:// reference run on Celery 5.7 (exit status 1) without being listed."""
    node = "t/integration/test_canvas.py::test_chord::test_chord_on_error"
    assert node in celery_own_suite.known_failures("5.7.0")[1]
    assert celery_own_suite.unexpected_failures([node], "5.7.0", "redis") == []


RUNNER = """
import os, sys
sys.path.insert(0, sys.argv[1])
from _watched_pytest import exit_on_sigterm, run_segments
exit_on_sigterm()
cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v"]
try:
    run_segments(cmd, ["test_x.py::test_b_hangs"], ".", dict(os.environ), 600, lambda line: None)
finally:
    open("cleaned", "w").close()
"""


def test_sigterm_stops_the_session_with_every_process_it_started(tmp_path):
    """`timeout` (as the script is meant to be run) ends it with SIGTERM: the pytest session, in a
    process group of its own, ran on, Celery worker and all, and the script's cleanup never ran."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_x.py").write_text(TESTS)
    pids = tmp_path / "pids"
    pids.mkdir()
    env = dict(os.environ, PIDS=str(pids), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, BENCH_DIR], cwd=tmp_path, env=env)
    deadline = time.monotonic() + 30
    while not (pids / "b").exists():  # the hanging test has started (and forked its child)
        assert time.monotonic() < deadline and runner.poll() is None
        time.sleep(0.05)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(15) == 128 + signal.SIGTERM
    assert (tmp_path / "cleaned").exists()
    assert not _alive(int((pids / "b").read_text()))
