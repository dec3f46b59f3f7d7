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

import os
import warnings
import zlib
from collections.abc import Callable
from typing import Any

Crc32 = Callable[[Any], int]


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
