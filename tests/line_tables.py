"""Cheaper tracemalloc measurements: each allocation's line found by a table read.

tracemalloc records the file and line of every allocation it traces. CPython 3.11 finds that line by
reading the function's line table from its start up to the instruction that allocates, so an
allocation deep in a long function (the record scan of replay, check, merge and salvage) takes tens
of times longer to trace than one near its top: a test measuring the peak of opening or checking a
store of 60,000 records spent seconds there. Once a function has run with a trace function set,
3.11 keeps a table from instruction to line for it, and tracemalloc reads the line from it.

``with_line_tables(run)`` runs ``run`` (the operation to measure, on a small input) once that way
before tracing starts. The tables are made then, and none while tracing, so they are not counted in
what tracemalloc reports. Neither is what the operation does only the first time it runs in a process
(a module it imports when first called: compiled, on a checkout without bytecode caches, which alone
took salvage's peak over its bound), so the figures are those of the operation itself, in whatever
order the tests run. Other Python versions trace as fast (or as slowly) as before.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def _no_events(frame: Any, event: str, arg: Any) -> None:
    return None  # (no local trace function: the interpreter still goes through its tracing path)


def with_line_tables(run: Callable[[], object]) -> None:
    """Run ``run`` once with a trace function set, so that every function it runs gets its line table."""
    previous = sys.gettrace()
    sys.settrace(_no_events)
    try:
        run()
    finally:
        sys.settrace(previous)
