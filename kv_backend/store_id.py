"""A store's identity: a random id on the second line of its format file, ``id <32 hex digits>``.

A store gets one when it is created; a store made before ids gets one from the first writable open that
holds its write lock (see :func:`add_store_id`). A restored store keeps the id of its backup, a salvaged
one that of its source, and a copy made with ``cp -r`` has its original's. Backups record it, so that
backups of two stores never mix at one URL (see docs/backup.md). Readers compare only the first line of
the format file, so versions before ids open stores that have one.
"""

from __future__ import annotations

import os
import re
import stat
import uuid
from collections.abc import Callable

from kv_backend.files import (
    FORMAT_FILE,
    FORMAT_TEXT,
    TMP_SUFFIX,
    FormatText,
    fsync_dir,
    fsync_file,
    read_format,
    write_all,
)
from kv_backend.locking import lock_file_taken

#: Seconds a reader of a store's id (a backup's snapshot, salvage of its source, ``DB.store_id``: see
#: :func:`trusted_format`) waits for the store's write lock to look at the id again under it, where
#: another process may be adding it (see :func:`add_store_id`); past them salvage and ``DB.store_id`` keep
#: the id read first and a backup names none (a lock held longer: a long transaction, a caller keeping
#: writers out with ``flock`` on the lock file).
ID_LOCK_WAIT = 1.0

_ID_LINE = re.compile(r"id ([0-9a-f]{32})\Z")


def new_store_id() -> str:
    """A new random store id (a uuid4's 32 lowercase hex digits)."""
    return uuid.uuid4().hex


def is_store_id(value: object) -> bool:
    """Whether ``value`` is a store id (32 lowercase hex digits)."""
    return isinstance(value, str) and _ID_LINE.match(f"id {value}") is not None


def format_text(store_id: str | None) -> str:
    """The content of a format file naming ``store_id`` (none: the first line alone)."""
    return FORMAT_TEXT + (f"id {store_id}\n" if store_id is not None else "")


def parse_store_id(text: str) -> str | None:
    """The id the format file content ``text`` names on its second line; None if that line is missing
    or is not ``id`` and 32 lowercase hex digits (lines after it are ignored)."""
    lines = text.split("\n", 2)
    if len(lines) < 2:
        return None
    match = _ID_LINE.match(lines[1].rstrip("\r"))
    return match.group(1) if match else None


#: What ends a line of a format file as every reader reads it (``open``'s default, universal newlines): a
#: line feed, a carriage return and the pair of them (see :func:`kv_backend.files.read_format`). A group:
#: its ``split`` keeps them, between the lines.
LINE_END = re.compile(r"(\r\n|\r|\n)")
_LINE_END_BYTES = re.compile(rb"\r\n|\r|\n")
_LONE_CR = re.compile(rb"\r(?!\n)")


def as_read(text: str) -> str:
    """The format file content ``text``, read as it is (``newline=""``), as every reader reads it: each
    line ending in a line feed alone (see :data:`LINE_END`)."""
    return LINE_END.sub("\n", text)


def line_of(data: bytes, at: int) -> int:
    """The line, as readers count them (see :data:`LINE_END`), of byte ``at`` of a format file holding
    ``data``."""
    return len(_LINE_END_BYTES.findall(data, 0, at)) + 1


def not_utf8(data: bytes, at: int) -> str:
    """Where a format file holding ``data`` stops being UTF-8 (at byte ``at``), as a backup's error and
    ``kvb check`` say it: ``bytes that are not UTF-8 text (0x.. at byte N, on its line L)``."""
    return f"bytes that are not UTF-8 text (0x{data[at]:02x} at byte {at}, on its line {line_of(data, at)})"


def format_repair(marker: str, data: bytes, at: int) -> str:
    """What to do about the format file at ``marker`` (a store's ``KVB_FORMAT``) holding ``data``, damaged
    from byte ``at`` on (bytes that are not UTF-8, a second line that is no id, lines after it): cut it
    back to its sound lines, its lines counted as readers count them (see :data:`LINE_END`); where one
    before ``at`` ends in a carriage return alone, which sed takes for no line's end, make every line end
    a line feed first. The advice of a backup's error and of ``kvb check`` alike."""
    line = line_of(data, at)
    found = parse_store_id(as_read(data[:at].decode("utf-8", "replace"))) if line > 2 else None
    first = (
        "some of its lines end in a carriage return alone, which readers take for a line's end and sed "
        f"does not: first make every line end a line feed (sed -i -z -E 's/\\r\\n?/\\n/g' {marker}), then "
        if _LONE_CR.search(data, 0, at)
        else ""
    )
    if found is not None:
        return (
            f"its id line is sound (id {found}), and readers ignore the lines after it: {first}cut the file "
            f"to its first two lines (sed -i '3,$d' {marker})"
        )
    return (
        f"its second line, where the store's id goes, is damaged: {first}cut the file to its first line "
        f"(sed -i '2,$d' {marker}), then write back the id the store's backups name (kvb backups URL "
        f"--json shows it: echo 'id ID' >> {marker}); without it, its next writable open or kvb backup "
        "gives the store a new id, whose backups the URL holding the old one's refuses (use another URL)"
    )


def read_store_id(path: str) -> str | None:
    """The id of the store at ``path`` (None without one, or where its format file cannot be read)."""
    return read_store_id_seen(path)[0]


def read_store_id_seen(path: str) -> tuple[str | None, tuple[int, int]]:
    """:func:`read_store_id`, and the inode number and size of the file read (for :func:`same_format_file`;
    ``(-1, -1)`` where it cannot be read)."""
    try:
        text = read_format(path)
    except OSError:
        return None, (-1, -1)
    return parse_store_id(text), text.seen


def trusted_format(
    path: str,
    lock_path: str | None,
    read: Callable[[str], FormatText] | None = None,
    *,
    keep_first: bool = True,
) -> FormatText | None:
    """What a reader that records the id of the store at ``path`` (a backup's manifest, a salvage's copy,
    ``DB.store_id``) takes of its format file: the text ``read(path)`` gives (:func:`read_format` by
    default), None where that raises OSError (no file, one this user may not read).

    Where it names an id, the file is looked at again under the store's write lock, whose lock file is
    ``lock_path`` (None: not taken), taken for that look alone and waited for :data:`ID_LOCK_WAIT` seconds
    at most (where this thread holds it already, that hold is the lock: see
    :func:`~kv_backend.locking.lock_file_taken`), and read again where it is no longer the file read (one
    ``stat``): a process giving a store made before ids its id holds that lock from the rename of the new
    file through the fsync of the directory, and puts the old file back where that fsync fails (see
    :func:`add_store_id`); a read in between shows an id the store never kept. Where another holds the
    lock longer (a long transaction, a caller keeping writers out with ``flock`` on the lock file), or
    where this process may not open the lock file (the store owner's, which this user may not read: the
    owner's process may hold it, adding an id, and this one cannot tell), the text read first with
    ``keep_first`` (salvage, ``DB.store_id``), else None (a backup, whose manifest never names an id that
    may be taken back). So a ``keep_first`` reader, there alone, may answer an id that is then taken
    back: read in an adder's window, the directory fsynced here (below) before the adder's own fsync
    fails and it puts the old file back; the store then goes without, and a later open gives it
    another. Where there is no lock file (or no ``flock``), no process is adding an id: an adder makes
    the lock file before it renames the new format file, this reads the format file before it looks for
    the lock file, and no process removes one (a store swapped in at the path meanwhile has another
    format file, which the look below refuses); the text read first. ``lock_path`` None (a closed
    ``DB``'s ``store_id``) takes no look, as ``keep_first`` where the lock cannot be taken.

    A file that names an id is trusted only once on disk: the directory is fsynced first (under the lock,
    where it was taken), and the file must still be the one read (see :func:`_on_disk`); where not, None.
    A process adding an id that could not fsync the directory puts the old file back, and where that
    fails too, leaves the new one unconfirmed: that fsync is what makes it the store's."""
    read = read or read_format
    try:
        text = read(path)
    except OSError:
        return None
    if parse_store_id(text) is None:
        return text  # (no id to look at again: a store without one gets it under the lock, from a writer)
    if lock_path is None:
        return text if _on_disk(path, text) else None
    with lock_file_taken(lock_path, wait=ID_LOCK_WAIT) as held:
        if held is False and not keep_first:
            return None
        if held and not same_format_file(path, text.seen):
            try:
                text = read(path)
            except OSError:
                return None
        return text if parse_store_id(text) is None or _on_disk(path, text) else None


def _on_disk(path: str, text: FormatText) -> bool:
    """Whether the format file of the store at ``path`` read as ``text`` is on disk: its directory fsynced
    (one ``fsync``), and the file still the one read. On a read-only filesystem, whose directory may not
    take an fsync (EINVAL: squashfs, an ISO image), the file is there for good."""
    try:
        fsync_dir(path)
    except OSError:
        try:
            if not os.statvfs(path).f_flag & os.ST_RDONLY:
                return False
        except OSError:
            return False
    return same_format_file(path, text.seen)


def same_format_file(path: str, seen: tuple[int, int]) -> bool:
    """Whether the format file of the store at ``path`` is still the one whose inode number and size were
    ``seen`` (see :class:`~kv_backend.files.FormatText`): one ``stat``, no read.

    Under the write lock, where the file seen named an id: that id is on disk. A process adding an id
    holds the lock from the rename through the fsync of the directory, and where the fsync fails it puts
    back the old file, a new one of another size (the first line alone): a file read in that window, and
    trusted without this look, stood for an id the store did not keep."""
    try:
        st = os.stat(os.path.join(path, FORMAT_FILE))
    except OSError:
        return False
    return (st.st_ino, st.st_size) == seen


def add_store_id(path: str) -> str | None:
    """Give the store at ``path`` an id if its format file holds its first line alone; return its id.

    The caller holds the store's write lock, so concurrent openers agree on one id: each decides under
    it, after reading the file again. The file is replaced atomically (a temporary copy, fsynced,
    renamed over it, the directory fsynced), with the owner, group and mode of the one it replaces:
    a crash leaves the old file or the new one, whole. The lock is held until the directory is fsynced,
    so a process that reads the id under it (a backup's snapshot) reads only one the disk keeps; where
    the fsync fails, the old file is put back and the store goes without (a power failure might have
    taken the id back, and a later open would give it another). Where that cannot be done (a read-only
    file system, a directory this user may not write, a format file of another user that this process
    may not give away, a full disk, a directory that cannot be fsynced), or where the file holds
    anything else after its first line (a second line that is no id: left as it is), the store goes
    without: None.
    """
    try:
        # (The read every reader makes, without waiting on a FIFO; line endings as they are, so that the
        # old file put back where the directory cannot be fsynced is the one read, byte for byte: only a
        # file of the first line alone, ASCII, is ever replaced.)
        text = read_format(path, newline="")
    except OSError:
        return None
    st = text.st
    if st is None:  # (read_format gives it)
        return None
    found = parse_store_id(text)
    first, _, rest = text.partition("\n")
    if found is not None or rest.strip() or first.rstrip("\r") != FORMAT_TEXT.rstrip("\n"):
        return found
    if os.geteuid() not in (0, st.st_uid):
        return None  # (replaced, it would become this user's: left for its owner's next open)
    store_id = new_store_id()
    return store_id if replace_format_file(path, format_text(store_id), st, old=text) else None


def replace_format_file(path: str, content: str, st: os.stat_result, *, old: str | None = None) -> bool:
    """Replace the format file of the store at ``path`` (whose ``os.stat`` is ``st``) with ``content``,
    atomically, keeping its owner, group and mode; False where the system refuses (nothing changed).
    The caller holds the store's write lock, or the store is one no other process knows of yet.

    ``old``, the content replaced: where the directory cannot be fsynced once the new file is renamed
    into place (the disk may not keep it), put back (as the new one was put there) and False. Without
    it, a failed fsync of the directory is ignored (a crash may then leave either file)."""
    if not _replaced(path, content, st):
        return False
    try:
        fsync_dir(path)
    except OSError:
        if old is None:
            return True  # (the rename is done: a crash before the directory reaches the disk leaves either)
        if _replaced(path, old, st):
            try:
                fsync_dir(path)
            except OSError:
                pass  # (either file may be on disk: no process uses the new one, which a later open keeps)
        # (Where putting the old file back failed, the new one stays, its id unconfirmed: no reader records
        # it before it has fsynced the directory itself, see trusted_format.)
        return False
    return True


def _replaced(path: str, content: str, st: os.stat_result) -> bool:
    """Rename a copy of ``content`` (fsynced) over the format file of the store at ``path``, with the owner,
    group and mode of ``st``; whether it was (False: nothing changed)."""
    marker = os.path.join(path, FORMAT_FILE)
    tmp = marker + TMP_SUFFIX
    try:
        try:
            os.unlink(tmp)  # (what a creation or an addition killed midway left: the lock is ours)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            mine = os.fstat(fd)
            if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
                os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            write_all(fd, content.encode("utf-8"), 0)
            fsync_file(fd)
        finally:
            os.close(fd)
        os.replace(tmp, marker)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


def give_store_id(path: str, store_id: str) -> bool:
    """Give the store at ``path``, which no other process knows of yet (a salvage's copy), ``store_id``;
    False where its format file cannot be replaced."""
    try:
        st = os.stat(os.path.join(path, FORMAT_FILE))
    except OSError:
        return False
    return replace_format_file(path, format_text(store_id), st)
