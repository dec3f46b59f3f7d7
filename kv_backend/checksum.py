"""The CRC-32 that guards every record and hint file, computed by the fastest implementation at hand.

All implementations compute the same checksum as :func:`zlib.crc32` (the
gzip polynomial), so files written with one are read with any other. When
the ``isal`` package (Intel's ISA-L, installed with kv_backend on the
platforms it ships wheels for) is importable, its carry-less-multiply CRC is
used: several times faster than zlib's table-driven one, and it leaves no
lookup tables in the CPU cache, which matters to short record reads. Set
``KVB_CRC=zlib`` in the environment to force the standard library's.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import Any

Crc32 = Callable[[Any], int]


def pick_crc32(preference: str | None = None) -> tuple[Crc32, str]:
    """Return ``(crc32 function, implementation name)``: ISA-L's when available, else zlib's."""
    if preference is None:
        preference = os.environ.get("KVB_CRC", "")
    if preference != "zlib":
        try:
            from isal import isal_zlib
        except ImportError:
            pass
        else:
            return isal_zlib.crc32, "isal"
    return zlib.crc32, "zlib"


crc32, IMPLEMENTATION = pick_crc32()
