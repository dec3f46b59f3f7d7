"""Redis HyperLogLog: PFADD, PFCOUNT, PFMERGE over string values in Redis's own format.

The value is exactly what Redis stores, so a value read with ``GET`` from
redis-server and written with ``SET`` into kvb (or the other way round) keeps
counting the same: a 16-byte header (``HYLL``, the encoding, three zero bytes,
the cached count as 8 little-endian bytes whose top bit set means "stale"),
then 16384 registers, either *dense* (6 bits each, 12288 bytes) or *sparse*
(run-length opcodes). Elements are hashed with MurmurHash64A (seed 0xadc83b19)
as Redis hashes them: the low 14 bits pick the register, the position of the
lowest set bit of the rest (1 to 51) is the value it may raise the register to.

A new HLL starts sparse and changes exactly as Redis changes it (the same
opcode splits and merges), turning dense when a register needs a value above
32 or the sparse form would pass ``hll-sparse-max-bytes`` (3000 bytes with the
header, Redis's default), so the bytes match redis-server's for the same
commands. Counts use Redis 7's estimator (Ertl's improved raw estimate), so
they are the same numbers.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right

from kv_backend.structures.errors import CommandError, WrongTypeError, wrong_arity
from kv_backend.structures.keyspace import Keyspace, _name_limit
from kv_backend.structures.layout import META, T_STRING, Name, Value, _b

P = 14
REGISTERS = 1 << P  # 16384
Q = 64 - P  # 50 bits left for the run of zeros
HEADER = 16
DENSE_SIZE = HEADER + REGISTERS * 6 // 8
SPARSE_MAX_BYTES = 3000  # Redis's hll-sparse-max-bytes default
DENSE, SPARSE = 0, 1
ALPHA_INF = 0.721347520444481703680  # 1 / (2 ln 2)

NOT_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."
CORRUPT = "INVALIDOBJ Corrupted HLL object detected"

_M64 = (1 << 64) - 1
_MURMUR_M = 0xC6A4A7935BD1E995
_U64LE = struct.Struct("<Q")

# sparse opcodes, kept as (kind, run length, value)
_ZERO, _XZERO, _VAL = 0, 1, 2


def murmurhash64a(data: bytes, seed: int = 0xADC83B19) -> int:
    """MurmurHash64A of ``data`` (64-bit, little-endian blocks), the hash Redis's HyperLogLog uses."""
    m, r = _MURMUR_M, 47
    n = len(data)
    h = (seed ^ (n * m)) & _M64
    end = n - (n & 7)
    for (k,) in _U64LE.iter_unpack(data[:end]):
        k = (k * m) & _M64
        k ^= k >> r
        k = (k * m) & _M64
        h = ((h ^ k) * m) & _M64
    if n & 7:
        h = ((h ^ int.from_bytes(data[end:], "little")) * m) & _M64
    h ^= h >> r
    h = (h * m) & _M64
    return h ^ (h >> r)


def register_of(element: bytes) -> tuple[int, int]:
    """``(register index, value)`` an element counts for."""
    h = murmurhash64a(element)
    rest = (h >> P) | (1 << Q)
    return h & (REGISTERS - 1), (rest & -rest).bit_length()


def new_hll() -> bytes:
    """An empty HLL as Redis creates it: sparse, one run of 16384 zero registers."""
    return b"HYLL\x01\x00\x00\x00" + bytes(8) + b"\x7f\xff"


def is_hll(value: bytes) -> bool:
    """Whether a string value passes Redis's check for an HLL (header, encoding, dense size)."""
    if len(value) < HEADER or value[:4] != b"HYLL" or value[4] > SPARSE:
        return False
    return value[4] != DENSE or len(value) == DENSE_SIZE


def _invalidate(header: bytes | bytearray) -> bytes:
    return bytes(header[:15]) + bytes([header[15] | 0x80])


# ------------------------------------------------------------------ dense


def _dense_registers(data: bytes | bytearray) -> bytearray:
    """The 16384 registers of a dense body (12288 bytes), one byte each."""
    out = bytearray(REGISTERS)
    i = 0
    for x, y, z in zip(data[0::3], data[1::3], data[2::3], strict=True):
        out[i] = x & 63
        out[i + 1] = (x >> 6) | ((y & 15) << 2)
        out[i + 2] = (y >> 4) | ((z & 3) << 4)
        out[i + 3] = z >> 2
        i += 4
    return out


def _dense_body(registers: bytes | bytearray) -> bytes:
    """Pack 16384 one-byte registers into the dense body."""
    out = bytearray(REGISTERS * 6 // 8)
    j = 0
    for a, b, c, d in zip(registers[0::4], registers[1::4], registers[2::4], registers[3::4], strict=True):
        out[j] = (a | (b << 6)) & 0xFF
        out[j + 1] = ((b >> 2) | (c << 4)) & 0xFF
        out[j + 2] = ((c >> 4) | (d << 2)) & 0xFF
        j += 3
    return bytes(out)


def _dense_set(body: bytearray, index: int, value: int) -> bool:
    """Raise one register of a dense body to ``value``; whether it changed."""
    pos = index * 6
    byte, shift = pos >> 3, pos & 7
    current = body[byte] >> shift
    if shift > 2:
        current |= body[byte + 1] << (8 - shift)
    if value <= current & 63:
        return False
    body[byte] = (body[byte] & ~(63 << shift) & 0xFF) | ((value << shift) & 0xFF)
    if shift > 2:
        body[byte + 1] = (body[byte + 1] & ~(63 >> (8 - shift)) & 0xFF) | (value >> (8 - shift))
    return True


# ------------------------------------------------------------------ sparse


def _part_of(kind: int, length: int, value: int) -> tuple[int, int, int]:
    """The sparse opcode for ``length`` registers kept as they were when a run of ``kind``
    (VAL of ``value``, ZERO or XZERO) is split around the register being set: a VAL keeps its
    value; zeros take ZERO up to 64 registers, XZERO beyond."""
    if kind == _VAL:
        return (_VAL, length, value)
    return (_XZERO if length > 64 else _ZERO, length, 0)


class _Sparse:
    """A sparse body as a list of opcodes, changed exactly as Redis's ``hllSparseSet`` changes it.

    ``starts[i]`` is the first register of ``ops[i]``; replacing an opcode by a sequence that
    covers the same registers leaves every later start unchanged, so lookups are a bisection.
    """

    def __init__(self, body: bytes) -> None:
        ops: list[tuple[int, int, int]] = []
        starts: list[int] = []
        first = i = 0
        n = len(body)
        while i < n:
            b = body[i]
            if b & 0x80:
                op = (_VAL, (b & 3) + 1, ((b >> 2) & 31) + 1)
                i += 1
            elif b & 0x40:
                low = body[i + 1] if i + 1 < n else 0  # cut short: Redis reads the string's NUL end
                op = (_XZERO, ((b & 0x3F) << 8 | low) + 1, 0)
                i += 2
            else:
                op = (_ZERO, (b & 0x3F) + 1, 0)
                i += 1
            ops.append(op)
            starts.append(first)
            first += op[1]
        # A damaged body (runs not adding up to 16384 registers) fails only where Redis fails:
        # reading all registers, or setting one that no run covers.
        self.ops, self.starts, self.size, self.covered = ops, starts, n, first

    def registers(self) -> bytearray:
        if self.covered != REGISTERS:
            raise CommandError(CORRUPT)
        out = bytearray(REGISTERS)
        for (kind, run, value), first in zip(self.ops, self.starts, strict=True):
            if kind == _VAL:
                out[first : first + run] = bytes([value]) * run
        return out

    def body(self) -> bytes:
        out = bytearray()
        for kind, run, value in self.ops:
            if kind == _VAL:
                out.append(0x80 | (value - 1) << 2 | (run - 1))
            elif kind == _XZERO:
                out += bytes([0x40 | (run - 1) >> 8, (run - 1) & 0xFF])
            else:
                out.append(run - 1)
        return bytes(out)

    def set(self, index: int, count: int) -> bool | None:
        """Raise register ``index`` to ``count``: True if changed, False if not, None if the HLL
        must turn dense first (a value above 32, or the sparse form would grow too large)."""
        if index >= self.covered:
            raise CommandError(CORRUPT)
        if count > 32:
            return None
        ops, starts = self.ops, self.starts
        i = bisect_right(starts, index) - 1
        kind, run, value = ops[i]
        first = starts[i]
        if kind == _VAL and value >= count:
            return False
        if run == 1 and kind != _XZERO:  # a VAL or ZERO of one register: set it in place
            ops[i] = (_VAL, 1, count)
        else:
            last = first + run - 1
            seq: list[tuple[int, int, int]] = []
            if index != first:
                seq.append(_part_of(kind, index - first, value))
            seq.append((_VAL, 1, count))
            if index != last:
                seq.append(_part_of(kind, last - index, value))
            delta = sum(2 if k == _XZERO else 1 for k, _, _ in seq) - (2 if kind == _XZERO else 1)
            if delta > 0 and HEADER + self.size + delta > SPARSE_MAX_BYTES:
                return None
            new_starts = []
            at = first
            for op in seq:
                new_starts.append(at)
                at += op[1]
            ops[i : i + 1] = seq
            starts[i : i + 1] = new_starts
            self.size += delta
        self._merge(i - 1 if i > 0 else 0)
        return True

    def _merge(self, p: int) -> None:
        """Join neighbouring VAL opcodes of one value (up to 4 registers), looking at 5 opcodes
        from ``p``, as Redis does after each change."""
        ops, starts = self.ops, self.starts
        for _ in range(5):
            if p >= len(ops):
                return
            kind, run, value = ops[p]
            if kind == _VAL and p + 1 < len(ops):
                kind2, run2, value2 = ops[p + 1]
                if kind2 == _VAL and value2 == value and run + run2 <= 4:
                    ops[p : p + 2] = [(_VAL, run + run2, value)]
                    del starts[p + 1]
                    self.size -= 1
                    continue
            p += 1


# ------------------------------------------------------------------ counting


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= math.pow(1.0 - x, 2) * y
        if previous == z:
            return z / 3


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if previous == z:
            return z


def estimate(registers: bytes | bytearray) -> int:
    """The cardinality estimate of 16384 one-byte registers, computed as Redis 7 computes it."""
    histogram = [0] * 64
    for value in registers:
        histogram[value] += 1
    m = float(REGISTERS)
    z = m * _tau((m - histogram[Q + 1]) / m)
    for j in range(Q, 0, -1):
        z += histogram[j]
        z *= 0.5
    z += m * _sigma(histogram[0] / m)
    e = ALPHA_INF * m * m / z
    whole = math.floor(e)
    return int(whole + 1 if e - whole >= 0.5 else whole)  # llroundl: halves away from zero


def registers_of(value: bytes) -> bytearray:
    """The registers of a valid HLL value (:func:`is_hll`); INVALIDOBJ if its sparse body is damaged."""
    if value[4] == DENSE:
        return _dense_registers(value[HEADER:])
    return _Sparse(value[HEADER:]).registers()


class HyperLogLogs(Keyspace):
    """The HyperLogLog commands of :class:`~kv_backend.structures.Structures`."""

    def _hll(self, name: bytes) -> tuple[bytes, float] | None:
        """``(HLL value, absolute expiry or 0)``, None if missing; WRONGTYPE for other values."""
        found = self._record(META + name)
        if found is None:
            return None
        if found[0][0] != T_STRING:
            raise WrongTypeError()
        if not is_hll(found[0][1:]):
            raise WrongTypeError(NOT_HLL)
        return found[0][1:], found[1]

    @_name_limit(T_STRING)
    def pfadd(self, name: Name, *elements: Value) -> int:
        """Add elements to a HyperLogLog (creating it); 1 if a register changed or it was created."""
        name = _b(name)
        db = self.db
        with db.locked():
            found = self._hll(name)
            value = found[0] if found is not None else new_hll()
            changed = found is None
            header, body = value[:HEADER], value[HEADER:]
            sparse = _Sparse(body) if header[4] == SPARSE else None
            dense = bytearray(body) if sparse is None else None
            for element in elements:
                index, count = register_of(_b(element))
                if sparse is not None:
                    done = sparse.set(index, count)
                    if done is not None:
                        changed = changed or done
                        continue
                    dense = bytearray(_dense_body(sparse.registers()))
                    header = header[:4] + bytes([DENSE]) + header[5:]
                    sparse = None
                assert dense is not None
                changed = _dense_set(dense, index, count) or changed
            if changed:
                body = sparse.body() if sparse is not None else bytes(dense or b"")
                db.put(META + name, b"s" + _invalidate(header) + body, expires_at=found[1] if found else 0.0)
            return int(changed)

    def pfcount(self, *names: Name) -> int:
        """The estimated number of distinct elements added to one HyperLogLog, or to the union of
        several (which are left as they are). A missing key counts as empty.

        For one key, the count is cached in the value as Redis caches it (a write, so a WATCH on
        the key sees it as Redis's does).
        """
        if not names:
            raise wrong_arity("pfcount")
        if len(names) > 1:
            merged = bytearray(REGISTERS)
            for n in names:
                found = self._hll(_b(n))
                if found is not None:
                    merged = bytearray(map(max, merged, registers_of(found[0])))
            return estimate(merged)
        name = _b(names[0])
        # One record, read as it is: a missing key or a valid cached count needs no write lock (which
        # another process may hold for long), nor does a store opened read-only, which cannot cache.
        found = self._hll(name)
        if found is None:
            return 0
        value = found[0]
        if not value[15] & 0x80:  # the cached count is valid
            return int.from_bytes(value[8:16], "little")
        if self.db.read_only:
            return estimate(registers_of(value))
        with self.db.locked():
            found = self._hll(name)
            if found is None:
                return 0
            value, expiry = found
            if not value[15] & 0x80:  # the cached count is valid
                return int.from_bytes(value[8:16], "little")
            count = estimate(registers_of(value))
            cached = value[:8] + count.to_bytes(8, "little") + value[HEADER:]
            self.db.put(META + name, b"s" + cached, expires_at=expiry)
            return count

    @_name_limit(T_STRING)
    def pfmerge(self, dest: Name, *sources: Name) -> bool:
        """Store the union of HyperLogLogs (``dest`` itself included) at ``dest``."""
        dest = _b(dest)
        db = self.db
        with db.locked():
            merged = bytearray(REGISTERS)
            use_dense = False
            target = None
            for n in (dest, *(_b(s) for s in sources)):
                found = self._hll(n)
                if found is None:
                    continue
                if n == dest and target is None:
                    target = found
                use_dense = use_dense or found[0][4] == DENSE
                merged = bytearray(map(max, merged, registers_of(found[0])))
            value = target[0] if target is not None else new_hll()
            header = value[:HEADER]
            body: bytes | None = None
            if not use_dense and header[4] == SPARSE:
                sparse = _Sparse(value[HEADER:])
                for index, count in enumerate(merged):
                    if count and sparse.set(index, count) is None:
                        break
                else:
                    body = sparse.body()
            if body is None:
                header = header[:4] + bytes([DENSE]) + header[5:]
                body = _dense_body(merged)
            db.put(META + dest, b"s" + _invalidate(header) + body, expires_at=target[1] if target else 0.0)
            return True
