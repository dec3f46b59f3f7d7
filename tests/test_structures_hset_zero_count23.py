"""HSET of one existing field under a hash-sized metadata record whose counts no hash has (#7).

HSET's fast path (one field, already there) checked only the tag and size of the key's metadata
record: a record of a hash's 17 bytes counting 0 members (the last member's removal deletes a hash's
record, so the layout never writes one), or numbers past any a hash reaches, passed for a hash and the
field's record was overwritten, where every other hash command refuses the key (ForeignRecordError;
kvb serve's error). HSET now refuses it too, writing nothing.
"""

from __future__ import annotations

import random
import struct

import pytest
from test_structures_hset_foreign_size22 import FIELD, assert_refused, assert_serve_refuses

from kv_backend import DB
from kv_backend.structures import Structures
from kv_backend.structures.layout import _BOUND, HASH_META_ABOVE, HASH_META_BELOW, T_HASH, counts

#: HSET's forms, and two commands that read the count (HGET, HEXISTS, HSTRLEN and HMGET check it too:
#: tests/test_resp_zero_count24.py).
CALLS = [
    lambda s: s.hset("bar", "f", "new"),
    lambda s: s.hset("bar", mapping={"f": "new"}),
    lambda s: s.hset_pairs("bar", [("f", "new")]),
    lambda s: s.hmset("bar", {"f": "new"}),
    lambda s: s.hsetnx("bar", "f", "new"),
    lambda s: s.hlen("bar"),
    lambda s: s.hgetall("bar"),
]
_COUNTS = struct.Struct(">QQ")
RECORDS = {
    "zero count": b"h" + _COUNTS.pack(0, 0),
    "zero count, version 7": b"h" + _COUNTS.pack(0, 7),
    "count past the bound": b"h" + _COUNTS.pack(1 << 48, 1),
    "version past the bound": b"h" + _COUNTS.pack(1, 1 << 48),
}


@pytest.fixture(params=list(RECORDS.values()), ids=list(RECORDS))
def path(tmp_path, request):
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", request.param)
        db.put(FIELD, b"old")
    return path, request.param


def test_hset_of_an_existing_field_is_refused_as_every_hash_command_refuses_it(path):
    assert_refused(*path, CALLS)


def test_kvb_serve_answers_an_error_and_writes_nothing(path):
    assert_serve_refuses(*path)


def test_a_hash_at_the_largest_counts_the_layout_accepts_is_overwritten_in_place(tmp_path):
    """The check refuses only what counts() refuses: a record one below each bound is a hash's."""
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", b"h" + _COUNTS.pack((1 << 48) - 1, (1 << 48) - 1))
        db.put(FIELD, b"old")
    with Structures(path) as s:
        assert s.hset("bar", "f", "new") == 0
        assert s.db.get(FIELD) == b"new"


def test_the_fast_paths_bytes_comparison_accepts_what_counts_accepts():
    """HSET's fast path compares the record as bytes instead of unpacking it: the same answer as the
    layout's one check of a metadata record, at every bound and for random records of a hash's size."""
    numbers = [0, 1, 2, 255, 256, _BOUND - 1, _BOUND, _BOUND + 1, 1 << 56, (1 << 64) - 1]
    records = [
        bytes([tag]) + _COUNTS.pack(c, v)
        for tag in (T_HASH - 1, T_HASH, T_HASH + 1)
        for c in numbers
        for v in numbers
    ]
    rng = random.Random(23)
    records += [bytes([T_HASH]) + rng.randbytes(16) for _ in range(2000)]
    records += [bytes([T_HASH]) + bytes(rng.choice((0, 1, 255)) for _ in range(16)) for _ in range(2000)]
    for meta in records:
        fast = HASH_META_ABOVE < meta < HASH_META_BELOW and not meta[9] and not meta[10]
        assert fast == (meta[0] == T_HASH and counts(meta) is not None), meta
