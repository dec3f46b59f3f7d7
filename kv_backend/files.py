"""Names and handles of the files in a store directory.

A store directory holds:

* ``KVB_FORMAT``: marks the directory as a store and names the format version;
* ``LOCK``: the file whose ``flock`` serialises all appends (see :mod:`kv_backend.locking`);
* ``STATE``: a small shared-memory page publishing the log tail (see :mod:`kv_backend.state`);
* data files ``MMMMMMMMMM-NNN.data`` (major and minor file ids), appended to
  while active and never changed once closed, with optional ``.hint`` files
  written by merge.

Files are ordered by (major, minor); a later file wins over an earlier one.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kv_backend import record as rec
from kv_backend.errors import (
    ConfigurationError,
    InvalidArgumentError,
    NotAStoreError,
    StorageError,
    StoreNotFoundError,
)
from kv_backend.filemaps import map_file, map_filled
from kv_backend.regular import NotRegularFileError, open_regular

FORMAT_FILE = "KVB_FORMAT"
FORMAT_TEXT = "kv_backend store, format 1\n"
LOCK_FILE = "LOCK"
STATE_FILE = "STATE"
MERGE_LOCK_FILE = "MERGE.lock"
MERGE_COMMIT_FILE = "MERGE.commit"
DATA_SUFFIX = ".data"
HINT_SUFFIX = ".hint"
TMP_SUFFIX = ".tmp"

_DATA_RE = re.compile(r"^(\d{10})-(\d{3})\.data\Z")

FileId = tuple[int, int]


def data_name(fid: FileId) -> str:
    """Return the file name of data file ``fid`` = (major, minor)."""
    return f"{fid[0]:010d}-{fid[1]:03d}{DATA_SUFFIX}"


def hint_name(fid: FileId) -> str:
    """Return the file name of the hint file that belongs to data file ``fid``."""
    return f"{fid[0]:010d}-{fid[1]:03d}{HINT_SUFFIX}"


def parse_data_name(name: str) -> FileId | None:
    """Return the id of a data file name, or None for any other name."""
    m = _DATA_RE.match(name)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


def stray_hint_names(names: list[str]) -> list[str]:
    """The hint files among ``names`` (a directory's listing) whose data file is not listed.

    A merge killed between renaming an output's hint file and its data file, or
    between unlinking an input and its hint file, leaves one. The engine ignores
    them; a process holding the write lock removes them (no switch-over is half
    done then: it runs under that lock).
    """
    present = set(names)
    return [
        n
        for n in names
        if n.endswith(HINT_SUFFIX)
        and n[: -len(HINT_SUFFIX)] + DATA_SUFFIX not in present
        and _DATA_RE.match(n[: -len(HINT_SUFFIX)] + DATA_SUFFIX)
    ]


def remove_stray_hints(path: str, names: list[str] | None = None) -> None:
    """Remove the stray hint files of the store at ``path`` (caller holds the write lock): see
    :func:`stray_hint_names`. ``names``: the directory's listing, if the caller has one. Best
    effort: a stray hint file is never read, so one that cannot be removed is left."""
    for name in stray_hint_names(os.listdir(path) if names is None else names):
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass


def list_data_files(path: str) -> list[FileId]:
    """Return the ids of the data files in ``path``, oldest first (StorageError where it cannot be listed,
    but for a missing ``path``)."""
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as exc:
        raise storage_error(exc, f"cannot list the files of the store at {path}", reading=True) from exc
    ids = [fid for fid in map(parse_data_name, names) if fid is not None]
    ids.sort()
    return ids


def missing_data_files(fids: list[FileId]) -> list[FileId]:
    """The data files that the names of ``fids`` (a store's, oldest first) say are missing: a rotation
    names its new file after the active one (major + 1, minor 0), a merge its outputs after its newest
    input (same major, minor + 1, ...), and the active file after a merge is the one after its outputs'
    major; a merge removes its inputs oldest first. So the files of minor id 0 after the newest merge
    output's major run on from the one after it without a gap, and so do those of a store without merge
    outputs, and the outputs of a major, by minor id. Files before them, the first of a store and the last
    output of a merge cannot be told missing so. A gap is a file deleted (its records gone: older
    values come back), or, harmless, files of rotations that died one after the other before a power
    failure, holding no record, which recovery removed (see docs/file-format.md)."""
    missing: list[FileId] = []
    outputs = [fid for fid in fids if fid[1] > 0]
    for major in sorted({fid[0] for fid in outputs}):
        minors = [fid[1] for fid in outputs if fid[0] == major]
        missing += [(major, m) for m in range(minors[0], minors[-1]) if m not in set(minors)]
    majors = [fid[0] for fid in fids if fid[1] == 0 and (not outputs or fid[0] > outputs[-1][0])]
    if majors:
        first = outputs[-1][0] + 1 if outputs else majors[0]
        missing += [(m, 0) for m in range(first, majors[-1]) if m not in set(majors)]
    return sorted(missing)


def missing_files_text(path: str, missing: list[FileId]) -> str:
    """What ``kvb check`` notes, and an open logs, for the data files :func:`missing_data_files` finds
    missing in the store at ``path``."""
    shown = ", ".join(data_name(fid) for fid in missing[:5]) + (
        f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    )
    return (
        f"{path}: {len(missing)} data file(s) missing from the sequence the others' names follow ({shown}): "
        "if one was deleted, the keys whose newest records it held read older values or are gone; restore "
        "the store from a backup made before (a merge would make the loss permanent and this note go). "
        "(Rotations that died one after the other before a power failure leave such a gap too, holding "
        "no record: then nothing is lost)"
    )


def foreign_version_error(path: str, version: int) -> NotAStoreError:
    """The error for the data file at ``path``, of another format ``version`` than this one reads."""
    return NotAStoreError(
        errno.EINVAL,
        f"{path} is a data file of format version {version}, and this kv_backend "
        f"reads version {rec.FILE_VERSION} only: open the store with the kv_backend that wrote it "
        "(if none wrote that version, the file header is damaged: `kvb check` reports it, "
        "`kvb salvage` copies the readable keys into a new store)",
    )


class DataFile:
    """An open data file: an fd for writes and scans, and a read-only mapping for reads.

    Reads of single records slice the mapping (no system call). The mapping
    covers the file as it was when mapped; :meth:`remap` extends it after
    the file grew. Views of the key directory hold references to the
    mappings, so a file replaced by merge stays readable until the last view
    that points into it is gone (an open fd or mapping keeps an unlinked
    file readable on POSIX).
    """

    __slots__ = ("__weakref__", "fd", "fid", "ident", "mm", "path", "unsynced")

    def __init__(self, directory: str, fid: FileId, *, writable: bool = False) -> None:
        self.fid = fid
        #: Whether the DB holding this object wrote records here that it has not fsynced since (set after
        #: each write, cleared before each fsync: see DB._sync_written).
        self.unsynced = False
        self.path = os.path.join(directory, data_name(fid))
        flags = os.O_RDWR if writable else os.O_RDONLY
        self.fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        self.mm: mmap.mmap | None = None
        self.ident = (-1, -1)  # (st_dev, st_ino) of the file mapped
        try:
            mm = self.remap()
        except BaseException as exc:  # (too many open files for the mapping's own descriptor...): none kept
            self.close()
            if isinstance(exc, OSError) and exc.errno == errno.ENODEV and os.path.isdir(self.path):
                # A directory opens read-only, and its mapping said "No such device".
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.path) from None
            raise
        # (A file shorter than a header holds no record, whatever its bytes: a rotation that died
        # left it, and recovery removes it or gives it its header.)
        version = rec.foreign_version(mm[:12]) if len(mm) >= rec.FILE_HEADER_SIZE else None
        if version is not None:
            # Records of another format version may check out and mean something else: refuse
            # them. (A damaged magic is left to the records' own checks, and to `kvb check`.)
            self.close()
            raise foreign_version_error(self.path, version)

    def remap(self) -> mmap.mmap:
        """Map the whole file as it is now and return the new mapping.

        The previous mapping is not closed here: readers in other threads may
        still hold it, and it is unmapped when the last reference goes.
        """
        for _ in range(100):
            st = os.fstat(self.fd)
            size, self.ident = st.st_size, (st.st_dev, st.st_ino)
            if size == 0:
                # An empty file cannot be mapped; an empty bytes object reads the same.
                self.mm = None
                return _EMPTY_MAP  # type: ignore[return-value]
            try:
                self.mm = map_file(self.fd, size)
                return self.mm
            except ValueError:
                # Another process cut the file (rotation drops reserved zeros)
                # between fstat and mmap: look at its size again.
                continue
        raise OSError(errno.EAGAIN, f"{self.path} keeps changing size while being mapped")

    def size(self) -> int:
        """Return the file's current size in bytes (a sealed file's: what its mapping covers)."""
        return os.fstat(self.fd).st_size if self.fd >= 0 else len(self.mm or b"")

    def reader(self) -> Callable[[int, int], bytes]:
        """``read(offset, n)`` of the file's bytes (see :func:`kv_backend.record.file_reader`): through
        the fd, or, once sealed, from the mapping."""
        return rec.file_reader(self.fd) if self.fd >= 0 else rec.reader_of(self.mm or b"")

    def filled(self, size: int, length: int) -> mmap.mmap | bytes:
        """The file's first ``size`` bytes followed by zeros up to ``length`` (see
        :func:`kv_backend.filemaps.map_filled`: nothing is copied into memory). A sealed file is
        opened again by its name for it; if the name no longer holds the file mapped (a merge
        removed it since), its mapping is copied into memory instead."""
        if self.fd >= 0:
            return map_filled(self.fd, size, length)
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0 and ((st := os.fstat(fd)).st_dev, st.st_ino) == self.ident:
                return map_filled(fd, size, length)
        finally:
            if fd >= 0:
                os.close(fd)
        return (self.mm or b"")[:size] + bytes(length - size)

    def seal(self) -> None:
        """Close the fd of a file that will never change again (older than the active file).

        Reads go through the mapping alone, so a store of many files costs
        no descriptor per file (see :mod:`kv_backend.filemaps`: one, the
        mapping's own, where maps keep one). A sealed file must not be
        grown or remapped; :meth:`reader` reads it from the mapping.
        """
        if self.mm is None:
            return  # nothing is mapped (an empty file): the fd is all there is
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def close(self) -> None:
        """Close the fd and the mapping now (both also close when the object is dropped)."""
        fd, self.fd = self.fd, -1
        mm, self.mm = self.mm, None
        if mm is not None:
            try:
                mm.close()
            except (BufferError, ValueError):
                pass
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        # getattr: __init__ may have failed before the fd was set (the file vanished: a merge).
        # _close: a file dropped during the interpreter's teardown finds this module's os set to None.
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            try:
                _close(fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"<DataFile {self.path} fd={self.fd}>"


_EMPTY_MAP = b""


def fsync_file(fd: int) -> None:
    """Flush a file's data to stable storage (F_FULLFSYNC on macOS)."""
    if sys.platform == "darwin":
        import fcntl

        try:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
            return
        except OSError:
            pass
        os.fsync(fd)
    else:
        os.fdatasync(fd)


def fsync_dir(path: str) -> None:
    """Make renames and new files in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def still_at(fd: int, path: str) -> bool:
    """Whether the file open as ``fd`` is still the one at ``path`` (same device and inode): false where
    another file (or none) took its name since it was opened, as when a store directory was swapped at
    its path (``kv_restore --replace``)."""
    try:
        held, there = os.fstat(fd), os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise storage_error(exc, f"cannot look at {path}") from exc
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EXDEV}
"""What renameat2 gives where it cannot exchange (EXDEV: overlayfs, for a directory of a lower layer)."""


def exchange_paths(a: str, b: str) -> bool:
    """Swap the directory entries ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    A process killed around the swap leaves each path holding either its old or its new
    content, never neither, which two renames cannot promise. Returns False, changing
    nothing, where the platform or the file system cannot swap; other failures raise OSError.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a C library older than glibc 2.28, or none to load
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), a, None, b)


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``pwrite`` all of ``data`` at ``offset``, looping over short writes."""
    view = memoryview(data)
    total = len(view)
    done = os.pwrite(fd, view, offset)
    while done < total:
        n = os.pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.EIO, "pwrite wrote no bytes")
        done += n


def write_zeros(fd: int, start: int, end: int) -> None:
    """Overwrite bytes ``start`` to ``end`` of the file ``fd`` with zeros, a MiB at most at a time (what
    they overwrite may be far larger than that)."""
    zeros = memoryview(bytes(min(end - start, 1 << 20)))
    for pos in range(start, end, len(zeros)):
        write_all(fd, zeros[: min(len(zeros), end - pos)], pos)


_NO_FALLOCATE = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV, errno.ENOSYS)
"""What ``posix_fallocate`` gives where the file system cannot reserve blocks."""


def reserve_space(fd: int, start: int, end: int) -> None:
    """Give bytes ``start`` to ``end`` of the file ``fd`` disk blocks of their own, growing the file to
    ``end`` if it is shorter (``posix_fallocate``; it never changes bytes that are there).

    A file grown by ``ftruncate`` alone is a hole there: every write into it must find blocks then,
    and on a full disk it fails (ENOSPC) half-way through. Reserved, a full disk is an ENOSPC here,
    before anything is written. Where the platform or file system cannot reserve (macOS, some network
    and FUSE file systems), the file is only grown; other errors (ENOSPC above all) raise OSError.
    """
    fallocate = getattr(os, "posix_fallocate", None)  # not on macOS
    if fallocate is not None and end > start:
        try:
            fallocate(fd, start, end - start)
            return
        except OSError as exc:
            if exc.errno not in _NO_FALLOCATE:
                raise
    if os.fstat(fd).st_size < end:
        os.ftruncate(fd, end)


def valid_unicode(value: Any) -> Any:
    """``value`` (text, or dicts and lists of it) with every text made valid Unicode, for JSON
    (kvb's --json output, the HTTP API's answers): a path that is not UTF-8 reaches Python with
    its other bytes as lone surrogates (``'\\udcff'``), which JSON text must not hold (RFC 8259
    section 8.1; Go, Rust and most JSON libraries refuse or mangle ``"\\udcff"``). Those bytes
    become U+FFFD, as ``bytes.decode(errors="replace")`` gives them."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:
                raw = value.encode("utf-8", "surrogateescape")  # the bytes the system gave
            except UnicodeEncodeError:  # a lone surrogate of another origin
                raw = value.encode("utf-8", "replace")
            return raw.decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {valid_unicode(k): valid_unicode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [valid_unicode(v) for v in value]
    return value


def user_name(uid: int | None = None) -> str | None:
    """The login name of ``uid`` (default: this process's effective user), for messages.

    None when it has none: a container's arbitrary uid has no passwd entry.
    """
    try:
        import pwd

        return pwd.getpwuid(os.geteuid() if uid is None else uid).pw_name
    except (ImportError, KeyError):
        return None


def withheld_modes(mode: int) -> tuple[int, int]:
    """(file mode, directory mode) that grant the group and others no more than ``mode`` (a store
    directory's, or its format file's) does, the owner always keeping read and write (and search):
    what a store's own new files, and the copies of its backups, restores and salvages, get."""
    return 0o600 | (mode & 0o066), 0o700 | (mode & 0o077)


def new_file_mode(directory: str) -> int:
    """The permission to create a file the engine adds to the store at ``directory`` with.

    At most what its format file grants the group and others (``kv_backend.dbm.open``'s
    ``mode`` sets it), so a data file made by a rotation or a merge, a hint file or
    the merge lock is never more open than the store's first files, whatever the
    umask of the process that makes it; the owner always gets read and write.
    The umask still applies (and :func:`kv_backend.owners.grant_store_mode` gives back
    what it withheld). 0o666 (the umask alone) if the format file is unreadable.
    """
    try:
        granted = os.stat(os.path.join(directory, FORMAT_FILE)).st_mode
    except OSError:
        return 0o666
    return withheld_modes(granted)[0]


_granting = threading.local()  # (.mode: the cap of files_granting() in this thread, or None)


@contextmanager
def files_granting(directory_mode: int) -> Iterator[None]:
    """Within the block, the files this thread adds to a store (data and hint files, ``STATE``,
    ``MERGE.lock``, a missing ``LOCK``: those :func:`kv_backend.owners.give_to_store_owner` is told
    were added) get exactly the store's bits (:func:`new_file_mode`: what its format file grants),
    less what a directory of ``directory_mode`` withholds (see :func:`withheld_modes`), whatever the
    umask.

    For a command run under a stricter umask than the store's users (``kv_merge`` from cron's 022 on
    a store shared by a group): what ``os.umask`` would do, for this thread only, as the umask is
    one for the whole process, and a command called from a threaded server or a Celery task
    changed it for every other thread's files meanwhile.
    """
    previous = getattr(_granting, "mode", None)
    _granting.mode = withheld_modes(directory_mode)[0]
    try:
        yield
    finally:
        _granting.mode = previous


def settle_new_file(fd: int) -> None:
    """The last step of creating a store file at ``fd``, once it has the store's bits (see
    :func:`kv_backend.owners.give_to_store_owner`): inside this thread's :func:`files_granting`
    block, it keeps them less what that block withholds, whatever the umask (nothing happens outside
    one). Best effort, as giving it away is."""
    cap = getattr(_granting, "mode", None)
    if cap is not None:
        try:
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & cap)
        except OSError:
            pass


_CREATING_RE = re.compile(r"^(?:LOCK|STATE|MERGE\.lock)\.\d+-[0-9a-f]{8}\.tmp\Z")


def creating_name(name: str) -> str:
    """A temporary name for the store file ``name`` (``LOCK``, ``STATE``, ``MERGE.lock``) while it is
    made (see :func:`_link_from_temporary_name`), unique to this process and call."""
    return f"{name}.{os.getpid()}-{os.urandom(4).hex()}{TMP_SUFFIX}"


#: The advice of a refused read of a store file or directory, which opening read-only does not help.
READ_DENIED = (
    " Reading a store needs read permission on its directory and files (and search permission on the"
    " directories above): grant it (chmod, or the store's group), or run as the store's owner."
)


def storage_error(exc: OSError, what: str, no_space: str = "", *, reading: bool = False) -> StorageError:
    """Wrap an OSError in the project's exception with a message that says what to do (for a full disk,
    ``no_space``, the sentence that says how to free space, if the caller knows more than "free some";
    ``reading``: what was refused is a read, which a read-only open needs too)."""
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = (
            f" The disk is full (no space left): {no_space or 'free space'}, then retry; nothing "
            "acknowledged was lost."
        )
    elif exc.errno == errno.EROFS:
        hint = " The filesystem is mounted read-only: open the store with read_only=True."
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = (
            READ_DENIED if reading else " Check the directory's permissions, or open it with read_only=True."
        )
    elif exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        hint = (
            " The filesystem refuses the file locks (flock) that keep the processes sharing a store"
            " apart (a network or FUSE filesystem): put the store on a local filesystem."
        )
    elif exc.errno in (errno.EMFILE, errno.ENFILE):
        hint = (
            " Every data file of an open store holds a file descriptor: raise the limit"
            " (ulimit -n, systemd LimitNOFILE=), or merge the store (kvb merge) so it has fewer files."
        )
    elif exc.errno == errno.ENOMEM:
        hint = (
            " The system refused a memory map: every data file of an open store takes one, and a process"
            " may have only so many (Linux: vm.max_map_count, 65,530 by default). Merge the store"
            " (kvb merge) so it has fewer, fuller files, or raise the limit (sysctl -w"
            " vm.max_map_count=262144, as root; first, where kvb merge fails alike). With few data files,"
            " the process is out of memory or address space instead (ulimit -v). Nothing acknowledged"
            " was lost."
        )
    err = StorageError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}.{hint}")
    if exc.filename is not None:
        err.filename = exc.filename  # (set to None, str(err) would end in ": None")
    err.advice = hint.strip()
    return err


def missing_directories(path: str) -> list[str]:
    """``path`` and those of its parent directories that do not exist yet, deepest first: what a
    caller about to create them may need to create one by one, or remove again."""
    missing = []
    while path and not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def check_new_store_target(path: str, action: str, error: type[Exception]) -> None:
    """Refuse ``path`` as the place a new store is built and moved into (restore, salvage).

    It may be missing or an empty directory; a file, a non-empty directory (a live
    store, or anything else worth keeping), a mount point (which a rename cannot
    replace), a path that is or lies under a symbolic link to nothing (a volume not mounted: mkdir said
    only "File exists") or a path inside a store's directory raises ``error`` before any work is done.
    """
    try:
        refuse_dangling_link(path)
    except StoreNotFoundError as exc:
        raise error(f"cannot {action} into {path}: {exc.strerror}") from exc
    if os.path.lexists(path) and not os.path.isdir(path):
        raise error(f"cannot {action} into {path}: it exists and is not a directory")
    if os.path.isdir(path):
        try:
            entries = os.listdir(path)
        except OSError as exc:
            raise error(f"cannot {action} into {path}: {exc.strerror}") from exc
        if entries:
            raise error(
                f"refusing to {action} into {path}: the directory is not empty (it holds "
                f"{', '.join(sorted(entries)[:3])}); {action} into a new or empty directory"
            )
        if os.path.ismount(path):
            raise error(
                f"cannot {action} into {path}: it is a mount point, and the new store is moved into "
                f"place when complete; {action} into a directory inside it, e.g. {os.path.join(path, 'kv')}"
            )
    # A store is a directory of files: one built inside another store's directory (or in a directory
    # below it) sits among that store's files, where a backup of it, kv_restore --replace, a cache's
    # clear() or a user cleaning up takes it for part of that store, or goes with it when it is
    # replaced; its temporary copy lies there too while the work runs.
    around = enclosing_store(os.path.dirname(os.path.realpath(path)))
    if around is not None:
        raise error(
            f"refusing to {action} into {path}: it lies inside the kv_backend store {around}, where "
            f"it would be taken for part of that store; {action} into a directory outside any store "
            "(side by side with it)"
        )


def refuse_filled_meanwhile(
    path: str, action: str, error: type[Exception], copy_id: str | None = None
) -> None:
    """Raise ``error`` if ``path``, missing or empty when a restore (or salvage) into it started (see
    :func:`check_new_store_target`), holds files now: most often a process that uses the store there
    started meanwhile (a web or Celery worker, ``kvb serve``) and created a new, empty store, which
    it now uses. The message says so and what to do, where "the directory is not empty", or the
    rename's "Directory not empty", read as if the caller had named a directory in use. Where the
    store there has ``copy_id``, the id of the copy this one built (a random one for every new store),
    it is another restore's (or salvage's) copy of the same store, moved into place whole: the
    message says that instead, and not to delete it."""
    try:
        entries = sorted(os.listdir(path))
    except OSError:  # (missing, or not a directory: check_new_store_target says so)
        return
    if not entries:
        return
    held = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    if copy_id is not None and FORMAT_FILE in entries:
        from kv_backend.store_id import read_store_id  # (which imports this module)

        if read_store_id(path) == copy_id:
            other = "salvage" if action == "restore" else "restore"  # (a copy of the same store has its id)
            raise error(
                f"cannot {action} into {path}: it was empty when the {action} started, but now holds "
                f"{held}: another {action} (or a {other}) put a copy of the same store there "
                f"meanwhile (store id {copy_id}), moved into place whole; nothing was {action}d there by "
                f"this one. Use that copy (kvb check {path} checks it), or {action} into another directory"
            )
    if any(name == FORMAT_FILE or is_store_file(name) for name in entries):
        why = (
            "a process opened a store at that path meanwhile (a web or Celery worker, kvb serve, a shell "
            "that started) and created a new, empty one, which it now uses"
        )
    else:
        why = "another process put them there meanwhile"
    raise error(
        f"cannot {action} into {path}: it was empty when the {action} started, but now holds {held}: {why}; "
        f"nothing was {action}d there. Stop every process that uses {path}, move aside what it made there "
        f"(or delete it if it holds nothing you need), and {action} again"
    )


def enclosing_store(path: str) -> str | None:
    """The store directory (one holding ``KVB_FORMAT``) that is ``path`` or one of its parents, if any."""
    while True:
        if os.path.isfile(os.path.join(path, FORMAT_FILE)):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def is_store_file(name: str) -> bool:
    """True for names a store (or one being created right now) may hold."""
    if name in (LOCK_FILE, STATE_FILE, MERGE_LOCK_FILE, FORMAT_FILE + TMP_SUFFIX) or _CREATING_RE.match(name):
        return True
    base = name[: -len(TMP_SUFFIX)] if name.endswith(TMP_SUFFIX) else name
    if base.endswith(HINT_SUFFIX):
        base = base[: -len(HINT_SUFFIX)] + DATA_SUFFIX
    return parse_data_name(base) is not None


def store_directory(path: object) -> str:
    """The absolute path of the store directory ``path`` names (str, bytes or os.PathLike)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InvalidArgumentError(
            f"path must be the store's directory (str, bytes or os.PathLike), not {type(path).__name__}"
        )
    name = os.fsdecode(path)  # a bytes path too, as open() and dbm take
    refuse_unusable_path(name, "the store's path", "name its directory ('.' for this one)")
    return os.path.abspath(name)


def refuse_unusable_path(name: str, what: str, advice: str) -> None:
    """Raise ConfigurationError for a path that is empty (``abspath("")`` is the working directory: a
    setting left empty would name it; the message says ``advice``) or that holds a NUL character (the
    system refuses it with a bare ValueError from the first os call); ``what`` names the path."""
    if not name:
        raise ConfigurationError(f"{what} is empty: {advice}")
    if "\x00" in name:
        raise ConfigurationError(f"{what} {name!r} holds a NUL character, which no path can")


def refuse_dangling_link(path: str, what: str = "the store's path") -> None:
    """Raise if ``path`` (``what`` names it), or a missing directory above it, is a symbolic link to
    nothing (a volume not mounted yet, say).

    Creating the store said only "File exists" (mkdir does not follow the link), and opening it
    read-only that the directory does not exist, while ``ls`` shows the link there. Nothing is made
    at the link's target: a store created on the disk below a missing mount is lost from view.
    """
    for missing in missing_directories(path):
        try:
            target = os.readlink(missing)
        except OSError:
            continue  # not a link: a directory still to make
        target = os.path.normpath(os.path.join(os.path.dirname(missing), target))  # (a relative one too)
        under = f" ({what} {path} is under it)" if missing != path else ""
        raise StoreNotFoundError(
            errno.ENOENT,
            f"{missing} is a symbolic link to {target}, which does not exist{under} (a volume not "
            "mounted?): create that directory, or point the link elsewhere",
        )


def prepare_directory(path: str, *, create: bool) -> bool:
    """Check that ``path`` is a store directory (creating it if allowed).

    Returns True if the directory is new (has no ``KVB_FORMAT`` yet).
    Raises :class:`StoreNotFoundError` or :class:`NotAStoreError` otherwise.
    """
    return format_file_text(path, create=create) is None


class FormatText(str):
    """What :func:`read_format` read of a format file, and ``seen``: that file's inode number and size
    (``os.fstat`` of the descriptor it was read through), which tell whether the file at the path later is
    still the one read (see :func:`kv_backend.store_id.same_format_file`)."""

    seen: tuple[int, int] = (-1, -1)
    st: os.stat_result | None = None
    """The whole ``os.fstat`` of that descriptor (owner, group, mode: what a replacement keeps)."""


def read_format(
    path: str, limit: int = 4096, errors: str = "replace", newline: str | None = None
) -> FormatText:
    """The format file of the store at ``path``, read: its first ``limit`` characters (-1: all of it),
    decoded as UTF-8 with ``errors``, line endings as ``open``'s ``newline`` has them (None: ``\r\n``
    and ``\r`` read as ``\n``; ``""``: as they are), with the identity of the file read (see
    :class:`FormatText`). The one read every reader of the file makes, each turning what it raises into
    its own answer: OSError (no file, one this user may not read, an I/O error, one that is no regular
    file: see :func:`open_regular_in_store`), and UnicodeDecodeError where ``errors`` is strict."""
    marker = os.path.join(path, FORMAT_FILE)
    with open(marker, encoding="utf-8", errors=errors, newline=newline, opener=open_regular_in_store) as f:
        text = FormatText(f.read(limit))
        st = os.fstat(f.fileno())
    text.seen = (st.st_ino, st.st_size)
    text.st = st
    return text


def open_regular_in_store(path: str, flags: int) -> int:
    """``os.open(path, flags)`` of a file of a store, which must be a regular one (or a directory, which
    ``open`` refuses itself, and a lock's ``flock`` takes), without waiting (see
    :func:`kv_backend.regular.open_regular`): a FIFO (``mkfifo`` by mistake) held its reader for ever,
    waiting for a writer. OSError (EINVAL) for a FIFO, a device or a socket, saying what to do."""
    try:
        return open_regular(path, flags, directories=True)
    except NotRegularFileError as exc:
        raise OSError(
            errno.EINVAL,
            f"{exc.strerror} (a FIFO, a device or a socket), as every file kv_backend makes in a store "
            "is: remove it, and restore the store from a backup or copy its data out with kvb salvage",
            path,
        ) from None


def format_file_text(path: str, *, create: bool) -> FormatText | None:
    """:func:`prepare_directory`, returning what it read of the format file (:func:`read_format`: its first
    4096 characters, the store's id on the second line where it has one): None where the directory is new.
    An open reads the id there, once (see :func:`kv_backend.store_id.parse_store_id`). Read without the
    write lock: an id there may be one another process is adding and may yet take back (see
    :func:`kv_backend.store_id.add_store_id`), until the file is found still in place under the lock."""
    try:
        is_dir: bool | None = stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_dir = None  # missing (or under a file: the directory cannot exist, and cannot be made)
    except OSError as exc:
        # Not "does not exist" (what os.path.exists says of any error): a parent this user may not
        # search holds a store that is there, and a symbolic-link loop or a name too long is no store.
        raise storage_error(exc, f"cannot reach store directory {path}") from exc
    if is_dir is False:
        raise NotAStoreError(errno.ENOTDIR, f"{path} is a file, not a kv_backend store directory")
    if not is_dir:
        refuse_dangling_link(path)
        if not create:
            raise StoreNotFoundError(
                errno.ENOENT, f"no kv_backend store at {path}: the directory does not exist"
            )
        made = missing_directories(path)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"cannot create store directory {path}") from exc
        # (The format file, and every file root adds to the store, then gets the store directory's owner.)
        from kv_backend.owners import give_new_directories, new_path_owner

        give_new_directories(made, new_path_owner(made))
    marker = os.path.join(path, FORMAT_FILE)
    if os.path.lexists(marker):
        try:
            text = read_format(path)  # (its first line is all that counts)
        except OSError as exc:  # one this user may not read (its owner's only), a directory...
            raise storage_error(exc, f"cannot read {marker}") from exc
        if text.partition("\n")[0].rstrip("\r") != FORMAT_TEXT.rstrip("\n"):
            raise NotAStoreError(
                errno.EINVAL, f"{path} holds a store of an unsupported format: {text.strip()!r}"
            )
        return text
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise storage_error(exc, f"cannot list {path}") from exc
    if FORMAT_FILE in entries:
        # Another process created the store between our two looks: check it as any store.
        return format_file_text(path, create=create)
    # lost+found alone is what a new filesystem's mount point holds: still an empty directory.
    foreign = [e for e in entries if not is_store_file(e) and e != "lost+found"]
    if foreign:
        raise NotAStoreError(
            errno.EINVAL,
            f"{path} is not a kv_backend store (no {FORMAT_FILE} file, and it holds "
            f"{', '.join(sorted(foreign)[:3])}); "
            # (An empty directory is a place for a new store, not a store to read or change.)
            + ("pass an empty or new directory" if create else "give the directory of an existing store"),
        )
    if not create:
        raise StoreNotFoundError(errno.ENOENT, f"no kv_backend store at {path} (no {FORMAT_FILE} file)")
    return None
