"""kvb salvage reads a run of damaged records (sound lengths, CRCs failing: bit rot over a stretch of
small records) in time linear in the run: asking whether each record's lengths are confirmed walked
the rest of the run anew (8000 such records: 12 s of CPU; 80,000: about 20 minutes)."""

from __future__ import annotations

import time

from helpers import data_files
from test_format_reader11 import records

from kv_backend import DB, CorruptionError
from kv_backend.check import check
from kv_backend.salvage import salvage


def test_a_long_run_of_damaged_records_is_salvaged_in_linear_time(store_path, tmp_path):
    with DB(store_path) as db:
        with db.batch() as b:
            for i in range(8000):
                b.put(b"k%06d" % i, b"v" * 50)
        db.put(b"z", b"last")
    active = data_files(store_path)[-1]
    with open(active, "rb") as f:
        buf = bytearray(f.read())
    for off, _, _, _, klen, _ in records(active)[:8000]:
        buf[off + 22 + klen] ^= 1  # each record's value: its CRC fails, its lengths are sound
    with open(active, "wb") as f:
        f.write(buf)
    start = time.process_time()
    report = salvage(store_path, str(tmp_path / "copy"))
    used = time.process_time() - start
    assert used < 3, f"{used:.1f} s of CPU"
    assert report.keys_copied == 1 and len(report.damaged_keys) == 8000
    assert len(check(store_path).problems) == 8000
    damaged = []
    with DB(store_path) as db:
        for key in list(db.keys()):
            try:
                db.get(key)
            except CorruptionError:
                damaged.append(key)
    assert damaged == report.damaged_keys
