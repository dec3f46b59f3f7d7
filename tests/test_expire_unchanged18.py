"""persist() (expire(key, None)) of a key without expiry writes nothing: Django's touch(key, None)
on such a key, called on every request, added the whole value as dead bytes each time (#2)."""

from __future__ import annotations

from kv_backend import DB


def _written(db: DB) -> int:
    """Bytes of records in the store's files (live and dead)."""
    return db.stats()["total_bytes"]


def test_persist_of_a_key_without_expiry_writes_nothing(store_path):
    with DB(store_path) as db:
        db.put(b"session", b"x" * 10_000)
        before = _written(db)
        for _ in range(50):
            assert db.persist(b"session") is True
            assert db.expire(b"session", None) is True
        assert _written(db) == before
        assert db.get(b"session") == b"x" * 10_000 and db.ttl(b"session") is None


def test_a_new_expiry_is_written_even_when_equal_and_kept(store_path):
    """An expiry equal to the key's own is written all the same: Redis's EXPIREAT counts as a change
    of the key for WATCH even then, and kvb serve's WATCH sees the key's writes."""
    with DB(store_path) as db:
        db.put(b"k", b"v" * 1000, ttl=3600)
        at = db.get_with_expiry(b"k")[1]
        before = _written(db)
        assert db.expire(b"k", expires_at=at) is True
        assert _written(db) > before
        assert db.persist(b"k") is True
        assert db.get_with_expiry(b"k") == (b"v" * 1000, None)
    with DB(store_path) as db:
        assert db.get_with_expiry(b"k") == (b"v" * 1000, None)
        assert db.persist(b"absent") is False


def test_a_transaction_sees_an_unchanged_expiry_as_before(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with db.transaction():
            assert db.persist(b"k") is True
            db.put(b"other", b"w")
        assert db.get(b"k") == b"v" and db.ttl(b"k") is None and db.get(b"other") == b"w"
