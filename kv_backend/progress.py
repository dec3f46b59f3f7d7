"""Progress bars for long CLI work (tqdm when installed, silence otherwise)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from kv_backend.sizes import binary_size

#: What a bar of bytes shows: its sizes and speed in binary units, as the reports of kvb merge, backup,
#: restore, salvage and kvb backups print sizes (``3.4 MiB``). tqdm's own scaling divides by 1000
#: (``3.6M``, ``2.6MB/s``), and with a divisor of 1024 still labels the speed ``MB/s``, decimal.
BYTES_FORMAT = "{l_bar}{bar}| {n_size}/{total_size} [{elapsed}<{remaining}, {rate_size}]"


def byte_fields(n: float, total: float | None, rate: float | None) -> dict[str, str]:
    """The fields of :data:`BYTES_FORMAT`: ``n`` bytes done of ``total`` at ``rate`` bytes a second."""
    return {
        "n_size": binary_size(n),
        "total_size": "?" if total is None else binary_size(total),
        "rate_size": f"{binary_size(rate)}/s" if rate else "? B/s",
    }


def new_bar(description: str, unit: str = "B", *, file: IO[str] | None = None, disable: bool = False) -> Any:
    """A tqdm bar writing to ``file`` (default: stderr); for ``unit="B"`` one that prints sizes and
    speed in binary units (:data:`BYTES_FORMAT`). ImportError without tqdm."""
    from tqdm import tqdm

    if unit != "B":
        return tqdm(desc=description, unit=unit, unit_scale=True, file=file or sys.stderr, disable=disable)

    class _BytesBar(tqdm):  # type: ignore[misc]
        @property
        def format_dict(self) -> dict[str, Any]:
            d = super().format_dict
            elapsed = d.get("elapsed") or 0
            rate = d.get("rate") or ((d["n"] - (d.get("initial") or 0)) / elapsed if elapsed else None)
            d.update(byte_fields(d["n"], d["total"], rate))
            return d  # type: ignore[no-any-return]

    return _BytesBar(
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        bar_format=BYTES_FORMAT,
        file=file or sys.stderr,
        disable=disable,
    )


@contextmanager
def progress_bar(description: str, unit: str = "B") -> Iterator[Callable[[int, int], None]]:
    """Yield a ``callback(done, total)`` that drives a progress bar on stderr."""
    try:
        import tqdm  # noqa: F401
    except ImportError:  # pragma: no cover - tqdm is in the backup extra
        yield lambda done, total: None
        return
    # No bar unless stderr is a terminal (no control characters in logs), nor when it is closed (None).
    on_terminal = sys.stderr is not None and sys.stderr.isatty()
    bar = new_bar(description, unit, disable=not on_terminal)
    try:

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update
    finally:
        bar.close()
