"""The progress bars of kvb merge, backup, restore, salvage and kvb backups --verify print sizes and speed
in binary units, as their reports print sizes (``3.4 MiB``): tqdm's own scaling divided by 1000
(``5.24M/10.5M``, ``2.62MB/s``), and with a divisor of 1024 still printed the speed in decimal ``MB/s``."""

from __future__ import annotations

import io
import re

import pytest

from kv_backend.backup import BackupReport
from kv_backend.progress import byte_fields, new_bar

pytest.importorskip("tqdm", reason="the progress bars are tqdm's (the backup extra)")

MiB = 1 << 20


def _render(done: int, total: int) -> str:
    """The last line a bytes bar of ``done`` of ``total`` bytes writes to a file."""
    out = io.StringIO()
    bar = new_bar("backing up", file=out)
    try:
        bar.total = total
        bar.update(done)
        bar.refresh()
    finally:
        bar.close()
    return out.getvalue().split("\r")[-1].strip()


@pytest.mark.parametrize(
    ("done", "total", "sizes"),
    [
        (236, 236, "236 B/236 B"),
        (700 * 1024, 1536 * 1024, "700.0 KiB/1.5 MiB"),
        (5 * MiB, 10 * MiB, "5.0 MiB/10.0 MiB"),
        (3 << 30, 7 << 30, "3.0 GiB/7.0 GiB"),
    ],
)
def test_a_bar_of_bytes_prints_binary_units(done, total, sizes):
    line = _render(done, total)
    assert line.startswith("backing up:") and f"| {sizes} [" in line, line
    # (the speed: whatever the machine's, in a binary unit a second)
    assert re.search(r", \d+(\.\d)? (B|KiB|MiB|GiB|TiB)/s\]$", line), line
    assert not re.search(r"\d(k|M|G)B?\b", line), line


def test_the_bar_and_the_report_print_a_size_alike():
    report = BackupReport(name="n", url="u", bytes_copied=5 * MiB)
    assert "(5.0 MiB)" in str(report)
    assert "| 5.0 MiB/5.0 MiB [" in _render(5 * MiB, 5 * MiB)


def test_byte_fields():
    assert byte_fields(236, 236, 23.6 * 1024) == {
        "n_size": "236 B",
        "total_size": "236 B",
        "rate_size": "23.6 KiB/s",
    }
    assert byte_fields(5 * MiB, None, None) == {"n_size": "5.0 MiB", "total_size": "?", "rate_size": "? B/s"}
    assert byte_fields(0, 0, 2.5 * MiB)["rate_size"] == "2.5 MiB/s"
