"""kvb check loaded every hint file whole to see whether it checks out, as a list of one tuple per key
(a merged store of a million keys: 264 MB resident, against 36 MB for the same store unmerged). It
now checks a hint file as the engine's loader does, a slice of its columns and a MiB of its CRC at a
time (36 MB)."""

from __future__ import annotations

import os
import tracemalloc

import pytest
from line_tables import with_line_tables

from kv_backend import DB
from kv_backend.check import check
from kv_backend.hint import HINT_HEADER, load, usable, write_hints

N = 60_000


def _merged(path: str, n: int = N) -> str:
    with DB(path) as db:
        for start in range(0, n, 1000):
            with db.batch() as b:
                for i in range(start, min(start + 1000, n)):
                    b.put(b"key-%012d" % i, b"v%08d" % i)
        db.merge()
    (hint,) = [n for n in os.listdir(path) if n.endswith(".hint")]
    return os.path.join(path, hint)


def _check_peak(path: str) -> int:
    tracemalloc.start()
    try:
        report = check(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok and not report.notes and report.records >= N
    return peak


def test_kvb_check_of_a_merged_store_does_not_load_its_hint_files(store_path, tmp_path):
    small = str(tmp_path / "small")
    _merged(small, 100)
    with_line_tables(lambda: check(small))
    hint = _merged(store_path)
    with_hints = _check_peak(store_path)
    os.rename(hint, hint + ".away")  # (not a hint file's name: the data file alone is checked)
    without = _check_peak(store_path)
    # (before: 3 MB more at its peak, a tuple per key; now next to nothing)
    assert with_hints - without < 1 << 20, f"{(with_hints - without) / N:.0f} B/key for the hint file"


@pytest.mark.parametrize("step", [1, 3, 1 << 17])
def test_usable_takes_what_the_loader_takes(tmp_path, step):
    path = str(tmp_path / "h")
    keys = [b"a", b"bb", b"", b"dddd", b"e" * 300]
    locs = [(16 << 32) | 40, (56 << 32) | 44, (100 << 32) | 22, (122 << 32) | 30, (152 << 32) | 348]
    expiries = [0.0, 5.5, 0.0, 0.0, 1e10]

    def agree(data_size: int) -> bool:
        assert usable(path, data_size, step=step) == (load(path, data_size) is not None)
        return usable(path, data_size, step=step)

    write_hints(path, 500, keys, locs, expiries)
    assert agree(500) and not agree(499)
    assert not agree(100)  # (the data file is too short for the locations: 152 + 348)
    with open(path, "rb") as f:
        good = f.read()
    for pos in (HINT_HEADER.size, HINT_HEADER.size + 25, len(good) - 1):  # a column's byte, a key's
        bad = bytearray(good)
        bad[pos] ^= 1
        with open(path, "wb") as f:
            f.write(bad)
        assert not agree(500)
    with open(path, "wb") as f:
        f.write(good[:-1])
    assert not agree(500)
    write_hints(path, 500, keys, [*locs[:4], (153 << 32) | 348], expiries)  # one byte past the end
    assert not agree(500)
    write_hints(path, 500, [], [], [])
    assert agree(500)
    os.remove(path)
    assert not agree(500)
