"""The store several engine tests start from: five puts and a batch of two, in one data file."""

from __future__ import annotations

from kv_backend import DB
from kv_backend.state import published_tail

#: What the five puts store (the batch's keys are b0 and b1).
PUTS = {b"a%d" % i: b"x%d" % i for i in range(5)}


def puts_and_a_batch(path: str) -> tuple[int, int]:
    """Write the five puts of :data:`PUTS`, then a batch of two (b0 and b1), to the store at ``path``;
    return the published tail ``(major, end)``, the batch's COMMIT last before that end."""
    with DB(path) as db:
        for key, value in PUTS.items():
            db.put(key, value)
        with db.batch() as b:
            b.put(b"b0", b"in batch 0")
            b.put(b"b1", b"in batch 1")
    return published_tail(path)
