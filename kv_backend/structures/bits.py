"""Redis bitmaps: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP and BITFIELD over string values.

A bitmap is an ordinary string: bit 0 is the most significant bit of the first
byte, and a write past the end pads the string with zero bytes, so ``GET``,
``STRLEN``, ``APPEND`` and ``SETRANGE`` see exactly the bytes Redis would hold.
Every write rewrites the key's one record (a string is stored whole), keeping
its TTL, as Redis's in-place changes keep it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kv_backend.errors import InvalidArgumentError, NotAnIntegerError
from kv_backend.structures.errors import CommandError, WrongTypeError, c_string, wrong_arity
from kv_backend.structures.keyspace import Keyspace, _name_limit
from kv_backend.structures.layout import META, T_STRING, Name, Value, _b, _pairs
from kv_backend.structures.parsing import keyword, parse_int
from kv_backend.structures.strings import MAX_STRING_SIZE

#: Bit offsets go up to 2**32 - 1: the last bit of a 512 MiB string.
MAX_BIT_OFFSET = MAX_STRING_SIZE * 8 - 1

BIT_OFFSET_ERROR = "ERR bit offset is not an integer or out of range"
BIT_VALUE_ERROR = "ERR bit is not an integer or out of range"
BITFIELD_TYPE_ERROR = (
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
)

_WRAP, _SAT, _FAIL = b"WRAP", b"SAT", b"FAIL"


def _int_or(raw: Value, message: str) -> int:
    try:
        return parse_int(raw)
    except NotAnIntegerError:
        raise CommandError(message) from None


def bit_offset(raw: Value, bits: int = 0) -> int:
    """A bit offset argument checked as Redis checks it: 0 to 2**32 - 1.

    With ``bits`` (BITFIELD), ``#n`` means the n-th field of that width (``n * bits``), a product
    Redis makes in 64 bits that wrap, as kvb does: ``#-9223372036854775808`` of ``u8`` is offset 0.
    """
    if bits and isinstance(raw, (bytes, str)) and _b(raw)[:1] == b"#":
        offset = (_int_or(_b(raw)[1:], BIT_OFFSET_ERROR) * bits + 2**63) % 2**64 - 2**63
    else:
        offset = _int_or(raw, BIT_OFFSET_ERROR)
    if not 0 <= offset <= MAX_BIT_OFFSET:
        raise CommandError(BIT_OFFSET_ERROR)
    return offset


def _range(length: int, start: int, end: int, bit_unit: bool) -> tuple[int, int] | None:
    """An inclusive range of bits ``(first, last)`` from Redis's start/end (negative: from the end),
    clamped to a string of ``length`` bytes; None when it is empty."""
    total = length * 8 if bit_unit else length
    if start < 0:
        start = max(total + start, 0)
    if end < 0:
        end = max(total + end, 0)
    end = min(end, total - 1)
    if start > end:
        return None
    return (start, end) if bit_unit else (start * 8, end * 8 + 7)


def _unit(mode: Value | None) -> bool:
    """True for BIT, False for BYTE (the default), as BITCOUNT/BITPOS read their last argument."""
    if mode is None:
        return False
    word = keyword(mode)
    if word == b"BIT":
        return True
    if word == b"BYTE":
        return False
    raise CommandError("ERR syntax error")


def _bits_of(value: bytes, first: int, last: int) -> int:
    """The bits ``first..last`` (inclusive) of ``value`` as an unsigned integer."""
    chunk = int.from_bytes(value[first >> 3 : (last >> 3) + 1], "big")
    return (chunk >> (7 - (last & 7))) & ((1 << (last - first + 1)) - 1)


def _get_field(buf: bytes | bytearray, offset: int, bits: int) -> int:
    """An unsigned ``bits``-wide field at bit ``offset`` (zeros past the end)."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    chunk = bytes(buf[first : last + 1]).ljust(last - first + 1, b"\x00")
    return (int.from_bytes(chunk, "big") >> ((last - first + 1) * 8 - (offset & 7) - bits)) & (
        (1 << bits) - 1
    )


def _set_field(buf: bytearray, offset: int, bits: int, value: int) -> None:
    """Store the low ``bits`` bits of ``value`` at bit ``offset`` (``buf`` long enough)."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    size = last - first + 1
    shift = size * 8 - (offset & 7) - bits
    mask = ((1 << bits) - 1) << shift
    chunk = int.from_bytes(buf[first : last + 1], "big")
    chunk = (chunk & ~mask) | ((value << shift) & mask)
    buf[first : last + 1] = chunk.to_bytes(size, "big")


def _field_type(raw: bytes) -> tuple[bool, int]:
    """A BITFIELD type (``i1``..``i64``, ``u1``..``u63``): ``(signed, bits)``."""
    signed = raw[:1] == b"i"
    if not signed and raw[:1] != b"u":
        raise CommandError(BITFIELD_TYPE_ERROR)
    try:
        bits = parse_int(c_string(raw[1:]))  # Redis reads the width as a C string
    except NotAnIntegerError:
        raise CommandError(BITFIELD_TYPE_ERROR) from None
    if not 1 <= bits <= (64 if signed else 63):
        raise CommandError(BITFIELD_TYPE_ERROR)
    return signed, bits


# one BITFIELD operation: (opcode, signed, bits, offset, value, overflow)
_Op = tuple[bytes, bool, int, int, int, bytes]


#: BITFIELD's subcommands: a call of two words led by one is Redis's form, not redis-py's ``bitfield_ro``
_SUBCOMMANDS = (b"GET", b"SET", b"INCRBY", b"OVERFLOW")


def parse_bitfield(words: list[bytes]) -> list[_Op]:
    """BITFIELD's operations, checked in Redis's order (each one's syntax, type, offset, value)."""
    ops: list[_Op] = []
    overflow = _WRAP
    i, n = 0, len(words)
    while i < n:
        sub = keyword(words[i])
        left = n - i - 1
        if sub == b"OVERFLOW" and left >= 1:
            overflow = keyword(words[i + 1])
            if overflow not in (_WRAP, _SAT, _FAIL):
                raise CommandError("ERR Invalid OVERFLOW type specified")
            i += 2
            continue
        if not ((sub == b"GET" and left >= 2) or (sub in (b"SET", b"INCRBY") and left >= 3)):
            raise CommandError("ERR syntax error")
        signed, bits = _field_type(words[i + 1])
        offset = bit_offset(words[i + 2], bits)
        value = 0
        if sub != b"GET":
            value = parse_int(words[i + 3])
        ops.append((sub, signed, bits, offset, value, overflow))
        i += 3 if sub == b"GET" else 4
    return ops


def _apply(op: _Op, buf: bytearray) -> tuple[int | None, bool]:
    """Run one BITFIELD SET/INCRBY on ``buf``: its reply (None: OVERFLOW FAIL stopped it) and
    whether it changed the field."""
    sub, signed, bits, offset, value, overflow = op
    old = _get_field(buf, offset, bits)
    if signed:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if old > high:
            old -= 1 << bits
        new = old + value if sub == b"INCRBY" else value
    else:
        low, high = 0, (1 << bits) - 1
        # SET reads its value as a 64-bit unsigned number, as Redis does: -1 is 2**64 - 1
        new = old + value if sub == b"INCRBY" else value % (1 << 64)
    if not low <= new <= high:
        if overflow == _FAIL:
            return None, False
        if overflow == _WRAP:
            new = (new - low) % (1 << bits) + low
        else:
            # Redis computes "max - value" in 64 bits: a SET below max - 2**63 overflows that and
            # saturates to the maximum, not the minimum (SET i5 0 -9223372036854775808 stores 15)
            up = new > high or (signed and bits < 64 and sub == b"SET" and new <= high - (1 << 63))
            new = high if up else low
    _set_field(buf, offset, bits, new)
    return new if sub == b"INCRBY" else old, new != old


class Bits(Keyspace):
    """The bitmap commands of :class:`~kv_backend.structures.Structures` (bits of string values)."""

    if TYPE_CHECKING:  # Strings.set, which Structures combines with this

        def set(self, name: Name, value: Value) -> Any: ...

    def _string(self, mk: bytes) -> tuple[bytes, float] | None:
        """``(string value, absolute expiry or 0)`` of a live key, None if missing; WRONGTYPE otherwise."""
        found = self._record(mk)
        if found is None:
            return None
        if found[0][0] != T_STRING:
            raise WrongTypeError()
        return found[0][1:], found[1]

    @_name_limit(T_STRING)
    def setbit(self, name: Name, offset: int | Value, value: int | Value) -> int:
        """Set or clear one bit (growing the string with zero bytes); return the bit's old value."""
        offset = bit_offset(offset)
        bit = _int_or(value, BIT_VALUE_ERROR)
        if bit not in (0, 1):
            raise CommandError(BIT_VALUE_ERROR)
        mk = META + _b(name)
        db = self.db
        with db.locked():
            found = self._string(mk)
            data = bytearray(found[0] if found is not None else b"")
            byte = offset >> 3
            grown = byte >= len(data)
            if grown:
                data.extend(bytes(byte + 1 - len(data)))
            mask = 0x80 >> (offset & 7)
            old = 1 if data[byte] & mask else 0
            if found is None or grown or old != bit:  # otherwise nothing changes (WATCH sees no write)
                data[byte] = data[byte] | mask if bit else data[byte] & ~mask
                db.put(mk, b"s" + data, expires_at=found[1] if found is not None else 0.0)
            return old

    def getbit(self, name: Name, offset: int | Value) -> int:
        """The value of one bit (0 past the end of the string or for a missing key)."""
        offset = bit_offset(offset)
        found = self._string(META + _b(name))
        if found is None or offset >> 3 >= len(found[0]):
            return 0
        return 1 if found[0][offset >> 3] & (0x80 >> (offset & 7)) else 0

    def bitcount(
        self,
        name: Name,
        start: int | Value | None = None,
        end: int | Value | None = None,
        mode: Value | None = None,
    ) -> int:
        """The number of set bits, in the whole string or from ``start`` to ``end`` (inclusive,
        negative: from the end) counted in bytes or, with ``mode="BIT"``, in bits.

        A missing key counts 0 whatever the arguments, as in Redis 7 (the key is looked up first).
        """
        found = self._string(META + _b(name))
        if found is None:
            return 0
        value = found[0]
        if start is None and end is None and mode is None:
            return int.from_bytes(value, "big").bit_count()
        if start is None or end is None:
            raise CommandError("ERR syntax error")
        start, end = parse_int(start), parse_int(end)
        if start < 0 and end < 0 and start > end:
            return 0  # as Redis 7 (before it reads BYTE|BIT): both from the end, the wrong way round
        span = _range(len(value), start, end, _unit(mode))
        return 0 if span is None else _bits_of(value, *span).bit_count()

    def bitpos(
        self,
        name: Name,
        bit: int | Value,
        start: int | Value | None = None,
        end: int | Value | None = None,
        mode: Value | None = None,
    ) -> int:
        """The position of the first bit set to ``bit`` (0 or 1), from ``start`` to ``end``
        (inclusive, negative: from the end), in bytes or, with ``mode="BIT"``, in bits; -1 if none.

        As in Redis, a search for a 0 without ``end`` that finds only ones answers the first bit
        past the string (the string reads as padded with zeros), and a missing key answers 0 for a
        0 bit and -1 for a 1, whatever the other arguments.
        """
        try:
            want = parse_int(bit)
        except NotAnIntegerError:
            raise CommandError("ERR value is not an integer or out of range") from None
        if want not in (0, 1):
            raise CommandError("ERR The bit argument must be 1 or 0.")
        found = self._string(META + _b(name))
        if found is None:
            return -1 if want else 0
        value = found[0]
        if mode is not None and end is None:
            raise CommandError("ERR syntax error")
        first = 0 if start is None else parse_int(start)
        bit_unit = _unit(mode)
        last = len(value) - 1 if end is None else parse_int(end)
        span = _range(len(value), first, last, bit_unit)
        if span is None:
            return -1
        lo, hi = span
        pos = _first_bit(value, lo, hi, want)
        if pos is not None:
            return pos
        if want == 0 and end is None:
            return hi + 1  # past the range: the string reads as padded with zero bits
        return -1

    @_name_limit(T_STRING)
    def bitop(self, operation: Value, dest: Name, *keys: Name) -> int:
        """Store AND, OR, XOR of strings (NOT of one) at ``dest``; return its length.

        Shorter strings (and missing keys) count as zero-padded. ``dest`` is replaced whatever it
        held, without TTL; an empty result deletes it, as in Redis.
        """
        op = keyword(operation)
        if op not in (b"AND", b"OR", b"XOR", b"NOT"):
            raise CommandError("ERR syntax error")
        if op == b"NOT" and len(keys) != 1:
            raise CommandError("ERR BITOP NOT must be called with a single source key.")
        if not keys:
            raise wrong_arity("bitop")
        db = self.db
        with db.locked():
            values = []
            for key in keys:
                found = self._string(META + _b(key))
                values.append(found[0] if found is not None else b"")
            size = max(len(v) for v in values)
            if size == 0:
                self.delete(dest)
                return 0
            nums = [int.from_bytes(v.ljust(size, b"\x00"), "big") for v in values]
            result = nums[0]
            if op == b"NOT":
                result = ~result & ((1 << (size * 8)) - 1)
            for n in nums[1:]:
                if op == b"AND":
                    result &= n
                elif op == b"OR":
                    result |= n
                else:
                    result ^= n
            self.set(dest, result.to_bytes(size, "big"))
            return size

    @_name_limit(T_STRING)
    def bitfield(self, name: Name, *words: Value) -> list[int | None]:
        """Run BITFIELD's operations (``"GET", "i8", 0, "SET", "u4", "#2", 9, "OVERFLOW", "SAT",
        "INCRBY", "i5", 100, 1`` ...) on one string; return their replies (None: OVERFLOW FAIL).

        Offsets may be ``#n`` (the n-th field of the type's width). A SET or INCRBY grows the string
        (creating it) up to its last field first, as Redis does, even when OVERFLOW FAIL stops it.
        """
        return self._bitfield(name, words, readonly=False)

    def bitfield_ro(
        self, name: Name, *words: Value, items: Iterable[tuple[Value, Value]] | None = None
    ) -> list[int | None]:
        """:meth:`bitfield` with GET operations only (BITFIELD_RO).

        Also redis-py's form, ``bitfield_ro(name, encoding, offset, items=[(encoding, offset),
        ...])``: a GET of each field.
        """
        if items is not None or (len(words) == 2 and keyword(words[0]) not in _SUBCOMMANDS):
            if len(words) != 2:
                raise InvalidArgumentError(
                    "bitfield_ro(name, encoding, offset, items=...) takes one field before items"
                )
            fields = [(words[0], words[1]), *_pairs([] if items is None else items, "items")]
            words = tuple(w for encoding, offset in fields for w in (b"GET", encoding, offset))
        return self._bitfield(name, words, readonly=True)

    def _bitfield(self, name: Name, words: tuple[Value, ...], readonly: bool) -> list[int | None]:
        ops = parse_bitfield([_b(w) for w in words])
        writes = [op for op in ops if op[0] != b"GET"]
        if writes and readonly:
            raise CommandError("ERR BITFIELD_RO only supports the GET subcommand")
        mk = META + _b(name)
        db = self.db
        if not writes:
            found = self._string(mk)
            value = found[0] if found is not None else b""
            return [_get_op(op, value) for op in ops]
        with db.locked():
            found = self._string(mk)
            buf = bytearray(found[0] if found is not None else b"")
            size = (max(op[3] + op[2] - 1 for op in writes) >> 3) + 1
            changed = size > len(buf)
            if changed:
                buf.extend(bytes(size - len(buf)))
            replies: list[int | None] = []
            for op in ops:
                if op[0] == b"GET":
                    replies.append(_get_op(op, buf))
                else:
                    reply, differs = _apply(op, buf)
                    replies.append(reply)
                    changed = changed or differs
            if changed:  # as Redis 7: fields set to the values they had are no change (for WATCH)
                db.put(mk, b"s" + buf, expires_at=found[1] if found is not None else 0.0)
            return replies


def _get_op(op: _Op, value: bytes | bytearray) -> int:
    _, signed, bits, offset, _, _ = op
    n = _get_field(value, offset, bits)
    if signed and n >> (bits - 1):
        n -= 1 << bits
    return n


def _first_bit(value: bytes, lo: int, hi: int, want: int) -> int | None:
    """The position of the first bit equal to ``want`` in bits ``lo..hi`` of ``value``, or None."""
    # the partial first and last bytes first, then whole bytes (skipped at C speed by lstrip)
    while lo <= hi and lo & 7:
        if (value[lo >> 3] >> (7 - (lo & 7))) & 1 == want:
            return lo
        lo += 1
    if lo > hi:
        return None
    whole_end = (hi + 1) >> 3  # bytes lo>>3 .. whole_end-1 are entirely in range
    middle = value[lo >> 3 : whole_end]
    skip = b"\x00" if want else b"\xff"
    rest = middle.lstrip(skip)
    if rest:
        byte = (lo >> 3) + len(middle) - len(rest)
        b = rest[0] if want else rest[0] ^ 0xFF
        return byte * 8 + 8 - b.bit_length()
    pos = whole_end * 8
    while pos <= hi:
        if (value[pos >> 3] >> (7 - (pos & 7))) & 1 == want:
            return pos
        pos += 1
    return None
