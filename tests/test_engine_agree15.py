"""Engine readers agree on damaged data: the flags byte after a damaged header, a COMMIT that does
not match past the published end, and what a backup takes for an unfinished write."""

from __future__ import annotations

from helpers import data_files
from test_engine_review13 import _damage_key_length, _offsets, _patch, _salvaged_matches_db

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check


def _set_flags(path: str, at: int, flags: int) -> None:
    """Give the record at ``at`` of data file ``path`` the flags byte ``flags``, its CRC matching."""
    with open(path, "rb") as f:
        f.seek(at)
        head = f.read(rec.HEADER_SIZE)
        _, _, _, klen, vlen, _ = rec.HEADER.unpack(head)
        f.seek(at + 4)
        body = bytearray(f.read(rec.HEADER_SIZE - 4 + klen + vlen))
    body[1] = flags
    _patch(path, at, rec.crc32(bytes(body)).to_bytes(4, "little") + bytes(body))


def test_reading_resumes_at_a_record_with_reserved_flag_bits_after_a_damaged_header(store_path, tmp_path):
    """A sound record whose flags byte has bits above bit 0 set (which readers ignore) right after a
    damaged header: the resynchronisation passed it over (it took only flags 0 or 1), so replay,
    kvb check and salvage lost its key while the format reader (and the normal reading, which
    ignores those bits) read it. Reading now resumes at it."""
    import test_format_reader11 as reader

    with DB(store_path) as db:
        for i in range(6):
            db.put(b"k%d" % i, b"v%d" % i * 8)
    active = data_files(store_path)[-1]
    at = _offsets(active)
    _set_flags(active, at[b"k3"], 0x82)
    _set_flags(active, at[b"k4"], 0x04)  # a plain record too: bit 0 clear
    _damage_key_length(active, b"k2")
    want = {b"k%d" % i: b"v%d" % i * 8 for i in range(6) if i != 2}
    assert {k: v[0] for k, v in reader.read_store(store_path).items()} == want
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == want
        assert db.stats()["corrupt_records"] == 1
    assert [p.offset for p in check(store_path).problems] == [at[b"k2"]]
    _salvaged_matches_db(store_path, str(tmp_path / "copy"))
    reader.assert_same(store_path)


def test_reserved_flag_bits_do_not_change_what_a_record_means(store_path):
    """Bits 1..7 of the flags byte are reserved: a record that sets them reads as one without them
    (bit 0 still puts it in a batch), in replay and in the format reader alike."""
    import test_format_reader11 as reader

    with DB(store_path) as db:
        db.put(b"a", b"1")
        with db.batch() as b:
            b.put(b"b", b"2")
            b.put(b"c", b"3")
        db.put(b"d", b"4")
    active = data_files(store_path)[-1]
    at = _offsets(active)
    _set_flags(active, at[b"a"], 0x40)
    _set_flags(active, at[b"c"], 0x03)
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
    assert not check(store_path).problems
    reader.assert_same(store_path)
