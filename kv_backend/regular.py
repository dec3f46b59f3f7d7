"""Opening a file that must be a regular one, without waiting.

A FIFO (``mkfifo`` by mistake, a file restored wrongly) put where a regular file belongs holds its
reader for ever: opening it for reading waits for a writer, and reading it, for data; a device may
never end. The files whose read a user's mistake can hold up so are opened here (a store's
``KVB_FORMAT`` and ``LOCK``, the TLS files of ``kvb serve`` and ``kvb http``): without waiting
(``O_NONBLOCK``), then looked at through the descriptor (``fstat``), never by name first, so that a
FIFO put in place after a look by name is refused too. Each caller says what to do about a refusal in
its own words.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["NOT_REGULAR", "NotRegularFileError", "open_regular", "read_regular"]

#: The text of :class:`NotRegularFileError` (its ``strerror``).
NOT_REGULAR = "not a regular file"


class NotRegularFileError(OSError):
    """A FIFO, a device or a socket (or a directory, where not asked for) where a regular file was to be
    opened: errno EINVAL, ``strerror`` :data:`NOT_REGULAR`, ``filename`` the path. Each caller turns it
    into its own answer."""


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, *, directories: bool = False) -> int:
    """``os.open(path, flags)`` without waiting (``O_NONBLOCK``, and ``O_CLOEXEC``) of a file that must be
    a regular one: the descriptor. :class:`NotRegularFileError` for anything else, a directory too unless
    ``directories`` (for a caller that lets ``open()`` refuse it itself, or takes one), the descriptor
    closed; OSError where the system refuses the open."""
    fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not (stat.S_ISREG(mode) or (directories and stat.S_ISDIR(mode))):
        os.close(fd)
        raise NotRegularFileError(errno.EINVAL, NOT_REGULAR, os.fsdecode(path))
    return fd


def read_regular(path: str | os.PathLike[str], *, directories: bool = False) -> bytes:
    """The content of the regular file ``path`` (see :func:`open_regular`: :class:`NotRegularFileError` for
    any other, OSError where it cannot be read; ``directories``: a directory is opened, and its read
    refused by the system, IsADirectoryError)."""
    fd = open_regular(path, directories=directories)
    try:
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)
