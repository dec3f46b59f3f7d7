"""Sizes as the reports and progress bars of kv_backend print them: binary units (KiB, MiB: 1024)."""

from __future__ import annotations


def binary_size(n: float) -> str:
    """``n`` bytes in the largest binary unit below it: ``512 B``, ``3.4 MiB``, ``1.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
