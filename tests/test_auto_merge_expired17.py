"""Expired records are dead data, as docs/engine.md says of stats()' dead_bytes; but the key directory
counted them live until something dropped them (purge_expired, a Django cache's culling), so stats()
called a store of expired entries all live, and auto_merge never merged a store whose entries expire
without being overwritten (a cache of pages: 21 MB of expired entries, no live key, 21 files, no
merge with auto_merge=0.5). Both count them dead now."""

from __future__ import annotations

import time

from kv_backend import DB


def _fill(db: DB, n: int, ttl: float | None) -> None:
    for i in range(n):
        db.put(f"page:{ttl}:{i}".encode(), b"x" * 1000, ttl)


def test_stats_count_expired_records_dead(tmp_path):
    with DB(str(tmp_path / "s")) as db:
        _fill(db, 100, None)
        _fill(db, 300, 0.05)
        before = db.stats()
        time.sleep(0.1)
        after = db.stats()
        assert after["expired_keys"] == 300 and after["keys"] == 100
        assert after["live_bytes"] < before["live_bytes"] / 3
        assert after["dead_bytes"] > 300 * 1000
        assert after["live_bytes"] + after["dead_bytes"] == before["live_bytes"] + before["dead_bytes"]
        db.purge_expired()  # dropping them changes nothing more
        assert {k: v for k, v in db.stats().items() if k != "expired_keys"} == {
            k: v for k, v in after.items() if k != "expired_keys"
        }


def test_auto_merge_reclaims_a_store_of_expired_entries(tmp_path):
    with DB(str(tmp_path / "s"), auto_merge=0.5, max_file_size=1 << 18) as db:
        _fill(db, 1500, 0.2)  # about 1.5 MB in 6 closed files, past auto_merge's 1 MiB floor
        time.sleep(0.3)
        _fill(db, 300, None)  # the next rotation looks at the closed files again
        thread = db._merge_thread
        assert thread is not None, "no merge started"
        thread.join(30)
        stats = db.stats()
        assert stats["keys"] == 300 and stats["total_bytes"] < 600_000, stats
