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
from typing import Any

from kv_backend import record as rec
from kv_backend.errors import (
    ConfigurationError,
    InvalidArgumentError,
    NotAStoreError,
    StorageError,
    StoreNotFoundError,
)

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
    """Return the ids of the data files in ``path``, oldest first."""
    ids = [fid for fid in map(parse_data_name, os.listdir(path)) if fid is not None]
    ids.sort()
    return ids


#: Python 3.13+ can map a file without keeping a duplicate of its descriptor.
MMAP_NO_FD: dict[str, Any] = {"trackfd": False} if sys.version_info >= (3, 13) else {}


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

    __slots__ = ("__weakref__", "fd", "fid", "mm", "path")

    def __init__(self, directory: str, fid: FileId, *, writable: bool = False) -> None:
        self.fid = fid
        self.path = os.path.join(directory, data_name(fid))
        flags = os.O_RDWR if writable else os.O_RDONLY
        self.fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        self.mm: mmap.mmap | None = None
        mm = self.remap()
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
            size = os.fstat(self.fd).st_size
            if size == 0:
                # An empty file cannot be mapped; an empty bytes object reads the same.
                self.mm = None
                return _EMPTY_MAP  # type: ignore[return-value]
            try:
                self.mm = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ, **MMAP_NO_FD)
                return self.mm
            except ValueError:
                # Another process cut the file (rotation drops reserved zeros)
                # between fstat and mmap: look at its size again.
                continue
        raise OSError(errno.EAGAIN, f"{self.path} keeps changing size while being mapped")

    def size(self) -> int:
        """Return the file's current size in bytes."""
        return os.fstat(self.fd).st_size

    def seal(self) -> None:
        """Close the fd of a file that will never change again (older than the active file).

        Reads go through the mapping alone, so a store of many files costs
        one descriptor per file (the mapping's own; none from Python 3.13).
        A sealed file must not be grown, remapped or scanned by fd again.
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

    def __del__(self) -> None:
        # getattr: __init__ may have failed before the fd was set (the file vanished: a merge).
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            try:
                os.close(fd)
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
    The umask still applies. 0o666 (the umask alone) if the format file is unreadable.
    """
    try:
        granted = os.stat(os.path.join(directory, FORMAT_FILE)).st_mode
    except OSError:
        return 0o666
    return withheld_modes(granted)[0]


def give_to_store_owner(fd: int, directory: str) -> None:
    """Give the file just created at ``fd`` in the store at ``directory`` the owner and group of
    the store's format file, when root creates it; when another user does, the read and write bits
    the format file grants (see :func:`grant_store_mode`).

    Root may write every file, so a command it runs by habit (``sudo kvb merge``, a root crontab)
    on a store of the site's user would otherwise leave root's files there (the next active data
    file, a merge's data and hint files, the lock and state files), which that user's processes
    cannot write: they would fail with permission denied. Other users cannot give files away and
    need not: their files are the store's already, or the store is theirs. Best effort: where
    root may not chown (no CAP_CHOWN, an id unmapped in a user namespace), the file stays root's.
    In a setgid directory (a store shared by a group) the file keeps the group the directory gave
    it, as every writer's files get: the format file's may be an older one (the group was set after
    the store was made).
    """
    if not hasattr(os, "geteuid"):
        return
    if os.geteuid() != 0:
        grant_store_mode(fd, directory)
        return
    try:
        shared = bool(os.stat(directory).st_mode & stat.S_ISGID)
    except OSError:
        return
    # (A new file has the setgid directory's group already; one an earlier version left root's, given
    # back at root's next writing open, gets it too.)
    give_to_owner_of(fd, os.path.join(directory, FORMAT_FILE), group_of=directory if shared else None)


def grant_store_mode(fd: int, directory: str) -> None:
    """Give the file at ``fd``, of this process's user, in the store at ``directory`` the read and
    write bits the store's format file grants that it lacks (see :func:`withheld_modes`): the umask
    of the process that made it withheld them. A group's member whose shell or cron runs under umask
    022 (`kvb put`, `kvb merge`) made the next active data file (or a merge's files, MERGE.lock) 0644
    in a store of 0664 files shared by the group, and every other member's next write there failed
    (permission denied). Never takes a bit away; nothing where the format file cannot be looked at
    or the file is another user's. A store being created has no format file yet: its first files
    (LOCK) follow the umask, less what a setgid directory grants (see :func:`share_with_directory_group`)."""
    try:
        granted = withheld_modes(os.stat(os.path.join(directory, FORMAT_FILE)).st_mode)[0]
    except FileNotFoundError:
        share_with_directory_group(fd, directory)
        return
    except OSError:
        return
    try:
        mine = os.fstat(fd)
        if mine.st_uid == os.geteuid() and stat.S_IMODE(mine.st_mode) & granted != granted:
            os.fchmod(fd, stat.S_IMODE(mine.st_mode) | granted)
    except OSError:
        pass


def share_with_directory_group(fd: int, directory: str) -> None:
    """Give a new store's format file (or lock file) at ``fd`` the group's read and write bits its setgid
    ``directory`` grants, if this process (not root: see :func:`give_to_owner_of`) made it and its
    umask withheld them. A setgid directory is how a store is shared by a group (docs/engine.md);
    a store its first user made there under the common umask 022 had 0644 files (every file added
    later gets its format file's bits), and every other member of the group failed to write it."""
    try:
        st = os.stat(directory)
        mine = os.fstat(fd)
        wanted = st.st_mode & 0o060
        if st.st_mode & stat.S_ISGID and mine.st_uid == os.geteuid() != 0 and mine.st_mode & wanted != wanted:
            os.fchmod(fd, stat.S_IMODE(mine.st_mode) | wanted)
    except OSError:
        pass


def give_to_owner_of(fd: int, path: str, *, group_of: str | None = None) -> None:
    """Give the file at ``fd`` the owner and group of ``path`` (the group of ``group_of`` if given)
    if this process is root and the file is root's (see :func:`give_to_store_owner`); nothing
    otherwise, or if either cannot be looked at or changed. A file another user owns is left theirs:
    one of a group's users (of a store shared by its group) made it, and only they might write it if
    it were given away.

    A file given away also gets the read and write bits ``path`` grants (see :func:`withheld_modes`),
    whatever root's umask: root's cron runs under 022, which made the files it gave a store shared
    by a group (0660) 0640, and the group's other users could not write them."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    try:
        owner = os.stat(path)
        mine = os.fstat(fd)
        wanted = (owner.st_uid, owner.st_gid if group_of is None else os.stat(group_of).st_gid)
        if mine.st_uid == 0 and (mine.st_uid, mine.st_gid) != wanted:
            os.fchown(fd, *wanted)
            os.fchmod(fd, withheld_modes(owner.st_mode)[0])
    except OSError:
        pass


def roots_files(directory: str, names: list[str] | None = None) -> list[str]:
    """The names of the store's files (of ``names``, the directory's listing, if given) that are root's
    in the store at ``directory``, whose format file another user owns: an earlier version left them
    so (a root command's merge, rotation or read-only open), and that user's processes cannot write
    them (permission denied at the next write, rotation or merge). Empty if the store is root's."""
    try:
        if os.stat(os.path.join(directory, FORMAT_FILE)).st_uid == 0:
            return []
        listed = os.listdir(directory) if names is None else names
    except OSError:
        return []
    found = []
    for name in sorted(listed):
        if name == FORMAT_FILE or not _is_store_file(name):
            continue
        try:
            st = os.lstat(os.path.join(directory, name))
        except OSError:  # (removed meanwhile: a merge)
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == 0:
            found.append(name)
    return found


def give_back_roots_files(directory: str) -> None:
    """Give the files :func:`roots_files` finds in the store at ``directory`` to the store's owner, as
    root gives the files it makes now (see :func:`give_to_store_owner`), if root runs this: what a
    writing open by root does, so that the owner's processes can write the store again. Best effort."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for name in roots_files(directory):
        try:
            fd = os.open(os.path.join(directory, name), flags)
        except OSError:
            continue
        try:
            give_to_store_owner(fd, directory)
        finally:
            os.close(fd)


def create_for_store_owner(path: str, mode: int, size: int = 0) -> int | None:
    """Create the missing file ``path`` of a store that every process opens (``LOCK``, ``STATE``,
    ``MERGE.lock``) already given to the store's owner if root runs this, with the read and write
    bits the store grants otherwise (see :func:`give_to_store_owner`): return its fd (read and
    write), or None where the caller is to open or create it itself (the file exists, or the file
    system has no way to do it: neither ``O_TMPFILE`` with ``/proc`` nor hard links).

    Created by name and given away afterwards, the file would be root's (or narrowed by the umask of
    a group's member) for a moment, and another process of the store opening it then fails
    (permission denied): made unnamed (Linux), or under a temporary name elsewhere, given away (and
    ``size`` bytes long), then linked into place, no other process ever sees it so. A link never
    replaces a file another process made meanwhile.
    """
    if not hasattr(os, "geteuid") or os.path.lexists(path):
        return None
    directory, name = os.path.split(path)
    cloexec = getattr(os, "O_CLOEXEC", 0)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | cloexec)
    except OSError:
        return None
    try:
        made = _link_unnamed(dir_fd, directory, name, mode, size)
        if made is _NO_WAY:
            made = _link_from_temporary_name(dir_fd, directory, name, mode, size)
        # Opened again by its name: the descriptor it was made through goes on showing as a deleted
        # file (in /proc/PID/fd, to lsof), as if the store's lock were a file that had been removed.
        return os.open(name, os.O_RDWR | cloexec, dir_fd=dir_fd) if made is True else None
    except OSError:  # another process made it meanwhile (the caller opens that one)...
        return None
    finally:
        os.close(dir_fd)


#: What :func:`_link_unnamed` returns where the system cannot make unnamed files (no ``O_TMPFILE``,
#: a file system without them, no ``/proc``), and :func:`_link_from_temporary_name` on one without
#: hard links: the next way is to be tried.
_NO_WAY: Any = object()
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
"""What os.link raises on a file system without hard links (EPERM on FAT and exFAT)."""


def _link_unnamed(dir_fd: int, directory: str, name: str, mode: int, size: int) -> object:
    """Make ``name`` in ``directory`` (open at ``dir_fd``) as an unnamed file given to the store's
    owner, or its mode (see :func:`give_to_store_owner`), then linked into place: True, None if
    another process made ``name`` first, or _NO_WAY."""
    if not hasattr(os, "O_TMPFILE"):
        return _NO_WAY
    try:
        fd = os.open(".", os.O_TMPFILE | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), mode, dir_fd=dir_fd)
    except OSError:  # (EOPNOTSUPP, EISDIR: a file system or a kernel without unnamed files)
        return _NO_WAY
    try:
        give_to_store_owner(fd, directory)
        if size:
            os.ftruncate(fd, size)
        # (dst_dir_fd: Python then calls linkat with AT_SYMLINK_FOLLOW, which follows /proc's link to
        # the unnamed file; link() would try to link the symbolic link itself, across file systems.)
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd)
        return True
    except FileExistsError:
        return None
    except OSError:  # no /proc (a chroot, a container without it)
        return _NO_WAY
    finally:
        os.close(fd)


def _link_from_temporary_name(dir_fd: int, directory: str, name: str, mode: int, size: int) -> object:
    """:func:`_link_unnamed` where files cannot be unnamed (macOS, BSD): made under a temporary name
    (:func:`creating_name`), given away, then hard-linked to ``name``, which fails rather than
    replace a file of that name, and the temporary name removed. True, None if another process made
    ``name`` first (or a writer's clean-up removed the temporary one: the caller opens as it would),
    or _NO_WAY on a file system without hard links. A process killed in between leaves the temporary
    file, which the next writer's open removes (as it does a merge's temporary files)."""
    temporary = creating_name(name)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, mode, dir_fd=dir_fd)
    try:
        give_to_store_owner(fd, directory)
        if size:
            os.ftruncate(fd, size)
        os.link(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    except (FileExistsError, FileNotFoundError):
        return None
    except OSError as exc:
        if exc.errno in NO_HARD_LINKS:
            return _NO_WAY
        raise
    finally:
        os.close(fd)
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass


_CREATING_RE = re.compile(r"^(?:LOCK|STATE|MERGE\.lock)\.\d+-[0-9a-f]{8}\.tmp\Z")


def creating_name(name: str) -> str:
    """A temporary name for the store file ``name`` (``LOCK``, ``STATE``, ``MERGE.lock``) while it is
    made (see :func:`_link_from_temporary_name`), unique to this process and call."""
    return f"{name}.{os.getpid()}-{os.urandom(4).hex()}{TMP_SUFFIX}"


def open_store_file(path: str, flags: int, mode: int, *, size: int = 0) -> int:
    """``os.open(path, flags, mode)`` (close-on-exec) of a file of a store that the call may create
    (``O_CREAT`` in ``flags``): one root creates is the store owner's from the start, or given to
    them at once where the system cannot make it unnamed (see :func:`create_for_store_owner`; an
    unnamed one is ``size`` bytes long before any process sees it). OSError as ``os.open`` raises it.
    """
    made = create_for_store_owner(path, mode, size)
    if made is not None:
        return made
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), mode)
    give_to_store_owner(fd, os.path.dirname(path))
    return fd


def storage_error(exc: OSError, what: str) -> StorageError:
    """Wrap an OSError in the project's exception with a message that says what to do."""
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = " The disk is full: free space, then retry; nothing acknowledged was lost."
    elif exc.errno == errno.EROFS:
        hint = " The filesystem is mounted read-only: open the store with read_only=True."
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = " Check the directory's permissions, or open it with read_only=True."
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


def new_path_owner(made: list[str]) -> tuple[int, int] | None:
    """The owner and group that the directories ``made`` (:func:`missing_directories` of a new
    store's path, about to be created) are to get, with the store made in them: those of the
    nearest directory above them that exists, if root runs this and that directory is another
    user's. A store root makes, restores or salvages at a new path under a directory prepared for a
    service (``/srv/app`` of www-data) is the service's, which is to use it, as one made in an
    existing empty directory of the service is; under root's own directories it stays root's.
    None otherwise (nothing to give)."""
    if not made or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    st = nearest_directory(os.path.dirname(made[-1]))
    return None if st is None or st.st_uid == 0 else (st.st_uid, st.st_gid)


def nearest_directory(path: str) -> os.stat_result | None:
    """The ``stat`` of ``path``, or of the nearest of its parents that exists; None if none can be seen."""
    while True:
        try:
            return os.stat(path)
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent
        except OSError:
            return None


#: How a directory whose entries are changed through its descriptor is opened (never through a link).
_DIRECTORY = (
    os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


def give_new_directories(made: list[str], owner: tuple[int, int] | None) -> None:
    """Give the directories ``made`` (:func:`missing_directories` of a new store's path, now created)
    ``owner`` (see :func:`new_path_owner`); nothing if it is None. Each is opened from the one above
    it, never through a symbolic link: the user they are given to owns the directory they are made
    in, and could put a link to another place there meanwhile. Best effort, as :func:`give_to_owner_of`."""
    if owner is None or not made:
        return
    try:
        fd = os.open(os.path.dirname(made[-1]), _DIRECTORY & ~getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        for path in reversed(made):
            below = os.open(os.path.basename(path), _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
            os.fchown(fd, *owner)
    except OSError:
        pass
    finally:
        os.close(fd)


def give_tree(path: str, owner: tuple[int, int]) -> None:
    """Give the directory ``path`` and the entries in it (a new store's files) ``owner`` (uid, gid;
    -1 keeps one), through its descriptor, as :func:`give_new_directories` does. OSError if the
    directory cannot be given; entries that cannot be are left as they are."""
    fd = os.open(path, _DIRECTORY)
    try:
        os.fchown(fd, *owner)
        for name in os.listdir(fd):
            try:
                os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)
            except OSError:
                pass
    finally:
        os.close(fd)


def check_new_store_target(path: str, action: str, error: type[Exception]) -> None:
    """Refuse ``path`` as the place a new store is built and moved into (restore, salvage).

    It may be missing or an empty directory; a file, a non-empty directory (a live
    store, or anything else worth keeping), a mount point (which a rename cannot
    replace) or a path inside a store's directory raises ``error`` before any work is done.
    """
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


def enclosing_store(path: str) -> str | None:
    """The store directory (one holding ``KVB_FORMAT``) that is ``path`` or one of its parents, if any."""
    while True:
        if os.path.isfile(os.path.join(path, FORMAT_FILE)):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _is_store_file(name: str) -> bool:
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
    if not name:  # abspath("") is the working directory: a setting left empty would open it
        raise ConfigurationError("the store's path is empty: name its directory ('.' for this one)")
    if "\x00" in name:  # the system refuses it (a bare ValueError from the first os call)
        raise ConfigurationError(f"the store's path {name!r} holds a NUL character, which no path can")
    return os.path.abspath(name)


def prepare_directory(path: str, *, create: bool) -> bool:
    """Check that ``path`` is a store directory (creating it if allowed).

    Returns True if the directory is new (has no ``KVB_FORMAT`` yet).
    Raises :class:`StoreNotFoundError` or :class:`NotAStoreError` otherwise.
    """
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
        give_new_directories(made, new_path_owner(made))
    marker = os.path.join(path, FORMAT_FILE)
    if os.path.lexists(marker):
        try:
            with open(marker, encoding="utf-8", errors="replace") as f:
                text = f.read(4096)  # (its first line is all that counts)
        except OSError as exc:  # one this user may not read (its owner's only), a directory...
            raise storage_error(exc, f"cannot read {marker}") from exc
        if text.partition("\n")[0].rstrip("\r") != FORMAT_TEXT.rstrip("\n"):
            raise NotAStoreError(
                errno.EINVAL, f"{path} holds a store of an unsupported format: {text.strip()!r}"
            )
        return False
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise storage_error(exc, f"cannot list {path}") from exc
    if FORMAT_FILE in entries:
        # Another process created the store between our two looks: check it as any store.
        return prepare_directory(path, create=create)
    # lost+found alone is what a new filesystem's mount point holds: still an empty directory.
    foreign = [e for e in entries if not _is_store_file(e) and e != "lost+found"]
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
    return True
