"""Run a pytest session (``-v`` output) as a child, echoing its progress, and stop it when it stalls.

A test that hangs where pytest-timeout cannot stop it (a rerun of a ``flaky`` test, which
pytest-timeout does not time again; a fixture waiting for ever) would otherwise hold the whole run:
``run_watched`` kills the session once it has printed nothing for ``stall`` seconds, and
``run_segments`` starts it again without the tests already reported and the one that hung. Every
process the session started is killed when it ends (a forked child left hanging by a test keeps the
output pipe open, and a reader waiting for its end would wait for ever).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from _services import kill_group

OUTCOMES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS", "RERUN")
_RESULT = re.compile(r"^(\S+::\S+) (" + "|".join(OUTCOMES) + r")\b")


@dataclass
class Segment:
    """One pytest session: its output lines, the tests it reported, and the test it hung in."""

    lines: list[str] = field(default_factory=list)
    reported: dict[str, str] = field(default_factory=dict)  # test id -> its last outcome
    hung: str | None = None  # the test running when the session was killed for stalling
    stalled: bool = False


def exit_on_sigterm() -> None:
    """Make SIGTERM (``timeout``'s, a service manager's) end this process as an exception would, so a
    running session is killed with every process it started, and the caller's cleanup runs; by
    default the session, in a process group of its own, ran on with its Celery worker."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def run_watched(
    cmd: list[str], cwd: str, env: dict[str, str], stall: float, echo: Callable[[str], None]
) -> Segment:
    """Run ``cmd`` (a pytest session with ``-v``); pass each output line to ``echo`` as it comes."""
    seg = Segment()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    partial = b""
    last = time.monotonic()
    try:
        while True:
            exited = proc.poll() is not None
            if not sel.select(timeout=0.2 if exited else 1.0):
                if exited:
                    break  # only children the session left behind still hold the pipe
                if time.monotonic() - last > stall:
                    seg.stalled = True
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            last = time.monotonic()
            *done, partial = (partial + chunk).split(b"\n")
            for raw in done:
                line = raw.decode("utf-8", "replace")
                seg.lines.append(line)
                found = _RESULT.match(line)
                if found:
                    seg.reported[found[1]] = found[2]
                echo(line)
    finally:
        sel.close()
        kill_group(proc)
        proc.stdout.close()
    tail = partial.decode("utf-8", "replace").strip()
    if seg.stalled:
        running = tail.split(" ")[0] if "::" in tail else None
        seg.hung = running
        echo(f"STALLED: nothing printed for {stall:.0f} s after {tail[-200:]!r}: killed")
    elif tail:
        seg.lines.append(tail)
    return seg


def run_segments(
    cmd: list[str], tests: list[str], cwd: str, env: dict[str, str], stall: float, echo: Callable[[str], None]
) -> list[Segment]:
    """Run ``cmd`` on ``tests`` with run_watched; after a stall in a test, run the rest again, without
    the tests already reported and the one that hung. A stall outside any test ends the run."""
    segments: list[Segment] = []
    skip: list[str] = []
    while True:
        seg = run_watched([*cmd, *(f"--deselect={n}" for n in skip), *tests], cwd, env, stall, echo)
        segments.append(seg)
        if seg.hung is None:
            return segments
        skip += [*seg.reported, seg.hung]
        echo(f"(starting again without the {len(skip)} tests already run)")


def printer(verbose: bool, started: float) -> Callable[[str], None]:
    """An ``echo`` for run_watched: every line if ``verbose``, else each test's outcome other than a
    pass or a skip, and a count of the tests done once a minute."""
    seen = {"tests": 0, "shown": started}

    def echo(line: str) -> None:
        if verbose:
            print(line, flush=True)
            return
        found = _RESULT.match(line)
        if found is None:
            if line.startswith(("STALLED: ", "(starting again")):
                print(f"  {line}", flush=True)
            return
        seen["tests"] += found[2] != "RERUN"
        if found[2] not in ("PASSED", "SKIPPED"):
            print(f"  {found[2]} {found[1]}", flush=True)
        now = time.monotonic()
        if now - seen["shown"] >= 60:
            seen["shown"] = now
            print(f"  ... {seen['tests']} tests done in {(now - started) / 60:.0f} min", flush=True)

    return echo
