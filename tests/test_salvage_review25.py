"""Review of kvb salvage's maps of files a live writer may cut (filemaps.map_cuttable): only what a writer
may cut is copied into memory, also in a store without a STATE page.

Without a page (lost, or never made), no published end bounds the newest data file: a writer that opens
the store then cuts that file where its data ends (tail recovery), never before. Salvage copied all of it
into anonymous memory (the whole active file: 100 MiB of memory for a file of 100 MiB, and 1 GiB for one
of 1 GiB), where the file's own pages, mapped, cost no memory of the process's own.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend import salvage as salvage_module
from kv_backend.salvage import salvage

MIB = 1 << 20


def _anonymous() -> int:
    """Bytes of anonymous memory this process has mapped and touched (Linux)."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no Anonymous line")


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux's /proc/self/smaps_rollup")
def test_salvage_of_a_store_without_its_page_copies_no_whole_data_file_into_memory(tmp_path, monkeypatch):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    value = os.urandom(64 << 10)
    with DB(src, max_file_size=256 * MIB) as db:
        for i in range(96 * 16):  # 96 MiB in one data file
            db.put(b"k%d" % (i % 500), value)
    os.remove(os.path.join(src, "STATE"))
    real = salvage_module._listed_and_mapped
    grown: list[int] = []

    def measured(store):
        before = _anonymous()
        found = real(store)
        grown.append(_anonymous() - before)
        return found

    monkeypatch.setattr(salvage_module, "_listed_and_mapped", measured)
    report = salvage(src, dst)
    assert report.keys_copied == 500
    with DB(dst) as copy:
        assert copy.get(b"k499") == value
    (extra,) = grown
    assert extra < 16 * MIB, f"mapping the store's files took {extra / MIB:.0f} MiB of the process's memory"
