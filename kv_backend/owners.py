"""Who owns the files of a store, and with which permission bits.

Root may write every file, so what it makes in a store of another user (a merge's files, the next
active data file, the lock and state files, a new store under a service's directory) is given to
that user; a process of any user gives the files it adds the read and write bits the store grants,
whatever its umask; and the files every process opens (``LOCK``, ``STATE``, ``MERGE.lock``) are made
so before any process sees them. See docs/engine.md, "Processes of different users".
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from kv_backend.files import FORMAT_FILE, creating_name, is_store_file, settle_new_file, withheld_modes


def give_to_store_owner(fd: int, directory: str, *, added: bool = True) -> None:
    """Give the file just created at ``fd`` in the store at ``directory`` the owner and group of
    the store's format file, when root creates it; one that stays this process's (any other user's,
    or root's in a store of root's) the read and write bits the store grants (see :func:`grant_store_mode`).

    Root may write every file, so a command it runs by habit (``sudo kvb merge``, a root crontab)
    on a store of the site's user would otherwise leave root's files there (the next active data
    file, a merge's data and hint files, the lock and state files), which that user's processes
    cannot write: they would fail with permission denied. Other users cannot give files away and
    need not: their files are the store's already, or the store is theirs. Best effort: where
    root may not chown (no CAP_CHOWN, an id unmapped in a user namespace), the file stays root's.
    In a setgid directory (a store shared by a group) the file keeps the group the directory gave
    it, as every writer's files get: the format file's may be an older one (the group was set after
    the store was made). A file found rather than ``added`` (a ``LOCK`` an earlier version left
    root's) is only given away: its mode stays as it is.
    """
    if not hasattr(os, "geteuid"):
        return
    if os.geteuid() == 0:
        try:
            shared = bool(os.stat(directory).st_mode & stat.S_ISGID)
        except OSError:
            return
        # (A new file has the setgid directory's group already; one an earlier version left root's,
        # given back at root's next writing open, gets it too.)
        give_to_owner_of(fd, os.path.join(directory, FORMAT_FILE), group_of=directory if shared else None)
    if added:
        grant_store_mode(fd, directory)  # (a file still this process's: root's own store, any other user's)
        settle_new_file(fd)  # (inside a files_granting block: no more than it allows)


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
    ``directory`` grants, if the file is this process's and its umask withheld them (root's too, in a
    directory of root's; one root gave another user, :func:`give_to_owner_of`, has them already). A
    setgid directory is how a store is shared by a group (docs/engine.md); a store its first user (or
    root, in the ``chgrp app DIR`` it left its own) made there under the common umask 022 had 0644
    files (every file added later gets its format file's bits), and every other member of the group
    failed to write it."""
    try:
        st = os.stat(directory)
        mine = os.fstat(fd)
        wanted = st.st_mode & 0o060
        if st.st_mode & stat.S_ISGID and mine.st_uid == os.geteuid() and mine.st_mode & wanted != wanted:
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
        if name == FORMAT_FILE or not is_store_file(name):
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


def open_store_file(path: str, flags: int, mode: int, *, size: int = 0) -> int:
    """``os.open(path, flags, mode)`` (close-on-exec) of a file of a store that the call may create
    (``O_CREAT`` in ``flags``): one root creates is the store owner's from the start, or given to
    them at once where the system cannot make it unnamed (see :func:`create_for_store_owner`; an
    unnamed one is ``size`` bytes long before any process sees it). OSError as ``os.open`` raises it.
    """
    made = create_for_store_owner(path, mode, size)
    if made is not None:
        return made
    # (Only a file this call creates gets the store's bits: one found keeps its mode.)
    fd, created = open_noting_creation(path, flags, mode)
    give_to_store_owner(fd, os.path.dirname(path), added=created)
    return fd


def open_noting_creation(path: str, flags: int, mode: int) -> tuple[int, bool]:
    """``(fd, created)``: ``os.open(path, flags, mode)`` (close-on-exec), and whether this call created
    the file (with ``O_CREAT``: tried with ``O_EXCL`` first). OSError as ``os.open`` raises it."""
    flags |= getattr(os, "O_CLOEXEC", 0)
    if flags & os.O_CREAT and not flags & os.O_EXCL:
        try:
            return os.open(path, flags | os.O_EXCL, mode), True
        except FileExistsError:
            pass
        return os.open(path, flags, mode), False
    return os.open(path, flags, mode), bool(flags & os.O_EXCL)


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
