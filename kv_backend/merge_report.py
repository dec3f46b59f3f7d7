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
    corrupt_kept: int = 0
    """Damaged records (lengths sound, checksum or type not) copied as they are: their keys read as
    damaged after the merge as before it, until each is written or deleted again."""
    corrupt_dropped: int = 0
    """Kept for callers of earlier versions, whose merges dropped damaged records: always 0 now."""
    seconds: float = 0.0

    def __str__(self) -> str:
        saved = self.bytes_before - self.bytes_after
        # (a store with nothing dead can grow: the headers of the files the merge adds, one per record
        # larger than max_file_size)
        reclaimed = f"{saved} reclaimed" if saved >= 0 else f"nothing reclaimed: {-saved} more"
        text = (
            f"merged {self.files_before} file(s) into {self.files_after}: "
            f"{self.bytes_before} -> {self.bytes_after} bytes ({reclaimed}), "
            f"{self.records_kept} records kept, {self.records_dropped} dropped, "
            f"in {self.seconds:.2f} s"
        )
        if self.corrupt_kept:
            text += (
                f"; {self.corrupt_kept} damaged record(s) kept as they are (their keys still read as "
                "damaged: `kvb check` lists them)"
            )
        return text


MergeReport.__module__ = "kv_backend.merge"  # (its public name, as before it moved here)
