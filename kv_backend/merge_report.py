""":class:`MergeReport`, what a merge did: ``kv_backend.merge.MergeReport``, made at the first merge.

A dataclass: the ``dataclasses`` module (with ``inspect``, ``ast``, ``dis``...) is a good part of a
plain ``import kv_backend``, which never merges. :mod:`kv_backend.merge` imports this module at its
first merge, or at the first use of the name, through :func:`kv_backend.lazy.load`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MergeReport"]


@dataclass
class MergeReport:
    """What a merge did."""

    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    records_kept: int = 0
    records_dropped: int = 0
    corrupt_dropped: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        saved = self.bytes_before - self.bytes_after
        text = (
            f"merged {self.files_before} file(s) into {self.files_after}: "
            f"{self.bytes_before} -> {self.bytes_after} bytes ({saved} reclaimed), "
            f"{self.records_kept} records kept, {self.records_dropped} dropped, "
            f"in {self.seconds:.2f} s"
        )
        if self.corrupt_dropped:
            text += f"; {self.corrupt_dropped} damaged record(s) could not be copied"
        return text


MergeReport.__module__ = "kv_backend.merge"  # (its public name, as before it moved here)
