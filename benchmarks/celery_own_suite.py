"""Run Celery's own integration tests (``t/integration/`` of its sdist) against the kvb:// result backend.

The tests ship in Celery's source distribution, not in the installed package:
this downloads the sdist of the installed Celery version (once; it is kept in
``~/.cache/kv_backend-tests``), unpacks its ``t/`` directory and its pytest
settings (not its ``celery`` package: the installed one is tested), starts a
broker, and runs the chosen test files with the suite's own configuration
(``TEST_BROKER``, ``TEST_BACKEND``; a prefork worker started in-process by
Celery's pytest plugin). It prints pytest's counts per run and the failures
that are not known to fail with Celery's own ``redis://`` result backend too
on the installed Celery's release line (the lists are by line: 5.3 and 5.7);
the exit status is 1 if there is any such failure. It prints its progress as it goes
(every test that does not pass, and a count once a minute; ``-v``: pytest's output), times each
run of a test (reruns included), and kills a session that prints nothing for ``--stall`` seconds,
then runs the tests left (see _watched_pytest.py). Celery 5.3's suite needs
``pytest-subtests`` (and ``pytest-rerunfailures`` for its reruns) installed. It takes minutes (about 3
for ``test_tasks.py``, 6 for ``test_canvas.py``, 18 for those two and
``test_group_chains.py`` with ``--unskip``), so it is not part of ``make
test``. What passes, what is skipped and why: docs/celery.md ("Celery's own
test suite").

    python benchmarks/celery_own_suite.py                      # kvb://, redis-server broker
    python benchmarks/celery_own_suite.py --broker kvb-serve   # kvb://, kvb serve broker
    python benchmarks/celery_own_suite.py --backend redis      # the reference: redis:// results
    python benchmarks/celery_own_suite.py --unskip             # also the tests gated on redis://
    python benchmarks/celery_own_suite.py t/integration/test_canvas.py -k chord

``--unskip`` runs the tests that skip unless ``result_backend`` starts with
``redis`` although they need nothing of Redis as the result backend (most
only assume a backend that stores states and supports chords; some record
side effects in a Redis list, which they reach at ``REDIS_HOST:REDIS_PORT``,
here the broker's server): their check is made to accept ``kvb`` too. The
tests that look at the result backend's own Redis (its pub/sub channels, its
chord keys) stay deselected (``NEEDS_REDIS_BACKEND``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable

import celery

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _services import ROOT, ServiceError, start_kvb_serve, start_redis_server, stop  # noqa: E402
from _watched_pytest import Segment, exit_on_sigterm, printer, run_segments  # noqa: E402

DEFAULT_FILES = ["t/integration/test_tasks.py", "t/integration/test_canvas.py"]

# Tests that fail with Celery's own redis:// result backend and a redis-server broker too, so they say
# nothing about kvb://; with the reason each fails there. By Celery release line: each line's tests
# differ (a line not listed here uses the newest older one's list, and says so).
_KNOWN_FAILURES_5_7 = {
    "t/integration/test_tasks.py::test_tasks::test_revoked_by_headers_complex_canvas": (
        "its 20 s timeout runs out in the wait_until_idle() that starts its second round"
    ),
    "t/integration/test_tasks.py::test_trace_log_arguments::test_task_success": (
        "caplog misses the worker's 'Task received' record"
    ),
    "t/integration/test_tasks.py::test_trace_log_arguments::test_task_failed": (
        "caplog misses the worker's 'Task received' record"
    ),
    "t/integration/test_tasks.py::test_task_replacement::test_replaced_task_nesting_level_0": (
        "racy: it resets its flag after sending the task, and the worker may have set it already"
    ),
    "t/integration/test_canvas.py::test_chord::test_error_propagates_from_chord": (
        "Celery issue #6437 (xfail for redis:// only): a group chained after a failed task is never "
        "marked, so get() on it waits until the test's timeout"
    ),
    "t/integration/test_worker.py::test_run_worker": "it runs the `celery` program, which must be on PATH",
    "t/integration/test_worker.py::test_pidbox_reset_after_repeated_control_errors": (
        "after test_inspect.py in the same run, get() raises 'Never call result.get() within a task!'"
    ),
    # These are gated on redis://: the first runs on redis:// only (--unskip deselects it, see
    # NEEDS_REDIS_BACKEND), the three others with --unskip too.
    "t/integration/test_canvas.py::test_chord::test_chord_on_error": (
        "the results it reads from the chord's '.j' key in the backend's Redis hold no success "
        "([] for [3, 7])"
    ),
    "t/integration/test_canvas.py::test_chord::test_enabling_flag_allow_error_cb_on_chord_header": (
        "a subtest times out waiting for an errback's message"
    ),
    "t/integration/test_canvas.py::test_chord::test_disabling_flag_allow_error_cb_on_chord_header": (
        "a subtest times out waiting for an errback's message"
    ),
    "t/integration/test_canvas.py::test_chord::test_flag_allow_error_cb_on_chord_header_on_upgraded_chord": (
        "a subtest times out waiting for an errback's message"
    ),
}

# (Celery 5.3's: with a redis-server 7.0 broker, its suite made to reach Redis at REDIS_PORT, see unpack.)
_KNOWN_FAILURES_5_3 = {
    node: _KNOWN_FAILURES_5_7[node]
    for node in (
        "t/integration/test_tasks.py::test_trace_log_arguments::test_task_success",
        "t/integration/test_tasks.py::test_trace_log_arguments::test_task_failed",
        "t/integration/test_tasks.py::test_task_replacement::test_replaced_task_nesting_level_0",
        "t/integration/test_canvas.py::test_chord::test_error_propagates_from_chord",
        "t/integration/test_canvas.py::test_chord::test_enabling_flag_allow_error_cb_on_chord_header",
        "t/integration/test_canvas.py::test_chord::test_disabling_flag_allow_error_cb_on_chord_header",
        "t/integration/test_canvas.py::test_chord::test_flag_allow_error_cb_on_chord_header_on_upgraded_chord",
    )
}

KNOWN_FAILURES = {(5, 7): _KNOWN_FAILURES_5_7, (5, 3): _KNOWN_FAILURES_5_3}


def release_line(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a Celery version string."""
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return major, minor


def known_failures(version: str) -> tuple[tuple[int, int], dict[str, str]]:
    """The release line whose list of failures shared with redis:// applies to Celery ``version``, and
    that list: the line's own, else the newest older line's (the oldest line's for an older Celery)."""
    older = [known for known in KNOWN_FAILURES if known <= release_line(version)]
    chosen = max(older) if older else min(KNOWN_FAILURES)
    return chosen, KNOWN_FAILURES[chosen]


# Tests gated on redis:// (run with --unskip) that fail on kvb:// for a documented limit (docs/celery.md).
_NO_ADD_TO_CHORD = "Task.add_to_chord() is not supported"
KVB_LIMITS = {
    "t/integration/test_canvas.py::test_chord::test_add_to_chord": _NO_ADD_TO_CHORD,
    "t/integration/test_canvas.py::test_chord::test_add_chord_to_chord": _NO_ADD_TO_CHORD,
}
# And, by release line as KNOWN_FAILURES, those that fail on kvb:// only for another documented reason.
_COMPLETES = "Celery 5.3 expects its canvas to time out (a strict xfail), and on kvb:// it completes"
KVB_ONLY = {
    (5, 7): KVB_LIMITS,
    (5, 3): {
        **KVB_LIMITS,
        "t/integration/test_canvas.py::test_chain::test_group_results_in_chain": _COMPLETES,
        "t/integration/test_canvas.py::test_chain::test_nested_chain_group_lone": _COMPLETES,
        "t/integration/test_canvas.py::test_group::test_nested_group_chord_body_chain": _COMPLETES,
    },
}

# Tests that inspect the result backend's own Redis: not run with --unskip.
NEEDS_REDIS_BACKEND = [
    "t/integration/test_tasks.py::test_task_redis_result_backend",  # its pub/sub channels
    "t/integration/test_canvas.py::test_chord::test_redis_subscribed_channels_leak",  # idem
    "t/integration/test_canvas.py::test_chord::test_chord_on_error",  # reads the chord's '.j' zset
]

# Tests Celery skips for every backend as broken (5.7 does), which Celery 5.3 runs: with redis:// results
# test_multiprocess_producer hung in each of its 6 runs (a flaky test, 5 reruns, each timed at 300 s by
# its own mark: 30 min), its forked pool processes stuck on a lock another thread of the test process
# held at the fork. Deselected on every line, as Celery now skips them.
BROKEN_UPSTREAM = [
    "t/integration/test_tasks.py::test_tasks::test_multiprocess_producer",
    "t/integration/test_tasks.py::test_tasks::test_multithread_producer",
]

_GATE = re.compile(r"""result_backend\.startswith\((['"])redis\1\)""")
# Celery 5.3's suite reaches the Redis it records side effects in at REDIS_HOST, on port 6379 whatever
# REDIS_PORT says (5.7's reads REDIS_PORT): every such test then failed, on redis:// as on kvb://,
# with 'Connection refused' (the broker's server, which holds them, listens on a free port).
_NO_PORT = "StrictRedis(host=os.environ.get('REDIS_HOST'))"
_WITH_PORT = "StrictRedis(host=os.environ.get('REDIS_HOST'), port=int(os.environ.get('REDIS_PORT', 6379)))"


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    path = os.path.join(base, "kv_backend-tests")
    os.makedirs(path, exist_ok=True)
    return path


def sdist(version: str) -> str:
    """The path of Celery ``version``'s sdist, downloaded with pip the first time."""
    cache = cache_dir()

    def cached() -> str | None:
        names = [n for n in os.listdir(cache) if n.lower() == f"celery-{version}.tar.gz"]
        return os.path.join(cache, names[0]) if names else None

    if cached() is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        done = subprocess.run([*cmd, f"celery=={version}", "-d", cache], capture_output=True, text=True)
        if cached() is None:
            raise SystemExit(f"cannot download Celery {version}'s sdist: {done.stderr.strip()[-300:]}")
    return cached()  # type: ignore[return-value]


def unpack(archive: str, into: str, unskip: bool) -> str:
    """Extract the sdist's tests and pytest settings into ``into``; return the tree's root."""
    with tarfile.open(archive) as tar:
        settings = [
            m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml")
        ]
        members = [m for m in tar.getmembers() if "/t/" in m.name] + settings
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(into, members=members, **safe)
    root = next(os.path.join(into, n) for n in os.listdir(into) if n.startswith("celery-"))
    _rewrite(os.path.join(root, "t", "integration", "conftest.py"), lambda t: t.replace(_NO_PORT, _WITH_PORT))
    if unskip:
        for name in ("test_tasks.py", "test_canvas.py", "test_group_chains.py"):
            _rewrite(os.path.join(root, "t", "integration", name), _ungate)
    return root


def _ungate(text: str) -> str:
    """A test file whose tests gated on a redis:// result backend accept kvb:// too."""
    text = _GATE.sub("result_backend.startswith(('redis', 'kvb'))", text)
    return text.replace(".startswith(('redis', 'rpc'))", ".startswith(('redis', 'rpc', 'kvb'))")


def _rewrite(path: str, change: Callable[[str], str]) -> None:
    """Apply ``change`` to the text of the file ``path``, if the sdist has it (test_group_chains.py is
    newer than Celery 5.3)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(change(text))


def run(root: str, broker: str, backend: str, redis_port: int, args: argparse.Namespace) -> list[str]:
    """Run the suite once; print its counts and return the ids of the failures not known elsewhere."""
    env = dict(os.environ)
    paths = [ROOT, os.path.join(ROOT, "integrations"), env.get("PYTHONPATH", "")]
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
        TEST_BROKER=broker,
        TEST_BACKEND=backend,
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_port),
    )
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:django"]
    # -v: each test's outcome as it ends (the progress printed, and the test a stalled session was in);
    # timeout_func_only: pytest-timeout times each run of a test's function, reruns of a flaky test
    # included (otherwise it times a test's first run only, and a rerun that hangs is never stopped).
    cmd += ["-p", "celery.contrib.pytest", "-v", "-rfE", "--timeout", str(args.timeout)]
    cmd += ["-o", "timeout_func_only=true", *(f"--deselect={node}" for node in BROKEN_UPSTREAM)]
    if args.unskip:
        cmd += [f"--deselect={node}" for node in NEEDS_REDIS_BACKEND]
    if args.k:
        cmd += ["-k", args.k]
    started = time.monotonic()
    echo = printer(args.verbose, started)
    segments = run_segments(cmd, args.tests or DEFAULT_FILES, root, env, args.stall, echo)
    took = (time.monotonic() - started) / 60
    print(f"broker {broker}, backend {backend}: {'; '.join(map(summary, segments))} ({took:.0f} min)")
    lines = [line for seg in segments for line in seg.lines]
    failed = [line.split()[1] for line in lines if line.startswith(("FAILED t/", "ERROR t/"))]
    for seg in segments:
        if seg.hung:
            print(f"  HUNG: {seg.hung} (nothing printed for {args.stall:.0f} s: killed, counted as failed)")
            failed.append(seg.hung)
    missing = re.findall(r"ModuleNotFoundError: No module named '([\w.]+)'", "\n".join(lines))
    for module in sorted(set(missing)):
        # (Celery 5.3's test_canvas.py imports pytest_subtests, which its requirements/test.txt lists.)
        package = module.split(".")[0].replace("_", "-")
        print(f"  Celery {celery.__version__}'s tests need the module {module}: pip install {package}")
    unexpected = unexpected_failures(failed, celery.__version__, args.backend)
    return unexpected


_COUNTS = re.compile(r"^=+ .* in [\d.]+s\b.* =+$")


def summary(seg: Segment) -> str:
    """pytest's closing counts of a session, or, for one killed as it stalled, those of the tests it
    had reported and the test it stalled in."""
    if not seg.stalled:
        # (the last line but for what the interpreter prints at exit: a redis:// result backend's
        # "Exception ignored" tracebacks follow it)
        closing = [line for line in seg.lines if _COUNTS.match(line)] or seg.lines or ["no output"]
        return closing[-1].strip("= ")
    counts = Counter(outcome for outcome in seg.reported.values() if outcome != "RERUN")
    done = ", ".join(f"{n} {outcome.lower()}" for outcome, n in counts.items()) or "no test reported"
    return f"{done}, then stalled in {seg.hung or 'no test (killed)'}"


def unexpected_failures(failed: list[str], version: str, backend: str) -> list[str]:
    """Print what is known of each failed test id; return those known neither to fail with redis://
    too on Celery ``version``'s release line nor to fail on kvb:// only (``backend`` "kvb")."""
    (major, minor), known = known_failures(version)
    if (major, minor) != release_line(version):
        print(f"  (Celery {version}: the failures known for Celery {major}.{minor} are expected)")
    kvb_only = KVB_ONLY[(major, minor)] if backend == "kvb" else {}
    unexpected = []
    for node in failed:
        if node in known:
            print(f"  fails with redis:// too: {node} ({known[node]})")
        elif node in kvb_only:
            print(f"  on kvb:// only: {node} ({kvb_only[node]})")
        else:
            print(f"  FAILED: {node}")
            unexpected.append(node)
    return unexpected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tests", nargs="*", help=f"test files or node ids (default: {' '.join(DEFAULT_FILES)})"
    )
    parser.add_argument(
        "--broker",
        choices=["redis-server", "kvb-serve", "both"],
        default="redis-server",
        help="the broker the suite's workers use (default: redis-server); both: one run with each",
    )
    parser.add_argument("--backend", choices=["kvb", "redis"], default="kvb", help="redis: the reference run")
    parser.add_argument(
        "--unskip", action="store_true", help="run the tests gated on redis:// too (see above)"
    )
    parser.add_argument("-k", help="pytest -k expression")
    parser.add_argument("--timeout", type=float, default=60, help="per-test timeout in seconds (default 60)")
    parser.add_argument(
        "--stall",
        type=float,
        default=420,
        help="stop a session that prints nothing for this many seconds, and run the tests after the one "
        "it hung in (default 420: more than a test marked with its own 300 s timeout takes)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print pytest's output as it comes")
    args = parser.parse_args()
    brokers = ["redis-server", "kvb-serve"] if args.broker == "both" else [args.broker]
    exit_on_sigterm()  # (run under `timeout`: its SIGTERM stops the session, the broker, the files)
    unexpected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="celery-own-suite-") as tmp:
        root = unpack(sdist(celery.__version__), os.path.join(tmp, "src"), args.unskip)
        for name in brokers:
            work = tempfile.mkdtemp(dir=tmp, prefix=f"{name}-")
            try:
                if name == "redis-server":
                    proc, port = start_redis_server(work)
                else:
                    proc, port = start_kvb_serve(os.path.join(work, "broker"))
            except ServiceError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return 2
            try:
                broker = f"redis://127.0.0.1:{port}/0"
                backend = (
                    f"redis://127.0.0.1:{port}/1" if args.backend == "redis" else f"kvb://{work}/results"
                )
                unexpected += run(root, broker, backend, port, args)
            finally:
                stop(proc)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
