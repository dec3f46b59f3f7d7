"""A drop-in ``dbm`` module backed by the engine: ``kv_backend.dbm.open(file, flag="r", mode=0o666)``.

It follows the interface shared by the stdlib's ``dbm.gnu``, ``dbm.ndbm`` and
``dbm.dumb``: keys and values are ``bytes`` (``str`` is accepted and stored
as UTF-8), the object is a mutable mapping with ``keys()``, ``get``,
``setdefault``, ``sync``, ``close`` and context-manager support, and
failures raise :data:`error` (an ``OSError``). Unlike those modules, one
database can be written by many processes at once and survives a crash of
any of them without losing a completed write.

The database is a *directory* at ``file`` (the stdlib modules use one file or
a ``.dat``/``.dir`` pair). The stdlib's ``dbm.whichdb`` cannot recognise it
(it returns None); :func:`whichdb` here returns ``"kv_backend.dbm"`` for it
and defers to the stdlib for anything else.
"""

from __future__ import annotations

import builtins
import dbm as _std_dbm
import errno
import operator
import os
import stat
from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, SupportsIndex, TypeVar, overload

from kv_backend.db import DB
from kv_backend.db_open import took_creation
from kv_backend.errors import (
    ConfigurationError,
    CorruptionError,
    DatabaseClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueError,
    KeyTooLargeError,
    KVError,
    NotAStoreError,
    ReadOnlyError,
    StoreNotFoundError,
    TransactionError,
    UnencodableKeyError,
    UnencodableTextError,
    ValueTooLargeError,
)
from kv_backend.files import FORMAT_FILE, refuse_dangling_link
from kv_backend.lazy import load
from kv_backend.mapping import refuse_pickling, update_pairs
from kv_backend.owners import give_new_directories, new_path_owner

if TYPE_CHECKING:
    from typing import TypeAlias

    from typing_extensions import Buffer

    from kv_backend.merge import MergeReport

    #: A key or value as given: a str (stored as UTF-8) or any bytes-like object (stored as its bytes).
    _Bytes: TypeAlias = str | Buffer

__all__ = [
    "ClosedError",
    "DamagedRecordError",
    "Database",
    "DatabaseNotFoundError",
    "FlagError",
    "KeySizeError",
    "PathNotADirectoryError",
    "PermissionDeniedError",
    "ReadOnlyDatabaseError",
    "ValueSizeError",
    "error",
    "open",
    "open_flags",
    "whichdb",
]

T = TypeVar("T")
_D = TypeVar("_D", bound="Database")  # a Database or subclass, as with open(...) as db: gives it
_K = TypeVar("_K")
_V = TypeVar("_V")
_MISSING: Any = object()
_FLAGS = "rwcn"
_MODIFIERS = "fsu"
#: Every character :func:`open`'s ``flag`` may hold, as ``dbm.gnu.open_flags`` lists its own: a first
#: character of ``"rwcn"``, then any of the modifiers ``"fsu"``.
open_flags = _FLAGS + _MODIFIERS


class error(KVError, OSError):  # the name every dbm module uses
    """The exception of this dbm module (an ``OSError``, as the stdlib's ``dbm.error`` entries are).

    One that :func:`open` raises about the path has it in ``filename``, as an ``OSError`` of the
    ``os`` module (and ``dbm.gnu``'s) has; its message names the path already.
    """

    def __str__(self) -> str:
        if self.filename is None or self.strerror is None:
            return super().__str__()
        return f"[Errno {self.errno}] {self.strerror}"  # (OSError's adds ": 'filename'")


class ReadOnlyDatabaseError(error, ReadOnlyError):
    """A write to a database opened with flag ``"r"``."""


class ClosedError(error, DatabaseClosedError):
    """The database was used after :meth:`Database.close`."""


class FlagError(error, ConfigurationError):
    """A ``flag`` :func:`open` does not know: this module's error, as ``dbm.gnu`` and ``dbm.ndbm`` raise
    theirs, and a ``ValueError``, as ``dbm.dumb`` and ``dbm.sqlite3`` raise."""


class DatabaseNotFoundError(error, FileNotFoundError):
    """No database at the path with flag ``"r"`` or ``"w"``, or no parent directory to create it in.

    A ``FileNotFoundError``, as ``dbm.dumb`` raises in both cases.
    """


class PermissionDeniedError(error, PermissionError):
    """The system refused access to the database's path (``EACCES``, ``EPERM``).

    A ``PermissionError``, as ``dbm.dumb`` raises.
    """


class PathNotADirectoryError(error, NotADirectoryError):
    """A component of the database's path is a file, not a directory (``ENOTDIR``).

    A ``NotADirectoryError``, as ``dbm.dumb`` raises.
    """


#: The subclass of :class:`error` for an errno, where Python's ``OSError`` has a subclass for it.
_BY_ERRNO: dict[int, type[error]] = {
    errno.ENOENT: DatabaseNotFoundError,
    errno.EACCES: PermissionDeniedError,
    errno.EPERM: PermissionDeniedError,
    errno.ENOTDIR: PathNotADirectoryError,
}


def _os_error(code: int | None, message: str) -> error:
    """This module's error for a failure of the system call with errno ``code``: an instance of
    the ``OSError`` subclass Python (and so ``dbm.dumb``) raises for it too, where it has one."""
    code = code or errno.EIO
    return _BY_ERRNO.get(code, error)(code, message)


def _message(exc: KVError) -> str:
    """The text of an engine error, for this module's error that replaces it (which adds the errno)."""
    message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    # The engine's advice names its own option; this module's caller has a flag.
    return message.replace("with read_only=True", "with flag 'r'")


def _probe(path: str) -> None:
    """Raise :func:`_os_error` if ``path`` (or the format file of a store directory there) cannot
    be looked at: a file among its parents, a directory the process may not search. Otherwise
    (also when nothing is there) return, and let the engine say what it finds.

    Without this, such a path read as "no database there", or an error no ``except
    PermissionError:`` catches, where ``dbm.dumb`` raises the OSError the system gave.
    """
    for p in (path, os.path.join(path, FORMAT_FILE)):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error(exc.errno, f"cannot open the database {path}: {exc.strerror}") from exc
        if not stat.S_ISDIR(st.st_mode):
            return


class DamagedRecordError(error, CorruptionError):
    """A value read from the database failed its checksum (damage on disk): ``EIO``.

    Also a :class:`~kv_backend.errors.CorruptionError`, whose ``path`` and ``offset`` name the record;
    run ``kvb check`` on the database's directory, and restore the key from a backup.
    """

    def __init__(self, *args: Any) -> None:
        OSError.__init__(self, *args)
        self.path: str | None = None
        self.offset: int | None = None


class KeySizeError(error, KeyTooLargeError):
    """A write of an empty key or one over 65,536 bytes, which the engine cannot store."""


class ValueSizeError(error, ValueTooLargeError):
    """A write of a value over 1 GiB, which the engine cannot store."""


def _as_bytes(obj: object, what: str, error: type[TypeError]) -> bytes:
    """``obj`` as bytes (str as UTF-8, any other bytes-like object as its bytes), as the stdlib dbm
    modules accept keys and values.

    Other types raise ``error``: the project's InvalidKeyError or InvalidValueError,
    both TypeErrors as in the stdlib modules.
    """
    if type(obj) is bytes:
        return obj
    if isinstance(obj, str):
        try:
            return obj.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: the stdlib's error, and the project's
            unencodable = UnencodableKeyError if error is InvalidKeyError else UnencodableTextError
            raise unencodable(exc.encoding, exc.object, exc.start, exc.end, exc.reason) from None
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    try:  # any other bytes-like object (array.array, mmap...), as dbm.sqlite3 takes one
        view = memoryview(obj)  # type: ignore[arg-type]  # (TypeError where it has no buffer)
    except TypeError:
        raise error(
            f"dbm {what} must be bytes or str (or another bytes-like object), not {type(obj).__name__}"
        ) from None
    with view:
        return view.tobytes()


def _key(key: object) -> bytes:
    return _as_bytes(key, "keys", InvalidKeyError)


def _value(value: object) -> bytes:
    return _as_bytes(value, "values", InvalidValueError)


class LiveItemsView(ItemsView[_K, _V], Generic[_K, _V]):
    """``items()`` of a mapping that other processes change: a key deleted during the walk is skipped.

    The mixin's view reads each listed key with ``mapping[key]``, so a key that
    another process deleted meanwhile raised KeyError in the middle of the loop.
    """

    _mapping: Mapping[_K, _V]  # set by MappingView

    def __iter__(self) -> Iterator[tuple[_K, _V]]:
        mapping = self._mapping
        for key in mapping:
            try:
                value = mapping[key]
            except KeyError:
                continue  # deleted since the keys were listed
            yield key, value


class LiveValuesView(ValuesView[_V], Generic[_V]):
    """``values()`` of a mapping that other processes change (see :class:`LiveItemsView`)."""

    _mapping: Mapping[Any, _V]  # set by MappingView

    def __iter__(self) -> Iterator[_V]:
        for _, value in LiveItemsView(self._mapping):
            yield value

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)


class Database(MutableMapping[bytes, bytes]):
    """An open database, as returned by :func:`open`; ``self.db`` is the underlying :class:`kv_backend.DB`."""

    def __init__(self, db: DB, flag: str) -> None:
        self.db = db
        self.flag = flag
        self._get = db.get
        self._put = db.put

    def _convert(self, exc: KVError) -> Exception:
        if isinstance(exc, ReadOnlyError):
            return ReadOnlyDatabaseError(
                errno.EBADF, f"the database {self.db.path} was opened with flag 'r'; open it with 'w' or 'c'"
            )
        if isinstance(exc, DatabaseClosedError):
            return ClosedError(errno.EBADF, f"the database {self.db.path} has already been closed")
        if isinstance(exc, KeyTooLargeError):
            if self.db.closed:  # the engine checks the key's size first; dbm.gnu checks the close first
                return self._convert(DatabaseClosedError())
            return KeySizeError(errno.EINVAL, str(exc))
        if isinstance(exc, ValueTooLargeError):
            return ValueSizeError(errno.EFBIG, str(exc))
        if isinstance(exc, CorruptionError):
            # Damage on disk: this module's error too, so that ``except kv_backend.dbm.error:`` (or the
            # stdlib's ``except dbm.error:``) catches it as it catches dbm.gnu's error for a bad file.
            damaged = DamagedRecordError(errno.EIO, str(exc))
            damaged.path, damaged.offset = exc.path, exc.offset
            return damaged
        if isinstance(exc, OSError) and not isinstance(exc, error):
            # A StorageError (disk full, permissions, I/O): this module's error, as its docstring
            # promises for every failure, so that ``except kv_backend.dbm.error:`` catches it.
            return _os_error(exc.errno, _message(exc))
        return exc

    def _check_open(self) -> None:
        if self.db.closed:
            raise self._convert(DatabaseClosedError())

    def __getitem__(self, key: _Bytes) -> bytes:
        if type(key) is not bytes:
            key = _key(key)
        try:
            value = self._get(key, _MISSING)
        except KeyTooLargeError:
            value = _MISSING  # no key of that size can be stored, so it is absent
        except KVError as exc:
            raise self._convert(exc) from None
        if value is _MISSING:
            raise KeyError(key)
        return value

    @overload
    def get(self, key: _Bytes) -> bytes | None: ...

    @overload
    def get(self, key: _Bytes, default: bytes | T) -> bytes | T: ...

    def get(self, key: _Bytes, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: _Bytes, value: _Bytes) -> None:
        if type(key) is not bytes:
            key = _key(key)
        if type(value) is not bytes:
            value = _value(value)
        try:
            self._put(key, value)
        except KVError as exc:
            raise self._convert(exc) from None

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, written as one atomic batch: a bad key or value writes nothing.

        The mixin's version wrote pair by pair, so a bad pair left the earlier ones written.
        """
        pairs = update_pairs(other, kwargs)
        self._write_pairs([(_key(k), _value(v)) for k, v in pairs])  # all checked before any is written

    def _write_pairs(self, encoded: list[tuple[bytes, bytes]]) -> None:
        """Write ``(key, value)`` pairs already checked as one atomic batch; a failure is :class:`error`."""
        try:
            if len(encoded) == 1:  # a single write is atomic by itself
                self._put(*encoded[0])
            elif encoded:
                with self.db.batch() as b:
                    for k, v in encoded:
                        b.put(k, v)
        except KVError as exc:
            raise self._convert(exc) from None

    def setdefault(self, key: _Bytes, default: _Bytes = b"") -> bytes:
        """Return the value of ``key``, storing ``default`` first if it is absent (atomic).

        As in ``dbm.gnu`` and ``dbm.dumb``, ``default`` is checked only when it is
        stored: a present key's value is returned whatever ``default`` is.
        """
        key = _key(key)
        value: bytes | None = None
        try:
            while True:
                found = self._get(key, _MISSING)
                if found is not _MISSING:
                    return found
                if value is None:
                    value = _value(default)
                if self.db.put_if_absent(key, value):
                    return value
        except KVError as exc:
            raise self._convert(exc) from None

    def __delitem__(self, key: _Bytes) -> None:
        key = _key(key)
        try:
            existed = self.db.delete(key)
        except KeyTooLargeError:
            self._check_open()  # checked after the key by the engine: use after close() raises
            existed = False  # no key of that size can be stored, so it is absent
        except KVError as exc:
            raise self._convert(exc) from None
        if not existed:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            k = _key(key)
        except TypeError:
            self._check_open()  # use after close() raises, whatever the key
            return False
        try:
            return k in self.db
        except KeyTooLargeError:
            return False  # no key of that size can be stored
        except KVError as exc:
            raise self._convert(exc) from None

    def __len__(self) -> int:
        try:
            return len(self.db)
        except KVError as exc:
            raise self._convert(exc) from None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.db.keys()
        except KVError as exc:
            raise self._convert(exc) from None

    def clear(self) -> None:
        """Remove every key at once: one atomic batch, as flag ``"n"`` empties a database.

        Clearing an empty database opened with ``"r"`` does nothing, as with the
        stdlib's (there is nothing to remove); a non-empty one raises ReadOnlyDatabaseError. The
        records of Redis keys (of ``kvb serve`` on the same directory) are left whole.
        """
        load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.structures.layout import clear_own, own_keys  # (not at import: clear's only)

        try:
            if self.db.read_only and next(own_keys(self.db), None) is None:
                return
            clear_own(self.db)
        except KVError as exc:
            raise self._convert(exc) from None

    @overload
    def pop(self, key: _Bytes) -> bytes: ...

    @overload
    def pop(self, key: _Bytes, default: bytes | T) -> bytes | T: ...

    def pop(self, key: _Bytes, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value, or ``default`` if it is absent (atomic across processes).

        The mixin's version read the key, then deleted it: when another process
        removed it in between, the delete raised KeyError even with a default.
        """
        k = _key(key)
        if self.db.read_only:  # nothing to remove here: a present key raises ReadOnlyDatabaseError
            return super().pop(k) if default is _MISSING else super().pop(k, default)
        try:
            value = self.db.pop(k, _MISSING)
        except KeyTooLargeError:
            self._check_open()  # checked after the key by the engine: use after close() raises
            value = _MISSING  # no key of that size can be stored, so it is absent
        except KVError as exc:
            raise self._convert(exc) from None
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(k)
            return default
        return value

    def popitem(self) -> tuple[bytes, bytes]:
        """Remove and return the pair with the smallest key; KeyError if empty (atomic across processes).
        The records of Redis keys (of ``kvb serve`` on the same directory) are left alone: removing one
        damages its key."""
        load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.structures.layout import pop_first  # (not at import: popitem's only)

        try:
            return pop_first(self.db, self.db._pop_pair, "database")
        except KVError as exc:
            raise self._convert(exc) from None

    def keys(self) -> list[bytes]:  # type: ignore[override]
        """Return a list of every key (bytes), in byte order."""
        return list(self)

    def items(self) -> LiveItemsView[bytes, bytes]:
        """A view of the ``(key, value)`` pairs in key order; keys others delete meanwhile are skipped."""
        return LiveItemsView(self)

    def values(self) -> LiveValuesView[bytes]:
        """A view of the values in key order; keys others delete meanwhile are skipped."""
        return LiveValuesView(self)

    def firstkey(self) -> bytes | None:
        """The smallest key, or None if the database is empty (as in ``dbm.gnu``)."""
        for k in self:
            return k
        return None

    def nextkey(self, key: _Bytes) -> bytes | None:
        """The key after ``key`` in byte order, or None after the last one (as in ``dbm.gnu``).

        ``key`` need not be in the database: a walk goes on after the key it is at was deleted
        (by this process or another), from where that key was. ``dbm.gnu`` returns None for a key
        that is not there, which silently ended such a walk.
        """
        k = _key(key)
        try:
            for nxt in self.db.keys(start=k):
                if nxt != k:
                    return nxt
        except KVError as exc:
            raise self._convert(exc) from None
        return None

    def sync(self) -> None:
        """Flush this object's writes to stable storage (fsync); nothing to do if it wrote nothing.

        As ``dbm.gnu``'s ``sync()``: what this database object wrote. Writes of other processes
        (or other objects on the path) are theirs to flush. An fsync with nothing written still
        flushed the disk's cache, milliseconds that every open, read and close of a shelf paid.
        """
        try:
            self.db._check_open()  # (a closed database raises, as dbm.gnu's sync() does)
            self.db._sync_written()
        except KVError as exc:
            raise self._convert(exc) from None

    def reorganize(self) -> MergeReport:
        """Reclaim the space of overwritten and deleted values (runs the engine's merge).

        If another process is merging the database, this waits for that merge to end and then
        merges: as with ``dbm.gnu``, the call completes. Without waiting it raised the engine's
        MergeInProgressError, which ``except dbm.error:`` missed, advising a ``merge(wait=True)``
        that this method does not take.
        """
        if self.db.read_only:
            raise self._convert(ReadOnlyError())
        try:
            return self.db.merge(wait=True)
        except KVError as exc:
            raise self._convert(exc) from None

    def close(self) -> None:
        """Close the database; later use raises :class:`error`. Idempotent."""
        self.db.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self.db.closed

    def __enter__(self: _D) -> _D:
        self._check_open()  # a with block on a closed database raises, as any use after close() does
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.db.closed else f"flag={self.flag!r}"
        return f"<kv_backend.dbm.Database {self.db.path!r} {state}>"

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        refuse_pickling("kv_backend.dbm database", self.db.path)


def _umask() -> int:
    """The process umask, read without changing it when the OS allows."""
    try:
        with builtins.open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    um = os.umask(0o022)
    os.umask(um)
    return um


def _is_store(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, FORMAT_FILE))


#: The magic number of a Berkeley DB hash file, the ``.db`` file of a ``dbm.ndbm`` built on Berkeley DB
#: (Debian's Python, macOS's): at byte 12 since Berkeley DB 2, at byte 0 in 1.85 (macOS), in the byte
#: order of the machine that wrote it.
_BERKELEY_HASH_MAGIC = ((0x061561).to_bytes(4, "little"), (0x061561).to_bytes(4, "big"))


def _is_berkeley_hash(path: str) -> bool:
    try:
        with builtins.open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head[0:4] in _BERKELEY_HASH_MAGIC or head[12:16] in _BERKELEY_HASH_MAGIC


def _stdlib_kind(path: str) -> str | None:
    """The stdlib's ``dbm.whichdb(path)``, also naming ``"dbm.ndbm"`` the ``path.db`` file of a
    ``dbm.ndbm`` that this interpreter lacks (built without ``_dbm``), which the stdlib recognises only by
    opening it with that module: it answered None ("nothing there"), and ``open(path, "c")`` (a shelf's
    default) made a new, empty database beside it instead of refusing the path."""
    kind = _std_dbm.whichdb(path)
    if kind is None and _is_berkeley_hash(path + ".db"):
        return "dbm.ndbm"
    return kind


def whichdb(filename: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str | None:
    """Name the module that opens ``filename``: ``"kv_backend.dbm"`` for a store, else the stdlib's answer."""
    path = os.fsdecode(filename)
    if _is_store(path):
        return "kv_backend.dbm"
    if os.path.isdir(path):
        return ""  # exists, but is not a database any module knows
    return _stdlib_kind(path)


def _dir_mode(mode: int) -> int:
    """The permission bits of a database directory for ``mode``: search (x) wherever reading is allowed."""
    return mode | ((mode & 0o444) >> 2)


def _create(path: str, mode: int) -> bool:
    """Create the store directory with ``mode`` (plus search bits where reading is allowed).

    Only the permission bits count: a sticky, setuid or setgid bit (or any higher one) in
    ``mode`` would otherwise reach the directory through mkdir, and a sticky store directory
    stops one user's merge from replacing the files another user's process wrote.
    """
    mode &= 0o777
    dir_mode = _dir_mode(mode)
    try:
        os.mkdir(path, dir_mode)  # the kernel applies the umask, as for the stdlib's files
    except FileExistsError:
        return False
    except OSError as exc:
        raise _os_error(exc.errno, f"cannot create the database {path}: {exc.strerror}") from exc
    give_new_directories([path], new_path_owner([path]))  # (root, in a directory of another user: theirs)
    return True


def _undo_create(path: str) -> None:
    """Remove the directory :func:`_create` made for a database that then could not be opened in it.

    Left there, it made every later open of the path fail: a directory its owner may not write
    or search (``mode`` 0o400, 0o200, 0), which is no database and which an open with another
    ``mode`` does not replace. Only if empty: a store another process is making in it stays.
    """
    try:
        os.rmdir(path)
    except OSError:
        pass


def _check_owner_access(path: str, mode: int, exc: KVError) -> None:
    """Say why a new database could not be opened, when ``mode`` denied its owner the access it needs.

    The engine's message named a lock file or a listing the system refused, and advised
    checking the directory's permissions, which were the ones asked for.
    """
    code = getattr(exc, "errno", None)
    umask = _umask()
    if code in (errno.EACCES, errno.EPERM) and _dir_mode(mode) & ~umask & 0o700 != 0o700:
        raise _os_error(
            code,
            f"cannot create the database {path} with mode {mode & 0o777:#o} (less the umask {umask:#o}): "
            "its owner needs read and write access (0o600 at least), for the database is a directory "
            "its processes write in; nothing was created",
        ) from exc


def _apply_mode(path: str, mode: int) -> None:
    file_mode = mode & ~_umask() & 0o777
    for name in os.listdir(path):
        try:
            os.chmod(os.path.join(path, name), file_mode)
        except OSError:
            pass


def _restrict_dir(path: str, mode: int) -> None:
    """Take from an existing directory that became a database the access ``mode`` does not grant.

    Never adds any (the caller chose the directory) and keeps its owner's, so
    the store stays usable; files the engine creates later are then guarded
    by the directory as in a directory this module made.
    """
    allowed = _dir_mode(mode) & ~_umask() | 0o700
    try:
        current = os.stat(path).st_mode & 0o7777
        if current & ~allowed & 0o777:
            os.chmod(path, current & (allowed | 0o7000))  # setgid and sticky bits stay
    except OSError:
        pass


def open(file: str | bytes | os.PathLike[Any], flag: str = "r", mode: int = 0o666) -> Database:
    """Open the database at ``file`` (a directory) and return a :class:`Database`.

    ``flag``: ``"r"`` read-only (writes raise :class:`error`), ``"w"``
    read-write on an existing database, ``"c"`` read-write, created if
    needed, ``"n"`` read-write and emptied (created if needed). As with
    ``dbm.gnu``, ``"f"`` may follow (no fsync: the default), ``"s"`` (fsync
    every write) or ``"u"`` (accepted; locking is always on and safe).
    ``mode`` is the permission of a newly created database, less the umask;
    the directory gets search bits wherever it is readable.
    """
    if (
        not isinstance(flag, str)
        or not flag
        or flag[0] not in _FLAGS
        or any(c not in _MODIFIERS for c in flag[1:])
    ):
        raise FlagError(
            errno.EINVAL,
            f"flag must be 'r', 'w', 'c' or 'n' (optionally followed by 'f', 's', 'u'), not {flag!r}",
        )
    try:
        if isinstance(mode, bool):  # (an int to the stdlib, but a flag given by mistake: mode 0o001)
            raise TypeError
        mode = operator.index(mode)  # an integer of any type (numpy's...), as the stdlib modules take
    except TypeError:
        raise InvalidArgumentError(f"mode must be an int such as 0o666, not {type(mode).__name__}") from None
    if not isinstance(file, (str, bytes, os.PathLike)):
        raise InvalidArgumentError(
            f"file must be the database's directory (str, bytes or os.PathLike), not {type(file).__name__}"
        )
    path = os.fsdecode(os.fspath(file))
    if not path:  # (no directory can be made or found there: say so rather than name an empty path)
        raise DatabaseNotFoundError(errno.ENOENT, "the database path is empty: name the database's directory")
    if "\x00" in path:  # the system refuses it (a bare ValueError from the first os call)
        raise ConfigurationError(f"the database path {path!r} holds a NUL character, which no path can")
    try:
        return _open_path(path, flag, mode)
    except error as exc:
        if exc.filename is None:  # (an OSError of the os module, dbm.gnu's and dbm.dumb's name the path)
            exc.filename = file
        raise


def _open_path(path: str, flag: str, mode: int) -> Database:
    """:func:`open` of the checked ``path``, ``flag`` and ``mode``."""
    if flag[0] == "n" and os.path.isfile(path) and not os.path.islink(path):
        # "n" always makes a new, empty database, as in the stdlib (dbm.gnu truncates whatever
        # file is there): a regular file at the path gives way to the new store directory.
        try:
            os.unlink(path)
        except OSError as exc:
            raise _os_error(exc.errno, f"cannot replace the file {path}: {exc.strerror}") from exc
    # A directory is checked by the engine (it may be a store another process is creating right now).
    kind = None if os.path.isdir(path) else _stdlib_kind(path)
    if kind is not None:
        what = f"a {kind} database" if kind else "not a kv_backend database"
        raise error(
            errno.EINVAL,
            f"{path} is {what}; kv_backend.dbm opens only its own store directories "
            "(use the stdlib dbm module for other formats, or a new path)",
        )
    _probe(path)
    sync: Literal["always", "never"] = "always" if "s" in flag[1:] else "never"
    mode_char = flag[0]
    try:
        if mode_char == "r":
            db = DB(path, read_only=True)
        elif mode_char == "w":
            if not _is_store(path):
                raise DatabaseNotFoundError(
                    errno.ENOENT, f"no database at {path}; use flag 'c' or 'n' to create one"
                )
            db = DB(path, sync=sync)
        else:
            refuse_dangling_link(path)  # (a mkdir under one said only "No such file or directory")
            created = _create(path, mode)
            try:
                db = DB(path, sync=sync)
            except KVError as exc:
                if created:
                    _undo_create(path)
                    _check_owner_access(path, mode, exc)
                raise
            # The mode applies to a database this call created only, as the stdlib's applies to a file
            # it creates: of processes creating one path at once, the one whose open wrote the store's
            # format file. (Testing whether the path held a store before this open, a second process
            # re-chmodded the files of a store the first was creating with another mode.)
            if took_creation(db):
                _apply_mode(path, mode)
                if not created:  # an existing empty directory has just become the database
                    _restrict_dir(path, mode)
            if mode_char == "n":
                load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
                from kv_backend.structures.layout import clear_own  # (not at import: flag "n"'s only)

                try:
                    clear_own(db)  # (a directory kvb serve also uses keeps its Redis keys, as clear() does)
                except BaseException:
                    db.close()
                    raise
    except (error, TransactionError):  # (the latter a mistake in the caller's code, as for a write)
        raise
    except StoreNotFoundError as exc:
        if mode_char != "r":  # a flag that creates, refused all the same (a symbolic link to nothing)
            raise DatabaseNotFoundError(errno.ENOENT, _message(exc)) from exc
        raise DatabaseNotFoundError(
            errno.ENOENT, f"no database at {path}; use flag 'c' or 'n' to create one"
        ) from exc
    except NotAStoreError as exc:
        raise error(exc.errno or errno.EINVAL, _message(exc)) from exc
    except KVError as exc:  # permissions, disk full...: still this module's error, as in every dbm module
        raise _os_error(getattr(exc, "errno", None), _message(exc)) from exc
    return Database(db, mode_char)
