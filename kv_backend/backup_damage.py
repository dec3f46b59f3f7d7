"""Which damage a restore refuses: the one rule :func:`kv_backend.backup.restore` applies to the store it
checks, and :func:`kv_backend.backup.verify_backups` to the damage a backup's manifest counted."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kv_backend.backup import BackupReport
    from kv_backend.check import Problem

#: What fixes hint entries that point to no sound record of their key, as ``kvb check`` advises.
HINT_FIX = (
    "remove those hint files while no process has the store open, and their data files are replayed instead"
)


@dataclass(frozen=True, order=True)
class FileDamage:
    """The damage of one data file of a store or a backup."""

    file: str
    """The data file's name (``0000000001-000.data``)."""
    records: int
    """Its damaged records (and other damaged spots: a damaged header, bytes lost)."""
    hint_entries: int = 0
    """Entries of its hint file that point to no sound record of their key (the data file is sound there)."""

    def __str__(self) -> str:
        parts = []
        if self.records:
            parts.append(f"{self.records} damaged record{'s' if self.records != 1 else ''}")
        if self.hint_entries:
            n = self.hint_entries
            parts.append(f"{n} damaged hint entr{'ies' if n != 1 else 'y'}")
        return f"{' and '.join(parts) or 'no damage'} in {self.file}"


def damage_of(problems: Iterable[Problem]) -> list[FileDamage]:
    """The damage of each data file that :func:`kv_backend.check.check` found ``problems`` in, by name."""
    counts: dict[str, list[int]] = {}
    for p in problems:
        counts.setdefault(os.path.basename(p.path), [0, 0])[bool(p.hint)] += 1
    return [FileDamage(name, records, hints) for name, (records, hints) in sorted(counts.items())]


def refused_damage(damage: Iterable[FileDamage]) -> list[FileDamage]:
    """The damaged files for which a restore refuses a backup: every damaged one where any data file holds a
    damaged record (a restore checks every record, and has no option to accept one), none where only
    hint entries are damaged (the restore leaves those hint files out: their data files are sound, and
    the restored store replays them)."""
    damaged = [d for d in damage if d.records or d.hint_entries]
    return damaged if any(d.records for d in damaged) else []


def damaged_text(report: BackupReport) -> str:
    """The damage a backup ``report`` counted, in words: ``2 damaged record(s) and 1 damaged hint
    entry``, the hint entries apart, as a restore judges them apart."""
    records = report.damaged_records - report.damaged_hint_entries
    hints = report.damaged_hint_entries
    parts = [f"{records} damaged record(s)"] if records or not hints else []
    if hints:
        parts.append(f"{hints} damaged hint entr{'ies' if hints != 1 else 'y'}")
    return " and ".join(parts)
