"""kvb salvage wrote its copy in batches of a thousand records whatever their size, holding each
batch's values three times over (the values, their records, the batch's bytes): a thousand values of
60 kB peaked at 180 MB, of a megabyte at 3 GB. A batch now stops at about 4 MiB of records."""

from __future__ import annotations

import os
import tracemalloc

from kv_backend import DB
from kv_backend.salvage import salvage


def test_salvage_of_large_values_holds_a_few_megabytes_of_them_at_a_time(store_path, tmp_path):
    values = {b"k%03d" % i: os.urandom(100_000) for i in range(300)}
    with DB(store_path) as db:
        db.update(values)
        db.put(b"small", b"1", ttl=3600)
    tracemalloc.start()
    try:
        report = salvage(store_path, str(tmp_path / "copy"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.clean and report.keys_copied == 301
    assert peak < 20 << 20, peak  # (30 MB of values: a single batch of them held 90 MB)
    with DB(str(tmp_path / "copy"), read_only=True) as copy:
        assert dict(copy.items()) == {**values, b"small": b"1"}
        assert 3500 < copy.ttl(b"small") <= 3600
