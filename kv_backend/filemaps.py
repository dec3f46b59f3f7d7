"""Read-only memory maps of data files that hold no file descriptor of their own.

Python's ``mmap`` keeps a duplicate of the descriptor it maps (before Python 3.13, which can
drop it: ``trackfd=False``), so a process with thousands of data files mapped holds thousands
of descriptors. :func:`map_file` maps a file without one, and can also give a map that reads
as the file followed by zeros up to a length past its end (what the engine reads a data file
that lost bytes as, see :func:`kv_backend.unpublished.filled_end`), without copying the file
into memory and without materialising the zeros: an anonymous read-only map of the whole
length, which reads as zeros and takes no memory, has the file mapped over its first part.
Both are ordinary ``mmap`` objects, sliced and read exactly as the maps of whole files are.

Where this cannot be done (a platform other than Linux and macOS, or a Python without
``ctypes.pythonapi``), the file is mapped as Python maps it, and zeros past its end are
copies of it in memory, as before.
"""

from __future__ import annotations

import errno
import mmap
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any

#: Python 3.13+ can map a file without keeping a duplicate of its descriptor.
MMAP_NO_FD: dict[str, Any] = {"trackfd": False} if sys.version_info >= (3, 13) else {}

_MAP_FIXED = 0x10  # (the same value on Linux and macOS)
_stranded: list[mmap.mmap] = []
"""Maps whose range a failed ``MAP_FIXED`` may have given back to the system: never unmapped, as
the range may now belong to another mapping of the process (a failure that practically never
happens: the process is out of map areas, and any other map would fail too)."""


def _place_file() -> Any:
    """The function that maps a file over the start of an anonymous map, or None where it cannot."""
    if not (sys.platform.startswith("linux") or sys.platform == "darwin"):
        return None
    try:
        import ctypes

        libc_mmap = ctypes.CDLL(None, use_errno=True).mmap
        get_buffer = ctypes.pythonapi.PyObject_GetBuffer
        release_buffer = ctypes.pythonapi.PyBuffer_Release
    except (ImportError, AttributeError, OSError):
        return None
    if ctypes.sizeof(ctypes.c_void_p) != 8:  # (off_t is a long on the 64-bit systems alone)
        return None

    class _Buffer(ctypes.Structure):  # Py_buffer, part of the stable ABI since Python 3.11
        _fields_ = [
            ("buf", ctypes.c_void_p),
            ("obj", ctypes.c_void_p),
            ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t),
            ("readonly", ctypes.c_int),
            ("ndim", ctypes.c_int),
            ("format", ctypes.c_char_p),
            ("shape", ctypes.c_void_p),
            ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p),
            ("internal", ctypes.c_void_p),
        ]

    get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_Buffer), ctypes.c_int]
    get_buffer.restype = ctypes.c_int
    release_buffer.argtypes = [ctypes.POINTER(_Buffer)]
    release_buffer.restype = None
    libc_mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc_mmap.restype = ctypes.c_void_p

    def place(mm: mmap.mmap, fd: int, size: int) -> None:
        view = _Buffer()
        get_buffer(mm, ctypes.byref(view), 0)  # (PyBUF_SIMPLE: its address, read-only as it is)
        try:
            address = view.buf
        finally:
            release_buffer(ctypes.byref(view))
        got = libc_mmap(address, size, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_FIXED, fd, 0)
        if got != address:
            code = ctypes.get_errno()
            _stranded.append(mm)
            raise OSError(code, os.strerror(code))

    return place


_place = _place_file()

MAPS_HOLD_FD = _place is None and not MMAP_NO_FD
"""Whether every map :func:`map_file` makes holds a descriptor of its own (its duplicate of the file's):
where neither ``trackfd=False`` (Python 3.13+) nor maps placed over an anonymous one are available."""


def map_file(fd: int, size: int) -> mmap.mmap:
    """A read-only map of the first ``size`` bytes (at least 1) of the file open at ``fd`` that keeps
    no descriptor: ``fd`` may be closed once it returns (the map keeps the file readable, also once
    unlinked).

    Raises ValueError where the file is shorter than ``size``, as ``mmap`` does (another process
    cut it meanwhile: look at its size again), OSError where the system refuses the map.
    """
    if _place is not None and not MMAP_NO_FD and (mm := _placed(fd, size, size)) is not None:
        return mm
    return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ, **MMAP_NO_FD)


_FILLED: weakref.WeakKeyDictionary[mmap.mmap, int] = weakref.WeakKeyDictionary()
"""The maps :func:`map_filled` made, and how many of their first bytes the file holds."""


def filled_from(buf: object) -> int | None:
    """Where the zeros that end a map start that no byte of a file holds: those that follow the file's
    bytes in a map :func:`map_filled` made. Readers skip them unread (see
    :func:`kv_backend.record.data_from`). None where none are known."""
    return _FILLED.get(buf) if isinstance(buf, mmap.mmap) else None


def map_filled(fd: int, size: int, length: int) -> mmap.mmap | bytes:
    """What the file open at ``fd`` reads as when its first ``size`` bytes are followed by zeros up to
    ``length`` (above ``size``), as :func:`map_file` maps it: neither the file nor the zeros are
    copied into memory (but on a platform where maps cannot be made so). :func:`filled_from` tells
    where the zeros start."""
    if _place is not None and (mm := _placed(fd, size, length)) is not None:
        _FILLED[mm] = size
        return mm
    if not size:
        return bytes(length)
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as mm:
        return mm[:] + bytes(length - size)


def map_cuttable(fd: int, size: int, keep: int) -> mmap.mmap | bytes:
    """What the first ``size`` bytes of the file open at ``fd`` read as now, where another process may cut
    the file at ``keep`` or past it, never before (the active data file of a live writer, whose reserved
    zeros a rotation cuts off): its bytes up to ``keep`` (down to a page's start) mapped as
    :func:`map_file` maps them, the rest copied now into an anonymous map (not Python's heap), bytes cut
    before they were read reading as zeros; a map read past a cut would kill the process (SIGBUS). Where
    a file cannot be mapped over an anonymous map, a copy of it all, as bytes."""
    start = min(keep, size) // mmap.PAGESIZE * mmap.PAGESIZE

    def copy_rest(mm: mmap.mmap) -> None:
        for pos in range(start, size, 1 << 20):
            chunk = os.pread(fd, min(1 << 20, size - pos), pos)
            mm[pos : pos + len(chunk)] = chunk

    if size and _place is not None and (mm := _placed(fd, start, size, copy_rest)) is not None:
        return mm
    return b"".join(os.pread(fd, min(1 << 20, size - pos), pos) for pos in range(0, size, 1 << 20))


def _placed(
    fd: int, size: int, length: int, fill: Callable[[mmap.mmap], None] | None = None
) -> mmap.mmap | None:
    """An anonymous read-only map of ``length`` bytes (zeros; with ``fill``, writable, and what ``fill``
    writes into it first) with the first ``size`` bytes of the file at ``fd`` mapped over its start; None
    where the system refuses to map a file over another map (a sandbox may): the process then maps files
    as Python does from there on."""
    global _place
    if fill is None:
        mm = mmap.mmap(-1, length, mmap.MAP_PRIVATE, mmap.PROT_READ)
    else:
        mm = mmap.mmap(-1, length, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
        fill(mm)
    place = _place
    if size:
        if place is None:  # (another thread found it refused meanwhile)
            mm.close()
            return None
        try:
            place(mm, fd, size)
        except OSError as exc:
            if exc.errno in (errno.ENOMEM, errno.EACCES, errno.EBADF, errno.ENODEV):
                raise  # (out of maps, a file that cannot be mapped: Python's mmap fails alike)
            _place = None
            return None
    if os.fstat(fd).st_size < size:
        # (Python's mmap checks the size before it maps; a map past the file's end would raise
        # SIGBUS where it is read.)
        mm.close()
        raise ValueError("mmap length is greater than file size")
    return mm
