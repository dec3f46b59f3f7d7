"""SORT, SORT_RO, LCS and SUBSTR of ``kvb serve`` against a real redis-server, and the keyspace fixes
found while testing them."""

from __future__ import annotations

import time

from kv_backend.structures import Structures


def test_flushdb_removes_keys_that_expired_but_are_still_stored(tmp_path):
    """FLUSHALL left the records of keys that had expired (reads skip them), so kvb serve's active
    expiry found them afterwards and published ``expired`` events for keys of before the flush
    (redis-server publishes none)."""
    with Structures(str(tmp_path / "s")) as st:
        st.set("gone", "x", ex=0.001)
        st.set("live", "x", ex=100)
        time.sleep(0.01)
        assert st.expired_names(10) == [b"gone"]
        st.flushdb()
        assert st.expired_names(10) == []
        assert not st.remove_expired("gone") and st.dbsize() == 0
