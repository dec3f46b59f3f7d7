"""The CRC-32 that guards every record and hint file, computed by the fastest implementation at hand.

All implementations compute the same checksum as :func:`zlib.crc32` (the
gzip polynomial), so files written with one are read with any other. When
the ``isal`` package (Intel's ISA-L, installed with kv_backend on the
platforms it ships wheels for) is importable, its carry-less-multiply CRC is
used: several times faster than zlib's table-driven one, and it leaves no
lookup tables in the CPU cache, which matters to short record reads. Set
``KVB_CRC=zlib`` in the environment to force the standard library's
(``KVB_CRC=isal`` asks for ISA-L's, the default where it is installed); any
other value is warned about (``RuntimeWarning``) and ignored.
"""

from __future__ import annotations

import array
import functools
import os
import warnings
import zlib
from collections.abc import Callable

Crc32 = Callable[..., int]  # (data, value=0): the CRC-32 of data, continuing value


def pick_crc32(preference: str | None = None) -> tuple[Crc32, str]:
    """Return ``(crc32 function, implementation name)``: ISA-L's when available, else zlib's."""
    if preference is None:
        preference = os.environ.get("KVB_CRC", "")
    preference = preference.strip().lower()
    if preference not in ("", "zlib", "isal"):
        # A typo (KVB_CRC=zlb) must not pass for the default without a word: say what is taken.
        warnings.warn(
            f"KVB_CRC={preference!r} is not a CRC-32 implementation kv_backend knows: set it to 'zlib' "
            "(the standard library's) or 'isal' (ISA-L's, the default where installed), or unset it; "
            "ignored",
            RuntimeWarning,
            stacklevel=2,
        )
    if preference != "zlib":
        try:
            from isal import isal_zlib
        except ImportError:
            if preference == "isal":
                warnings.warn(
                    "KVB_CRC='isal' but the isal package cannot be imported (pip install isal); "
                    "using zlib's CRC-32",
                    RuntimeWarning,
                    stacklevel=2,
                )
        else:
            return isal_zlib.crc32, "isal"
    return zlib.crc32, "zlib"


crc32, IMPLEMENTATION = pick_crc32()


_POLY = 0xEDB88320  # the CRC-32 polynomial, reflected (bit 31 is x^0), as zlib holds it


def _multmodp(a: int, b: int) -> int:
    """``a * b`` modulo the CRC-32 polynomial, both reflected."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


_X2N = [1 << 30]  # x^(2^k) modulo the polynomial, k = 0, 1, ...
for _ in range(63):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


@functools.lru_cache(maxsize=4096)
def _zeros_shift(n: int) -> int:
    """x^(8n) modulo the polynomial: what ``n`` more bytes do to the CRC before them."""
    p, k = 1 << 31, 3
    while n:
        if n & 1:
            p = _multmodp(_X2N[k], p)
        n >>= 1
        k += 1
    return p


@functools.lru_cache(maxsize=16)
def _shift_tables(n: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """What ``n`` more bytes do to a CRC, as four tables, one per byte of the CRC: 4 look-ups in
    place of :func:`_multmodp`'s 32 steps, for a length that recurs."""
    images = [_zeros_shift(n)]  # of x^0, x^1, ..., x^31: bit 31 - d of a CRC stands for x^d
    for _ in range(31):
        p = images[-1]
        images.append((p >> 1) ^ _POLY if p & 1 else p >> 1)
    tables = []
    for j in range(4):
        bits = [images[31 - 8 * j - k] for k in range(8)]
        table = [0] * 256
        for b in range(1, 256):
            low = b & -b
            table[b] = table[b ^ low] ^ bits[low.bit_length() - 1]
        tables.append(table)
    return tables[0], tables[1], tables[2], tables[3]


_uses: dict[int, int] = {}  # how often each length was combined, while few lengths were


def _crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc1`` of ``a``, ``crc2`` of ``b`` and ``len(b)`` (zlib's
    crc32_combine, for a Python whose zlib does not offer it, before 3.14)."""
    seen = _uses.get(len2, 0) + 1
    if seen < 16:
        if len(_uses) > 4096:
            _uses.clear()
        _uses[len2] = seen
        return _multmodp(_zeros_shift(len2), crc1) ^ crc2
    t0, t1, t2, t3 = _shift_tables(len2)
    return t0[crc1 & 255] ^ t1[crc1 >> 8 & 255] ^ t2[crc1 >> 16 & 255] ^ t3[crc1 >> 24] ^ crc2


def pick_combine(implementation: str) -> Callable[[int, int, int], int]:
    """The ``crc32_combine(crc1, crc2, len2)`` that goes with the CRC-32 ``implementation``: its own
    where it has one, else a pure-Python one (the same result: the combination is arithmetic)."""
    if implementation == "isal":
        from isal import isal_zlib

        return isal_zlib.crc32_combine
    return getattr(zlib, "crc32_combine", _crc32_combine)


crc32_combine = pick_combine(IMPLEMENTATION)

#: Bytes between two prefix CRCs :class:`RangeCrc` keeps: a range's CRC then checksums at most
#: twice that many bytes.
RANGE_STEP = 1024


class RangeCrc:
    """The CRC-32 of any range of bytes of a region, at a cost that does not grow with the range.

    ``read(offset, n)`` returns the region's bytes (fewer at the end of its file); ``crc`` is the
    CRC-32 function to use (``crc(data, value)``), this module's by default. The CRCs of the
    prefixes ``[base, base + i * RANGE_STEP)`` are computed once, in order, as far as a range asks;
    a range's CRC follows from the prefixes at its two ends (``crc32_combine``), so that checking
    many overlapping ranges (every candidate record of a resynchronisation) reads each byte once.
    """

    def __init__(self, read: Callable[[int, int], bytes], base: int, crc: Crc32 | None = None) -> None:
        self._read = read
        self._base = base
        self._crc32 = crc32 if crc is None else crc
        self._marks = array.array("I", [0])  # CRC of [base, base + i * RANGE_STEP)

    def _prefix(self, x: int) -> int | None:
        """The CRC of ``[base, x)``; None if the file holds fewer bytes."""
        i, rest = divmod(x - self._base, RANGE_STEP)
        marks = self._marks
        if i >= len(marks):
            self._extend(i)
            if i >= len(marks):
                return None
        if not rest:
            return marks[i]
        data = self._read(x - rest, rest)
        return self._crc32(data, marks[i]) if len(data) == rest else None

    def _extend(self, i: int) -> None:
        """Compute the prefix CRCs up to the ``i``-th (fewer if the file ends first)."""
        marks, checksum = self._marks, self._crc32
        while len(marks) <= i:
            want = min(i + 1 - len(marks), 1024) * RANGE_STEP
            data = memoryview(self._read(self._base + (len(marks) - 1) * RANGE_STEP, want))
            crc = marks[-1]
            for j in range(0, len(data) - RANGE_STEP + 1, RANGE_STEP):
                crc = checksum(data[j : j + RANGE_STEP], crc)
                marks.append(crc)
            if len(data) < want:
                return

    def crc(self, start: int, end: int) -> int | None:
        """The CRC-32 of the bytes ``[start, end)`` (``start >= base``); None if the file holds fewer."""
        a = self._prefix(start)
        b = None if a is None else self._prefix(end)
        return None if a is None or b is None else b ^ crc32_combine(a, 0, end - start)
