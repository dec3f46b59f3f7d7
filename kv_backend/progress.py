"""Progress bars for long CLI work (tqdm when installed, silence otherwise)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str, unit: str = "B") -> Iterator[Callable[[int, int], None]]:
    """Yield a ``callback(done, total)`` that drives a progress bar on stderr."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the backup extra
        yield lambda done, total: None
        return
    # No bar unless stderr is a terminal (no control characters in logs), nor when it is closed (None).
    on_terminal = sys.stderr is not None and sys.stderr.isatty()
    bar = tqdm(desc=description, unit=unit, unit_scale=True, file=sys.stderr, disable=not on_terminal)
    try:

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update
    finally:
        bar.close()
