"""Consistent, incremental, verified backups of a store to any fsspec URL.

Layout under the backup URL (see docs/backup.md)::

    URL/files/<file name>.<token>     one object per copied file (data or hint file)
    URL/backups/<backup name>.json    one manifest per complete backup, written last
    URL/pending/<token>.json          a journal of a backup in progress (removed when it completes)

A backup freezes the store's file list and the active file's length under the
write lock (:meth:`kv_backend.DB.snapshot_files`), so it is a point-in-time
copy while other processes keep writing. A file whose name, size and sha256
already appear in an earlier manifest (and whose object is still there) is not
sent again. The manifest is written after every object it names, so an
interrupted backup never looks complete. :func:`restore` re-checks every
sha256 and every record CRC in a temporary directory before it moves the
result into place. :func:`verify_backups` reads every object the manifests name
back, once, and checks its size and sha256, writing nothing.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import inspect
import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kv_backend.backup_damage import FileDamage, damage_of, refused_damage
from kv_backend.backup_stores import (
    BackupOfAnotherStoreError,
    refuse_another_store,
    refuse_to_choose,
    retention_groups,
)
from kv_backend.backup_uploads import abort_uploads, stale_uploads
from kv_backend.backup_urls import (
    _archive_refusal,
    _check_archive,
    _check_chain,
    _check_chain_options,
    _check_chain_parts,
    _check_first_protocol,
    _check_ignored_options,
    _check_protocol_options,
    _check_session_options,
    _check_url_typos,
    _file_url_with_authority,
    _is_archive,
    _protocols,
    _top_level_options,
    _unwrapped,
    cache_storage_options,
    in_process_url,
    is_s3fs,
    is_url_chain,
)
from kv_backend.errors import (
    BackupError,
    ConfigurationError,
    KVError,
    NotDurableError,
    StorageError,
    StoreNotFoundError,
)
from kv_backend.files import (
    FORMAT_FILE,
    check_new_store_target,
    enclosing_store,
    fsync_dir,
    missing_directories,
    refuse_dangling_link,
    refuse_filled_meanwhile,
    refuse_unusable_path,
    withheld_modes,
)
from kv_backend.owners import (
    NO_HARD_LINKS,
    give_new_directories,
    give_tree,
    nearest_directory,
    new_path_owner,
)
from kv_backend.sizes import binary_size as _size  # (as the progress bars print them)
from kv_backend.store_id import is_store_id, parse_store_id

if TYPE_CHECKING:
    from kv_backend.db import DB, SnapshotFile

__all__ = [
    "BackupError",
    "BackupExistsError",
    "BackupInfo",
    "BackupNotDurableError",
    "BackupOfAnotherStoreError",
    "BackupReport",
    "BackupTargetFullError",
    "DamagedObject",
    "RestoreNotDurableError",
    "RestoreReport",
    "VerifiedBackup",
    "VerifyReport",
    "absent_url_hint",
    "backup",
    "backup_store",
    "in_process_url",
    "is_url_chain",
    "list_backups",
    "misplaced_url_hint",
    "parse_storage_options",
    "prune_backups",
    "restore",
    "verify_backups",
]

MANIFEST_VERSION = 1
"""Version of the manifest format written by this module."""

FILES_DIR = "files"
MANIFEST_DIR = "backups"
PENDING_DIR = "pending"
MANIFEST_SUFFIX = ".json"

CHUNK_SIZE = 4 << 20
"""Bytes read, hashed and sent at a time."""

PENDING_GRACE = 24 * 3600.0
"""A journal updated within this many seconds marks a backup as still running:
:func:`prune_backups` then leaves unreferenced objects alone. Older journals
belong to backups that died; prune removes them."""

_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "oci", "r2"}


JOURNAL_INTERVAL = 2.0
"""Seconds between updates of a running backup's journal (what a retry after a kill may reuse)."""

JOURNAL_REFRESH = 600.0
"""A running backup rewrites its journal at least this often (seconds) while it reads files, even
when it sends none (hashing unchanged files of a large store): a journal left as old as
``PENDING_GRACE`` is taken for a dead backup's, and prune collected the objects it was counting on."""

# (\Z, not $, which also matches before a line break at the end: "nightly\n" was taken as a name)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_FILE_RE = re.compile(r"^\d{10}-\d{3}\.(data|hint)\Z")
_STORED_RE = re.compile(r"^files/\d{10}-\d{3}\.(data|hint)\.[0-9a-f]{8,64}\Z")

Progress = Callable[[int, int], None]


class InvalidBackupArgumentError(ConfigurationError, TypeError):
    """An argument of a backup function has the wrong type."""


class BackupExistsError(BackupError):
    """A backup of the name given to :func:`backup` already exists at the URL (a
    :class:`BackupError`): nothing was wrong with the destination, the name is taken."""


class BackupTargetFullError(BackupError):
    """:func:`backup` ran out of space at its destination (the disk, bucket quota or volume is full):
    the target's own condition, not a failure to reach it. The message says how to make room."""


class BackupNotDurableError(BackupError, NotDurableError):
    """:func:`backup` wrote the manifest of a complete backup to a local directory, but could not make
    it durable: the fsync of ``directory`` (the URL's ``backups/``, which names the manifest) failed
    (``reason``). The backup is there and restores, but a crash or power failure before the system
    writes that directory may lose it. ``report`` is the backup's report. The message says what to
    do."""

    report: BackupReport | None


class RestoreNotDurableError(BackupError, NotDurableError):
    """:func:`restore` moved the restored store into place, checked, but could not make that move
    durable: an fsync of ``directory`` (the one above the store, or one the restore created above
    it) failed (``reason``). The store is there and may be used, but a crash or power failure before
    the system writes that directory may undo the restore. ``report`` is the restore's report. The
    message says what to do."""

    report: RestoreReport | None


class _ExistsError(BackupError):
    """An object written with ``exclusive=True`` is already there (another writer was first)."""


class _NotDurable(BackupError):
    """An fsync of the local ``directory`` of a backup target failed (``reason``): what was just
    created or renamed in it (a directory, a journal, a manifest, objects' names) may not survive a
    crash or power failure. The backup turns it into an error that says what that means."""

    def __init__(self, directory: str, reason: str) -> None:
        super().__init__(f"cannot fsync the directory {directory}: {reason}")
        self.directory = directory
        self.reason = reason


# --------------------------------------------------------------------- reports


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


@dataclass
class BackupReport:
    """What :func:`backup` did: files sent, files already present, bytes sent."""

    name: str
    url: str
    files_copied: int = 0
    files_skipped: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0
    seconds: float = 0.0
    damaged_records: int = 0
    """Damaged spots in the copied data files, and entries of their hint files that point to no sound
    record of their key (as ``kvb check`` counts them), copied as they are; 0 for a backup of a store
    without damage."""
    damaged_hint_entries: int = 0
    """Of ``damaged_records``, the hint files' entries: alone, they do not keep the backup from being
    restored (see ``restorable``)."""
    restorable: bool = True
    """Whether a restore accepts the backup, by :func:`kv_backend.backup_damage.refused_damage`: False
    where any data file holds a damaged record (a restore checks every record); True where the only
    damage is hint entries (the restore leaves those hint files out, and replays their sound data files)."""

    @property
    def files(self) -> int:
        """Number of files the backup holds."""
        return self.files_copied + self.files_skipped

    @property
    def bytes(self) -> int:
        """Size of the backed-up store in bytes."""
        return self.bytes_copied + self.bytes_skipped

    def __str__(self) -> str:
        return (
            f"backup {self.name} complete at {self.url}: {self.files_copied} files copied "
            f"({_size(self.bytes_copied)}), {self.files_skipped} unchanged files skipped "
            f"({_size(self.bytes_skipped)}) in {self.seconds:.2f} s"
        )


@dataclass
class RestoreReport:
    """What :func:`restore` did: which backup, where to, how much, and that it checked out."""

    name: str
    url: str
    path: str
    files: int = 0
    bytes: int = 0
    records: int = 0
    seconds: float = 0.0
    hints_dropped: list[str] = field(default_factory=list)
    """Hint files of the backup left out of the restored store: some of their entries pointed to no
    sound record of their key (their data files are sound, and the store replays them instead)."""

    def __str__(self) -> str:
        dropped = (
            f"; left out {len(self.hints_dropped)} damaged hint file(s) ({', '.join(self.hints_dropped)}): "
            "their data files are replayed instead"
            if self.hints_dropped
            else ""
        )
        return (
            f"restored backup {self.name} from {self.url} to {self.path}: {self.files} files "
            f"({_size(self.bytes)}), {self.records} records verified "
            f"in {self.seconds:.2f} s{dropped}"
        )


@dataclass
class BackupInfo:
    """One backup under a URL, as listed by :func:`list_backups`.

    ``error`` is None for a usable backup, else why its manifest cannot be used.
    """

    name: str
    created: float | None = None
    files: int = 0
    bytes: int = 0
    source: str = ""
    error: str | None = None
    #: The id of the store backed up (None: a backup made before stores had ids, or of a store without one).
    store_id: str | None = None

    @property
    def ok(self) -> bool:
        """True if the manifest is intact (the objects are checked on restore)."""
        return self.error is None

    def __str__(self) -> str:
        if self.error is not None:
            # (a name with a line break, of a backup made before names were checked whole: one line)
            return f"{self.name if self.name.isprintable() else repr(self.name)}  DAMAGED: {self.error}"
        return (
            f"{self.name}  {_when(self.created)}  {self.files} files  {_size(self.bytes)}  from {self.source}"
        )


@dataclass
class DamagedObject:
    """An object under ``files/`` that does not hold what the manifests naming it say (see
    :func:`verify_backups`)."""

    stored_as: str
    """The object's path under the backup URL (``files/0000000001-000.data.TOKEN``)."""
    where: str
    """Its URL."""
    file: str
    """The store's file it holds (``0000000001-000.data``)."""
    size: int
    """Its size as the manifests say it."""
    problem: str
    """``missing``, ``sha256 mismatch`` (its size is right), or ``size N, expected M``."""
    found_size: int | None
    """The size found (None where the object is missing)."""
    backups: list[str] = field(default_factory=list)
    """The backups checked that name it, oldest first: it damages every one of them."""
    advice: str = ""
    """What to do about it."""

    def __str__(self) -> str:
        return (
            f"object {self.where} (file {self.file}): {self.problem}, in backup"
            f"{'s' if len(self.backups) != 1 else ''} {', '.join(self.backups)}"
            f"{'; ' + self.advice if self.advice else ''}"
        )


@dataclass
class VerifiedBackup:
    """One backup as :func:`verify_backups` found it."""

    info: BackupInfo
    """Its manifest, as :func:`list_backups` lists it."""
    status: str = "ok"
    """``ok``; ``damaged`` (its manifest is, see ``error``, or objects it names are, see ``damaged``);
    ``unrestorable`` (its objects are sound, but the store it was taken of held damaged records, which
    a restore refuses: see ``damaged_records``); or ``pruned`` (a prune removed it while it was
    verified: an object of it was found gone, and its manifest was gone too)."""
    damaged: list[DamagedObject] = field(default_factory=list)
    """The damaged objects it names."""
    damaged_records: list[FileDamage] = field(default_factory=list)
    """The damage its manifest counted in the store's data files, where a restore refuses it (empty
    where it restores, hint entries alone being left out by the restore)."""
    advice: str | None = None
    """What to do about ``damaged_records`` (None where there are none)."""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def error(self) -> str | None:
        """Why its manifest cannot be used, or None (see :class:`BackupInfo`)."""
        return self.info.error

    @property
    def ok(self) -> bool:
        """False where damage was found, or a restore refuses it (a backup pruned meanwhile is no damage)."""
        return self.status not in ("damaged", "unrestorable")

    def __str__(self) -> str:
        if self.error is not None:
            return str(self.info)  # (NAME  DAMAGED: reason, as kvb backups lists it)
        if self.status == "pruned":
            return f"{self.name}  pruned while it was verified (kvb backups --keep, prune_backups removed it)"
        if self.damaged:
            objects = ", ".join(f"object {d.stored_as} ({d.problem})" for d in self.damaged)
            return f"{self.name}  DAMAGED: {objects}"
        if self.damaged_records:
            return f"{self.name}  NOT RESTORABLE AS IS: {', '.join(map(str, self.damaged_records))}"
        return f"{self.name}  ok"


@dataclass
class VerifyReport:
    """What :func:`verify_backups` found: each backup checked, oldest first (damaged manifests last),
    and each damaged object with the backups that share it."""

    url: str
    backups: list[VerifiedBackup] = field(default_factory=list)
    damaged_objects: list[DamagedObject] = field(default_factory=list)
    objects: int = 0
    """Objects read (each once, however many backups share it)."""
    bytes: int = 0
    """Bytes read."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True where no damage was found: every manifest and every object they name is sound."""
        return all(b.ok for b in self.backups)

    def __str__(self) -> str:
        n = len(self.backups)
        text = (
            f"verified {n} backup{'s' if n != 1 else ''} at {self.url}: {self.objects} object"
            f"{'s' if self.objects != 1 else ''} ({_size(self.bytes)}) read in {self.seconds:.2f} s"
        )
        found = []
        if self.damaged_objects:
            k = len(self.damaged_objects)
            hit = len({b for d in self.damaged_objects for b in d.backups})
            found.append(
                f"{k} damaged object{'s' if k != 1 else ''} (in {hit} backup{'s' if hit != 1 else ''})"
            )
        manifests = sum(1 for b in self.backups if b.error is not None)
        if manifests:
            found.append(f"{manifests} damaged manifest{'s' if manifests != 1 else ''}")
        refused = sum(1 for b in self.backups if b.status == "unrestorable")
        if refused:
            found.append(
                f"{refused} backup{'s' if refused != 1 else ''} not restorable as is (damaged records)"
            )
        pruned = sum(1 for b in self.backups if b.status == "pruned")
        if pruned:
            found.append(f"{pruned} pruned meanwhile")
        if self.ok:
            found.insert(0, "all sound")
        return f"{text}; {', '.join(found)}"


# --------------------------------------------------------------------- storage


def _import_fsspec() -> Any:
    try:
        import fsspec.core
    except ImportError as exc:  # pragma: no cover - fsspec is a dependency of the backup extra
        raise BackupError(
            "backups need the fsspec package: pip install 'kv-backend[backup]' (or pip install fsspec; "
            "add s3fs, gcsfs or adlfs for cloud storage)"
        ) from exc
    return fsspec.core


@contextmanager
def _io(what: str) -> Iterator[None]:
    """Turn any storage failure into a BackupError that says what was being done."""
    try:
        yield
    except KVError:
        raise
    except FileNotFoundError as exc:
        raise BackupError(f"{what}: not found ({exc})") from exc
    except NotImplementedError as exc:
        # (http://, a read-only fsspec filesystem: "NotImplementedError: " said nothing more)
        detail = f": {exc}" if str(exc) else ""
        raise BackupError(
            f"{what}: the fsspec filesystem of this URL cannot do that (NotImplementedError{detail}); use "
            "a URL of storage that can (a directory, file://, s3://...)"
        ) from exc
    except OSError as exc:
        if exc.errno is None or not exc.strerror:  # (a remote filesystem's error: its name says what)
            raise BackupError(f"{what}: {type(exc).__name__}: {exc}") from exc
        # The operating system's reason, as kvb says it for a store: "[Errno 20] ...: 'PATH'" around
        # it would repeat the path that ``what`` names.
        raise BackupError(f"{what}: {exc.strerror}{whose(exc)}") from exc
    except Exception as exc:
        raise BackupError(f"{what}: {type(exc).__name__}: {exc}") from exc


def whose(exc: OSError) -> str:
    """What to do about a local file or directory this user may not use (backups root or another
    user made, private to them): which one refused (the nearest that this user can see) and whose it
    is, as kvb says of a store. Empty for other errors."""
    if not isinstance(exc, PermissionError) or not isinstance(exc.filename, str):
        return ""
    from kv_backend.files import user_name

    path = exc.filename
    while True:
        try:
            st = os.stat(path)
            break
        except OSError:  # (missing: the file being made; or a directory above refuses)
            parent = os.path.dirname(path)
            if parent == path:
                return ""
            path = parent
    owner = user_name(st.st_uid) or str(st.st_uid)
    me = user_name() or str(os.geteuid())
    return (
        f". User {me} may not use {path} ({owner}'s, mode {stat.S_IMODE(st.st_mode):04o}): run it as a "
        "user who may, or give this one access"
    )


def _url_to_fs(core: Any, url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """fsspec's ``url_to_fs``, where a cache the URL chains (``simplecache::``) that is given no
    ``cache_storage`` makes no temporary directory that outlives the call (see
    :func:`~kv_backend.backup_urls.cache_storage_options`)."""
    if cache_storage_options(url, storage_options, "") is None:
        return core.url_to_fs(url, **storage_options)  # type: ignore[no-any-return]
    spare = tempfile.mkdtemp(prefix="kvb-unused-cache-")
    try:
        options = cache_storage_options(url, storage_options, spare)
        return core.url_to_fs(url, **(options or storage_options))  # type: ignore[no-any-return]
    finally:
        shutil.rmtree(spare, ignore_errors=True)


class _Target:
    """The storage under a backup URL: an fsspec filesystem and the root path in it."""

    def __init__(self, url: object, storage_options: dict[str, Any], *, writes: bool = False) -> None:
        """``writes``: the caller writes or deletes there (a backup, a prune), which a read-only
        archive (``zip::``, ``tar::``) refuses."""
        if not isinstance(url, (str, os.PathLike)):
            raise InvalidBackupArgumentError(f"the backup URL must be a string, not {type(url).__name__}")
        given = url
        url = os.fspath(url)
        if not isinstance(url, str) or not url:
            raise ConfigurationError("the backup URL must be a non-empty string such as s3://bucket/prefix")
        refuse_unusable_path(url, "the backup URL", "give one such as s3://bucket/prefix")  # (a NUL in it)
        stripped = url.rstrip("/")
        # "memory://" or "file:///" (a filesystem's root) stays whole: "memory:" is no URL to pass back.
        self.url = stripped if stripped and not stripped.endswith(":") else url
        # A path object names a local directory, whatever its name; so does a path with "::" in it
        # (/data/a::b/bk), which fsspec would split into a chain of filesystems.
        plain = not isinstance(given, str) or ("::" in url and not is_url_chain(url))
        core = _import_fsspec()  # first: the checks below read fsspec's registry
        if not plain:
            _check_url_typos(url)
            url = _file_url_with_authority(url)
            _check_archive(url, storage_options, writes)
        _check_protocol_options(self.url, storage_options)
        if not plain:
            _check_first_protocol(url)
            _check_chain_parts(url)
            _check_chain_options(url, storage_options)
        try:
            if plain:
                from fsspec.registry import filesystem

                self.fs = filesystem("file", **storage_options)
                root = self.fs._strip_protocol(url)
            else:
                self.fs, root = _url_to_fs(core, url, storage_options)
        except ImportError as exc:
            # S3's driver has an extra of its own: name it, as for every other missing dependency.
            if url.partition("://")[0].lower() in ("s3", "s3a"):
                advice = "pip install 'kv-backend[s3]', which brings s3fs"
            else:
                advice = "install the fsspec driver for this protocol, e.g. s3fs for s3://"
            raise BackupError(f"cannot use {url}: {exc} ({advice})") from exc
        except Exception as exc:
            hint = ""
            if type(exc).__name__ == "ReadError" and "tar" in _protocols(url):  # (tarfile's)
                hint = (
                    " (fsspec knows a tar's compression by its name: .tar.gz, .tar.bz2, .tar.xz; for "
                    "another, give it: tar={'compression': 'gzip'})"
                )
            raise BackupError(f"cannot use {url}: {type(exc).__name__}: {exc}{hint}") from exc
        if not plain:
            _check_chain(self.fs, url)
        self.fs, root = _unwrapped(self.fs, root, self.url)
        _check_session_options(self.fs, self.url)
        _check_ignored_options(self.fs, self.url, _top_level_options(url, storage_options, plain))
        if writes and _is_archive(self.fs):  # (reached by a way _check_archive does not read)
            raise ConfigurationError(_archive_refusal(self.url, type(self.fs).__name__))
        self.root = root.rstrip("/") if root not in ("", "/") else root
        self.archive = _is_archive(self.fs)
        if self.archive and not self.root.strip("/"):
            with _io(f"cannot read {self.url}"):
                if [n.rstrip("/") for n in self.fs.ls(self.root, detail=False)] == ["."]:
                    # tar -C DIR -cf x.tar . names every member ./backups/...: DIR is "." in it.
                    self.root = "."
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.local = "file" in protocols or "local" in protocols
        # Object stores have no directories; creating one could create a bucket, which is not ours to do.
        self.object_store = bool(set(protocols) & _OBJECT_STORES)
        if self.object_store and "//" in self.root.lstrip("/"):
            # s3://bucket//prefix: the objects are written under keys with an empty segment, but
            # listed without it, so every backup there uploaded everything, then failed.
            scheme, _, rest = self.url.partition("://")
            fixed = f"{scheme}://{re.sub('/{2,}', '/', rest)}"
            raise ConfigurationError(
                f"the backup URL {self.url!r} has an empty path segment ('//'), where an object store "
                f"lists other objects than it writes: write {fixed}"
            )
        with _io(f"cannot reach {self.url}"):
            self.fs.invalidate_cache()
        self.file_mode, self.dir_mode = 0o666, 0o777  # (less the umask) what local files get
        self.owner: tuple[int, int] | None = None  # who local files and directories are given to
        self.granted = False  # whether they get file_mode and dir_mode whatever the umask (see withhold)
        self.create_only = None if self.local else _create_only(self.fs)

    def withhold(self, store_mode: int) -> None:
        """Give the local files and directories created from now on no permission that a store
        directory of mode ``store_mode`` withholds (0700: files 0600, directories 0700), whatever the
        umask: the copies hold what the store holds, which its directory kept from other users.
        The owner keeps reading and writing them (a read-only store directory, 0555, still gives
        a backup it can write). And no fewer than it grants its group, whatever the umask: a member
        of a group sharing a store (2770) who backed it up first under umask 022 made files/,
        backups/ and pending/ 2750, and every other member's backup there failed (permission
        denied). (Other users' bits follow the umask: a store in a 0777 directory does not make
        backups every user may change.)"""
        file_mode, dir_mode = withheld_modes(store_mode)
        self.file_mode &= file_mode
        self.dir_mode &= dir_mode
        self.granted = True

    def _grant(self, fd: int, mode: int) -> None:
        """Give the local file or directory this process just made at ``fd`` the owner's and group's
        bits of ``mode`` (``file_mode`` or ``dir_mode``) its umask withheld, once :meth:`withhold`
        set them."""
        mode &= 0o770
        if self.granted:
            current = stat.S_IMODE(os.fstat(fd).st_mode)
            if current & mode != mode:
                os.fchmod(fd, current | mode)

    def give_to_owner_of(self, store: str) -> None:
        """Give the local files and directories created from now on the owner and group of the URL's
        directory (or of the nearest directory above it that exists) if root runs this, that
        directory is another user's, and the store at ``store`` is that user's too: root backing up
        the site's store into the site's backup directory (sudo kvb backup, a root crontab) does
        what the site's own job does, whose next backup and prune must be able to write there (its
        files/, backups/ and pending/ directories, made root's, refused them). A target or a store
        of root's keeps root's backups: root chose it, and the copies may hold what only root reads."""
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return
        there = nearest_directory(self.root)
        try:
            owner = os.stat(os.path.join(store, FORMAT_FILE)).st_uid
        except OSError:
            return
        if there is not None and there.st_uid == owner != 0:
            self.owner = (there.st_uid, there.st_gid)

    def _create(self, path: str) -> Any:
        """A new local file at ``path`` (replacing one there), open for writing, of ``file_mode``."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, self.file_mode)
        try:
            self._grant(fd, self.file_mode)
        except OSError:
            os.close(fd)
            raise
        if self.owner is not None:
            try:
                os.fchown(fd, *self.owner)
            except OSError:  # (best effort, as the engine's: see give_to_owner_of)
                pass
        return os.fdopen(fd, "wb")

    def path(self, *parts: str) -> str:
        """The full path of ``parts`` (relative to the backup URL) in the filesystem."""
        return posixpath.join(self.root, *parts) if self.root else posixpath.join(*parts)

    def where(self, rel: str) -> str:
        """A readable URL of the object at ``rel``, for messages."""
        if self.archive and "::" in self.url:  # (zip::file:///x.zip/files/... names no file)
            return self.archive_url(self.path(rel))
        return f"{self.url}{rel}" if self.url.endswith("/") else f"{self.url}/{rel}"

    def archive_url(self, path: str) -> str:
        """The URL of ``path`` in the archive that the chained URL opens (``zip://PATH::file:///x.zip``)."""
        first, _, rest = self.url.partition("::")
        return f"{first.partition('://')[0]}://{path}::{rest}"

    def makedirs(self, rels: tuple[str, ...]) -> None:
        """Create the directories ``rels`` (relative to the URL) where missing, the URL's own and its
        missing parents too. On a local disk, then make every entry on their paths durable, whoever
        made it (see :func:`fsync_upwards`)."""
        if not self.local:
            for rel in rels:
                with _io(f"cannot create {self.where(rel)}"):
                    if not self.object_store:
                        try:
                            self.fs.makedirs(self.path(rel), exist_ok=True)
                        except (FileExistsError, NotImplementedError):
                            pass
            return
        made = []
        for rel in rels:
            with _io(f"cannot create {self.where(rel)}"):
                missing = missing_directories(self.path(rel))
                for d in reversed(missing):
                    try:
                        os.mkdir(d, self.dir_mode)
                    except FileExistsError:  # another backup made it meanwhile
                        continue
                    made.append(d)
                    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    try:
                        self._grant(fd, self.dir_mode)
                    finally:
                        os.close(fd)
                give_new_directories(missing, self.owner)
        # Not only those this backup made: another backup to the URL may have made one and failed, or
        # been killed, before its fsync. (None is removed again: another backup may be using it
        # already, and the next one makes its entry durable here.)
        with _io(f"cannot reach {self.url}"):
            failed = fsync_upwards(self.root, made)
        if failed is not None:
            raise _NotDurable(failed[0], failed[1]) from failed[2]

    def listdir(self, rel: str) -> dict[str, int]:
        """Names and sizes of the objects directly in directory ``rel`` (empty if missing)."""
        with _io(f"cannot list {self.where(rel)}"):
            if self.local:
                # Not fsspec's find(), which omits a directory it may not read: a backup a user
                # may not read would read as no backup at all, not as a permission error.
                try:
                    with os.scandir(self.path(rel)) as entries:
                        found = list(entries)
                except FileNotFoundError:
                    return {}
                sizes = {}
                for e in found:
                    try:
                        if e.is_file():
                            sizes[e.name] = e.stat().st_size
                    except FileNotFoundError:
                        # Gone since it was listed (a journal's or manifest's temporary copy, renamed
                        # into place): it is not there. Taken for a missing directory, the whole
                        # listing read as empty: prune saw no running backup and collected its objects.
                        continue
                return sizes
            # Listed afresh every time: s3fs, gcsfs and adlfs keep what they listed, and prune's
            # second look at the manifests saw none written since its first (it collected the
            # objects of a backup that completed meanwhile), a backup's last check saw objects that
            # a prune had deleted since its first look (it completed a backup that cannot restore).
            self.fs.invalidate_cache(self.path(rel))
            try:
                # ls(), what find(maxdepth=1) lists with, but raising: find() omits a directory it
                # cannot list (a server down, a permission error), which read as no backups at all.
                found = self.fs.ls(self.path(rel), detail=True)
            except FileNotFoundError:
                return {}
        out: dict[str, int] = {}
        for info in found:
            if info.get("type", "file") == "file":
                out[posixpath.basename(info["name"].rstrip("/"))] = int(info.get("size") or 0)
        return out

    def read_bytes(self, rel: str) -> bytes:
        with _io(f"cannot read {self.where(rel)}"):
            data: bytes = self.fs.cat_file(self.path(rel))
            return data

    def write_bytes(self, rel: str, data: bytes, *, exclusive: bool = False) -> None:
        """Write a small object whole: readers see the old state or all of ``data``.

        With ``exclusive``, an existing object raises :class:`_ExistsError` where the target can create
        an object only if none of its name exists (see :func:`_create_only`); elsewhere the object is
        written anyway, and the caller reads it back to notice a writer that came first.
        """
        with _io(f"cannot write {self.where(rel)}"):
            if self.local:
                full = self.path(rel)
                tmp = posixpath.join(posixpath.dirname(full), f".{posixpath.basename(full)}.{_token()}.tmp")
                try:
                    with self._create(tmp) as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    if exclusive:
                        try:
                            os.link(tmp, full)
                        except FileExistsError:
                            raise _ExistsError(f"{self.where(rel)} already exists") from None
                        except OSError as exc:
                            if exc.errno not in NO_HARD_LINKS:
                                raise
                            # FAT/exFAT drives, SMB and some FUSE mounts have no hard links: check,
                            # then rename (the caller reads the object back, as on object stores).
                            if os.path.lexists(full):
                                raise _ExistsError(f"{self.where(rel)} already exists") from None
                            os.replace(tmp, full)
                    else:
                        os.replace(tmp, full)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                _fsync_dir(posixpath.dirname(full))
            elif exclusive and self.create_only is not None:
                self._create_remote(self.create_only, rel, data)
            else:
                self.fs.pipe_file(self.path(rel), data)

    def _create_remote(self, create: Callable[[str, bytes], None], rel: str, data: bytes) -> None:
        """Write ``rel`` with ``create`` (see :func:`_create_only`); :class:`_ExistsError` if another
        object of that name is there."""
        try:
            create(self.path(rel), data)
            return
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP):  # the server refuses them (501)
                self._write_unconditionally(rel, data)
                return
            if not _exists_error(exc):
                raise
        try:
            there = self.fs.cat_file(self.path(rel))
        except FileNotFoundError:  # a server that answers every conditional write 412
            self._write_unconditionally(rel, data)
            return
        # A request retried after its answer was lost (s3fs retries on a dropped connection) finds
        # the object its first attempt wrote: that one is ours.
        if there != data:
            raise _ExistsError(f"{self.where(rel)} already exists") from None

    def _write_unconditionally(self, rel: str, data: bytes) -> None:
        """Write ``rel`` as on a target without conditional writes (the caller reads it back), from
        now on: this server refuses them, or answers them as if every object existed."""
        self.create_only = None
        self.fs.pipe_file(self.path(rel), data)

    def remove(self, rel: str) -> None:
        with _io(f"cannot delete {self.where(rel)}"):
            try:
                self.fs.rm_file(self.path(rel))
            except FileNotFoundError:
                pass
            except PermissionError as exc:
                if self.local:
                    # Deleting is the directory's to allow: the error named the file (a manifest of
                    # mode 0644), whose mode does not matter.
                    exc.filename = posixpath.dirname(self.path(rel))
                raise

    def open_write(self, rel: str) -> Any:
        """A binary file to stream an object into (see :func:`_upload`)."""
        full = self.path(rel)
        return self._create(full) if self.local else self.fs.open(full, "wb")

    def finish_write(self, f: Any) -> None:
        """Complete an object written through :meth:`open_write` (fsynced on local disks)."""
        if self.local:
            f.flush()
            os.fsync(f.fileno())
        f.close()

    @staticmethod
    def abandon_write(f: Any) -> None:
        """Give up an unfinished object: nothing refers to it, prune collects what remains."""
        try:
            discard = getattr(f, "discard", None)
            if discard is not None:
                discard()  # e.g. aborts an S3 multipart upload
                f.closed = True  # never flush the rest when the object is collected
            else:
                f.close()
        except Exception:
            pass

    def open_read(self, rel: str) -> Any:
        return self.fs.open(self.path(rel), "rb")


_IN_PROCESS_CREATE = threading.Lock()
"""Makes the check and the write of :func:`_create_only` one step for fsspec's memory filesystem,
which only the threads of this process share."""

S3FS_CREATE_ONLY = (2025, 7)
"""The s3fs release from which ``pipe_file(mode="create")`` sends a conditional write (If-None-Match)."""

BOTOCORE_CREATE_ONLY = (1, 35, 21)
"""The botocore release from which S3's PutObject takes IfNoneMatch."""


def _release(dist: str) -> tuple[int, ...]:
    """The leading numbers of the installed release of distribution ``dist`` ("2025.7.0" -> (2025, 7, 0),
    "1.36.0rc1" -> (1, 36, 0)); () if it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version(dist)
    except PackageNotFoundError:
        return ()
    out = []
    for part in text.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        out.append(int(digits.group()))
    return tuple(out)


def _create_only(fs: Any) -> Callable[[str, bytes], None] | None:
    """How to write an object on ``fs`` only if no object of its name exists (FileExistsError
    otherwise), in one step that a writer elsewhere cannot come between; None where ``fs`` cannot
    (local disks have their own way: see :meth:`_Target.write_bytes`).

    fsspec's memory filesystem can (its objects live in this process); S3 can through s3fs 2025.7
    or later with botocore 1.35.21 or later: a conditional write (``If-None-Match: *``) that the
    server refuses with 412 when the object exists (AWS S3, MinIO; a server that ignores the header
    overwrites, as without it)."""
    from fsspec.implementations.memory import MemoryFileSystem

    if isinstance(fs, MemoryFileSystem):

        def create_in_memory(path: str, data: bytes) -> None:
            with _IN_PROCESS_CREATE:
                if fs.exists(path):
                    raise FileExistsError(path)
                fs.pipe_file(path, data)

        return create_in_memory
    if not is_s3fs(fs):
        return None
    if _release("s3fs") < S3FS_CREATE_ONLY or _release("botocore") < BOTOCORE_CREATE_ONLY:
        return None

    def create_on_s3(path: str, data: bytes) -> None:
        fs.pipe_file(path, data, mode="create")

    return create_on_s3


def _exists_error(exc: OSError) -> bool:
    """Whether ``exc`` says the object to create exists: FileExistsError, or S3's 412
    PreconditionFailed that s3fs did not take for one (from a server that does not say which
    condition failed, s3fs raises an OSError of EINVAL)."""
    if isinstance(exc, FileExistsError):
        return True
    response = getattr(exc.__cause__, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "PreconditionFailed"


def _fsync_dir(path: str) -> None:
    """fsync the local directory ``path`` (what was created or renamed in it made durable), as the
    engine does; :class:`_NotDurable` if that fails."""
    try:
        fsync_dir(path)
    except OSError as exc:
        raise _NotDurable(path, f"{exc.strerror or exc}{whose(exc)}") from exc


def _token() -> str:
    return secrets.token_hex(6)


# -------------------------------------------------------------------- manifests


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _encode_manifest(body: dict[str, Any]) -> bytes:
    """The manifest's JSON with a sha256 of its own content, so any damage is noticed."""
    doc = dict(body)
    doc["checksum"] = hashlib.sha256(_canonical(body)).hexdigest()
    return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _check_entries(files: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(files, list):
        raise BackupError(f"{where}: 'files' is not a list")
    out = []
    seen = set()
    for item in files:
        if not isinstance(item, dict):
            raise BackupError(f"{where}: a file entry is not an object")
        name, size, sha, stored = (item.get(k) for k in ("name", "size", "sha256", "stored_as"))
        if not (isinstance(name, str) and _FILE_RE.match(name)) or name in seen:
            raise BackupError(f"{where}: bad or repeated file name {name!r}")
        if not (isinstance(size, int) and size >= 0):
            raise BackupError(f"{where}: bad size for {name}")
        if not _is_sha256(sha):
            raise BackupError(f"{where}: bad sha256 for {name}")
        if not (isinstance(stored, str) and _STORED_RE.match(stored)):
            raise BackupError(f"{where}: bad stored_as for {name}")
        seen.add(name)
        entry: dict[str, Any] = {"name": name, "size": size, "sha256": sha, "stored_as": stored}
        damaged, as_tail = item.get("damaged_records"), item.get("scanned_as_tail")
        # Optional (older backups lack them): the file's damaged records, as scanned for the backup.
        counted = isinstance(damaged, int) and not isinstance(damaged, bool) and damaged >= 0
        if counted and isinstance(as_tail, bool):
            entry["damaged_records"], entry["scanned_as_tail"] = damaged, as_tail
            hinted = item.get("damaged_hint_entries")  # (of them, its hint file's: older backups lack it)
            if (
                isinstance(hinted, int)
                and not isinstance(hinted, bool)
                and 0 <= hinted <= entry["damaged_records"]
            ):
                entry["damaged_hint_entries"] = hinted
            hint_sha = item.get("hint_sha256")  # (the hint file counted with it, if any)
            if _is_sha256(hint_sha):
                entry["hint_sha256"] = hint_sha
        out.append(entry)
    return out


def _decode_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Parse and verify a manifest; BackupError (naming ``where``) if it is damaged."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise BackupError(f"manifest {where} is damaged or incomplete (not valid JSON: {exc})") from exc
    if not isinstance(doc, dict):
        raise BackupError(f"manifest {where} is damaged (not a JSON object)")
    version = doc.get("kv_backend_backup")
    if isinstance(version, int) and version > MANIFEST_VERSION:
        raise BackupError(
            f"manifest {where} has format {version}, newer than this kv_backend understands "
            f"({MANIFEST_VERSION}); upgrade kv_backend to restore it"
        )
    checksum = doc.pop("checksum", None)
    if checksum != hashlib.sha256(_canonical(doc)).hexdigest():
        raise BackupError(f"manifest {where} is damaged (its checksum does not match its content)")
    if version != MANIFEST_VERSION:
        raise BackupError(f"manifest {where} is not a kv_backend backup manifest")
    doc["files"] = _check_entries(doc.get("files"), f"manifest {where}")
    mode = doc.get("store_mode")  # (optional: older backups lack it)
    if not (isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode <= 0o7777):
        doc.pop("store_mode", None)
    if not is_store_id(doc.get("store_id")):  # (optional: older backups, and stores without one, lack it)
        doc.pop("store_id", None)
    if not isinstance(doc.get("created"), (int, float)) or not isinstance(doc.get("store_format"), str):
        raise BackupError(f"manifest {where} is damaged (missing creation time or store format)")
    if not _is_time(doc["created"]):
        # (NaN, infinity, a bool, or out of any calendar: listing it raised a traceback, and
        # infinity was taken for the newest backup by a restore without a name)
        raise BackupError(f"manifest {where} is damaged (its creation time {doc['created']!r} is no time)")
    return doc


def _is_time(value: object) -> bool:
    """Whether ``value`` is a Unix time a calendar date can be given for (as a manifest's creation time)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        time.gmtime(value)
    except (OverflowError, OSError, ValueError):
        return False
    return value == value


def check_backup_name(name: object) -> str:
    """``name`` if it is a valid backup name; else a :class:`ConfigurationError` saying what one is."""
    if not isinstance(name, str):
        raise InvalidBackupArgumentError(f"a backup name must be a string, not {type(name).__name__}")
    if not _NAME_RE.match(name):
        raise ConfigurationError(
            f"bad backup name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def _check_progress(progress: object) -> Progress | None:
    if progress is not None and not callable(progress):
        raise InvalidBackupArgumentError(
            "progress must be a callable progress(done_bytes, total_bytes) or None"
        )
    return progress


def _manifest_rel(name: str) -> str:
    return f"{MANIFEST_DIR}/{name}{MANIFEST_SUFFIX}"


def _manifest_names(target: _Target) -> list[str]:
    """The names of the manifests under ``backups/``; also those of backups named with a line break
    at the end (which earlier versions took for a name), which :func:`_load_all` lists as damaged:
    left out, their objects would be collected by prune."""
    return sorted(
        n[: -len(MANIFEST_SUFFIX)]
        for n in target.listdir(MANIFEST_DIR)
        if n.endswith(MANIFEST_SUFFIX)
        and not n.startswith(".")
        and _NAME_RE.match(n[: -len(MANIFEST_SUFFIX)].removesuffix("\n"))
    )


def _load_all(target: _Target) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    """Every manifest under the URL as (name, manifest or None, error or None): see :func:`_load`."""
    return _load(target, _manifest_names(target))


def _load(target: _Target, names: Iterable[str]) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    """The manifests ``names`` (listed under the URL) as (name, manifest or None, error or None).

    A manifest that cannot be *read* raises (the storage is failing); one that
    reads but does not check out is returned with its error.
    """
    out: list[tuple[str, dict[str, Any] | None, str | None]] = []
    for name in names:
        rel = _manifest_rel(name)
        if not _NAME_RE.match(name):
            out.append(
                (
                    name,
                    None,
                    f"the name of manifest {target.where(rel)!r} ends in a line break, which no "
                    f"backup name may: rename it to {name.rstrip()}{MANIFEST_SUFFIX} to restore it by name",
                )
            )
            continue
        try:
            data = target.read_bytes(rel)
        except BackupError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                continue  # pruned while we listed
            raise
        try:
            out.append((name, _decode_manifest(data, target.where(rel)), None))
        except BackupError as exc:
            out.append((name, None, str(exc)))
    return out


def _info(name: str, doc: dict[str, Any] | None, error: str | None) -> BackupInfo:
    if doc is None:
        return BackupInfo(name=name, error=error)
    return BackupInfo(
        name=name,
        created=float(doc["created"]),
        files=len(doc["files"]),
        bytes=sum(f["size"] for f in doc["files"]),
        source=str(doc.get("source", "")),
        store_id=doc.get("store_id"),
    )


def _sort_key(info: BackupInfo) -> tuple[float, str]:
    return (info.created if info.created is not None else float("inf"), info.name)


# ----------------------------------------------------------------------- backup


def _default_name(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _hash_snapshot(snap: SnapshotFile, advance: Callable[[int], None]) -> str:
    h = hashlib.sha256()
    pos = 0
    while pos < snap.length:
        chunk = snap.read(pos, CHUNK_SIZE)
        if not chunk:
            raise BackupError(f"{snap.name} ended at {pos} bytes, before its snapshot length {snap.length}")
        h.update(chunk)
        pos += len(chunk)
        advance(len(chunk))
    return h.hexdigest()


def _upload(target: _Target, snap: SnapshotFile, rel: str, advance: Callable[[int], None]) -> str:
    """Stream one snapshot file to ``rel``, hashing it on the way; return its sha256.

    Storage failures become :class:`BackupError`; an exception raised by the
    progress callback (``advance``) propagates unchanged.
    """
    what = f"cannot copy {snap.name} to {target.where(rel)}"
    h = hashlib.sha256()
    with _io(what):
        out = target.open_write(rel)
    try:
        pos = 0
        while pos < snap.length:
            chunk = snap.read(pos, CHUNK_SIZE)
            if not chunk:
                raise BackupError(
                    f"{snap.name} ended at {pos} bytes, before its snapshot length {snap.length}"
                )
            h.update(chunk)
            with _io(what):
                out.write(chunk)
            pos += len(chunk)
            advance(len(chunk))
        with _io(what):
            target.finish_write(out)
    except BaseException:
        target.abandon_write(out)
        # Nothing refers to the unfinished object (a journal names only complete ones, which other
        # backups may take up): removed at once, it leaves no dead bytes on a target that was full.
        try:
            target.remove(rel)
        except BackupError:
            pass  # prune collects it
        raise
    return h.hexdigest()


def _known_copies(target: _Target, now: float) -> dict[tuple[str, int], dict[str, dict[str, Any]]]:
    """Objects already stored and vouched for: (name, size) -> {sha256: the entry listing it}.

    An object counts if a complete manifest (or the journal of a backup that
    is still running or died recently) lists it with that size and sha256 and
    it is still present with that size.
    """
    present = target.listdir(FILES_DIR)
    known: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}

    def add(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            if present.get(e["stored_as"][len(FILES_DIR) + 1 :]) == e["size"]:
                same = known.setdefault((e["name"], e["size"]), {})
                if "damaged_records" in e or e["sha256"] not in same:  # one with its damage count first
                    same[e["sha256"]] = e

    for _name, doc, _err in _load_all(target):
        if doc is not None:
            add(doc["files"])
    for journal in _journals(target):
        # Only journals well inside the grace period: prune may drop objects of older ones.
        if now - journal["updated"] < PENDING_GRACE / 2:
            add(journal["files"])
    return known


def _journals(target: _Target) -> list[dict[str, Any]]:
    """The readable journals of running (or dead) backups, each with its 'token'."""
    out = []
    for n in target.listdir(PENDING_DIR):
        if not n.endswith(".json") or n.startswith("."):
            continue
        try:
            doc = json.loads(target.read_bytes(f"{PENDING_DIR}/{n}").decode("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            doc["files"] = _check_entries(doc.get("files"), n)
            doc["updated"] = float(doc["updated"])
        except (BackupError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            # Not a journal kv_backend can read (another program's file, or one cut short):
            # it vouches for no object, and prune must not delete what it does not understand.
            continue
        doc["token"] = n[: -len(".json")]
        out.append(doc)
    return out


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, from /proc), or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data.rsplit(b")", 1)[1].split()[19])  # (after the name, which may hold anything)
    except (OSError, IndexError, ValueError):
        return None


def _this_process() -> dict[str, Any] | None:
    """This process as its journal names it (machine, boot, pid namespace, pid, start time), for a
    prune on the same machine to tell that a backup was killed; None where /proc does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    start = _start_time(os.getpid())
    if start is None:
        return None
    return {"host": socket.gethostname(), "boot": boot, "pidns": pidns, "pid": os.getpid(), "start": start}


def _dead(journal: dict[str, Any]) -> bool:
    """Whether the backup that wrote ``journal`` is known to be gone: it ran on this machine, since
    its last boot and in this pid namespace, and no process of its pid and start time is left (it
    was killed). Anything unknown (another machine or container, no /proc) counts as alive."""
    theirs, ours = journal.get("process"), _this_process()
    if not isinstance(theirs, dict) or ours is None:
        return False
    if any(theirs.get(k) != ours[k] for k in ("host", "boot", "pidns")):
        return False
    pid, start = theirs.get("pid"), theirs.get("start")
    if not (type(pid) is int and pid > 0 and type(start) is int):
        return False
    return _start_time(pid) != start


def parse_storage_options(pairs: list[str] | None, *targets: Callable[..., object]) -> dict[str, Any]:
    """Turn command-line ``KEY=VALUE`` pairs into fsspec storage options for ``targets``.

    A VALUE that parses as JSON is passed as JSON, anything else as a string;
    ``-`` in a KEY means ``_`` (``endpoint-url`` is ``endpoint_url``). A KEY
    named like one of a target's own parameters (``url``, ``name``...) would
    collide with the command's argument, so it is refused, as is a pair
    without ``=``: both with :class:`ConfigurationError`. So is ``self``,
    whatever the targets: the command may call a method (``db.backup``), whose
    ``self`` it would collide with, and no fsspec filesystem takes it (they
    receive the options as keyword arguments of their ``__init__(self, ...)``).
    """

    params = [p for target in targets for p in inspect.signature(target).parameters.values()]
    reserved = {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.replace("-", "_")
        if not sep or not key:
            raise ConfigurationError(f"--storage-option wants KEY=VALUE, got {pair!r}")
        if key == "self":
            raise ConfigurationError(
                "--storage-option self=... is not a storage option: fsspec filesystems take their "
                "options as keyword arguments of __init__(self, ...), so none can be named 'self'"
            )
        if key in reserved:
            raise ConfigurationError(
                f"--storage-option {key}=... is not a storage option: {key!r} is set by the command itself"
            )
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def backup(
    db: DB, url: str, name: str | None = None, progress: Progress | None = None, **storage_options: Any
) -> BackupReport:
    """Copy a point-in-time snapshot of ``db`` to ``url`` (any fsspec URL); return a report.

    Files already stored under ``url`` with the same name, size and sha256 are
    not sent again. ``name`` defaults to the UTC time (``20261125T120000.123Z``);
    an existing name is refused. ``progress(done_bytes, total_bytes)`` is
    called as files are read. Other processes may keep writing meanwhile.
    To back up a store this process has not opened, :func:`backup_store` spares the open.
    """
    from kv_backend.db import DB

    if not isinstance(db, DB):
        inner = getattr(db, "db", None)  # a Store (shelve) or a cache holds its DB as .db
        hint = (
            " (pass its .db)"
            if isinstance(inner, DB)
            else " (open it with DB(path, read_only=True), or give its path to backup_store)"
        )
        raise InvalidBackupArgumentError(f"db must be an open kv_backend.DB{hint}, not {type(db).__name__}")

    @contextmanager
    def snapshot() -> Iterator[list[SnapshotFile]]:
        files = db.snapshot_files()
        try:
            yield files
        finally:
            for f in files:
                f.close()

    return _backup(db.path, snapshot, url, name, progress, storage_options)


def backup_store(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    url: str,
    name: str | None = None,
    progress: Progress | None = None,
    **storage_options: Any,
) -> BackupReport:
    """Back up the store at ``path`` as :func:`backup` does, without opening it (``kvb backup``).

    The snapshot needs the store's files and the published end of its active file, taken under its
    write lock, not its key directory: a store never merged (no hint files) is not replayed first,
    so the backup starts at once however many keys it holds. Nothing is created: a path that holds
    no store raises :class:`~kv_backend.errors.StoreNotFoundError`, as a read-only open does. A store
    made before ids is given its id under that lock, where this user may write its format file, as a
    writable open would give it: the backup, and every later one, names it (see docs/backup.md).
    """
    from kv_backend.files import prepare_directory, store_directory
    from kv_backend.snapshot import store_snapshot

    store = store_directory(path)
    prepare_directory(store, create=False)
    # (The id is looked for under the lock alone: one read without it may be one another process is adding,
    # and takes back where it cannot make it durable; see store_id.add_store_id.)
    return _backup(store, lambda: store_snapshot(store, add_id=True), url, name, progress, storage_options)


def _backup(
    path: str,
    take_snapshot: Callable[[], AbstractContextManager[list[SnapshotFile]]],
    url: str,
    name: str | None,
    progress: Progress | None,
    storage_options: dict[str, Any],
) -> BackupReport:
    """The backup of the store at ``path``, whose files ``take_snapshot()`` freezes (closed at the end)."""
    from kv_backend.snapshot import Snapshot, read_format_file

    started = time.monotonic()
    progress = _check_progress(progress)
    if name is not None:
        check_backup_name(name)
    target = _Target(url, storage_options, writes=True)
    if target.local:
        _check_local_target(target, path)
    closing = ExitStack()
    snapshot = closing.enter_context(take_snapshot())
    try:
        # The directory's mode (and owner), read while the snapshot holds the store open, which keeps
        # it from being swapped out at its path (kv_restore --replace): that of the directory the
        # snapshot was taken from. Read before it, it was the old directory's where a swap came between.
        with _io(f"cannot read {path}"):
            store_mode = stat.S_IMODE(os.stat(path).st_mode)
        if target.local:
            target.withhold(store_mode)
            target.give_to_owner_of(path)
        created = time.time()
        # Read under the lock the snapshot was taken under, which a process giving the store an id holds
        # until the id is on disk: never an id a power failure may take back (see store_id.add_store_id).
        # A snapshot that is a plain list (a DB subclass's snapshot_files) has none: the file is read as
        # the snapshot reads it, under that lock taken again (a second at most) and the directory fsynced.
        store_format = snapshot.store_format if isinstance(snapshot, Snapshot) else read_format_file(path)
        store_id = parse_store_id(store_format)
        # Before anything is written there: a URL holding another store's backups is refused.
        manifests = _load_all(target)
        refuse_another_store(target.url, path, store_id, manifests)
        existing = {n for n, _doc, _err in manifests}
        base = None  # the default name (a timestamp), when the caller gave none: it may take a suffix
        if name is None:
            base = _default_name(created)
            name, n = base, 1
            while name in existing or _blocked_manifest(target, name):
                n += 1
                name = f"{base}-{n}"
        else:
            _refuse_taken_name(target, name, existing)  # (before anything is sent, not after)
        token = _token()
        journal_rel = f"{PENDING_DIR}/{token}.json"
        journal: dict[str, Any] = {
            "name": name,
            "started": created,
            "updated": created,
            "files": [],
            "process": _this_process(),  # (so that a prune here can tell when it was killed)
        }
        target.makedirs((FILES_DIR, MANIFEST_DIR, PENDING_DIR))
        report = BackupReport(name=name, url=target.url)
        not_durable: _NotDurable | None = None  # (the fsync of the manifest's directory, failed)
        try:
            # The journal goes first: while it is fresh, prune leaves unreferenced objects alone.
            # (In this try: one written but not fsynced is removed, not left to hold prune back.)
            target.write_bytes(journal_rel, json.dumps(journal).encode())
            known = _known_copies(target, created)
            total = sum(s.length for s in snapshot)
            done = reported = 0

            def write_journal() -> None:
                journal["updated"] = time.time()
                target.write_bytes(journal_rel, json.dumps(journal).encode())

            def advance(n: int) -> None:
                nonlocal done, reported
                done = min(done + n, total)
                if time.time() - journal["updated"] >= JOURNAL_REFRESH:
                    write_journal()  # still running, though it may send nothing for hours
                if progress is not None and done > reported:  # never backwards, even when re-reading
                    reported = done
                    progress(done, total)

            if progress is not None:
                progress(0, total)
            entries = []
            earlier: list[dict[str, Any] | None] = []  # (the entry of an earlier backup of each file)
            for snap in snapshot:
                mark = done
                candidates = known.get((snap.name, snap.length))
                if candidates:
                    sha = _hash_snapshot(snap, advance)
                    if sha in candidates:
                        entries.append(_entry(snap, sha, candidates[sha]["stored_as"]))
                        earlier.append(candidates[sha])
                        report.files_skipped += 1
                        report.bytes_skipped += snap.length
                        continue
                    done = mark  # the file changed: it is read again while sending it
                stored = f"{FILES_DIR}/{snap.name}.{token}"
                sha = _upload(target, snap, stored, advance)
                entries.append(_entry(snap, sha, stored))
                earlier.append(None)
                report.files_copied += 1
                report.bytes_copied += snap.length
                journal["files"].append(entries[-1])
                if time.time() - journal["updated"] >= JOURNAL_INTERVAL:
                    write_journal()
            _note_all_damage(snapshot, entries, earlier)
            report.damaged_records = sum(e.get("damaged_records", 0) for e in entries)
            report.damaged_hint_entries = sum(e.get("damaged_hint_entries", 0) for e in entries)
            report.restorable = not refused_damage(_counted_damage({"files": entries}))
            # Every object must be in place before the manifest says the backup is complete.
            if target.local and entries:
                # The objects are synced, but their names are entries of files/: a manifest that
                # survives a power loss must not name objects whose entries did not. Those of a
                # backup that copied nothing too: it may reuse the objects of one still running, or
                # killed, whose own fsync of files/ is yet to come, or never came.
                _fsync_dir(target.path(FILES_DIR))
            present = target.listdir(FILES_DIR)
            for e in entries:
                if present.get(e["stored_as"][len(FILES_DIR) + 1 :]) != e["size"]:
                    raise BackupError(
                        f"{target.where(e['stored_as'])} (copy of {e['name']}) is missing or has the wrong "
                        "size after the copy; was the backup pruned meanwhile? Run the backup again"
                    )
            # (Two stores' backups started at once both found none of the other's: the one whose manifest
            # came first goes on.)
            came = [n for n in _manifest_names(target) if n not in existing]
            refuse_another_store(target.url, path, store_id, _load(target, came), late=True)
            body = {
                "kv_backend_backup": MANIFEST_VERSION,
                "name": name,
                "created": created,
                "created_utc": _when(created),
                "store_format": store_format,
                "source": path,
                "store_mode": store_mode,
                **({"store_id": store_id} if store_id is not None else {}),
                "host": socket.gethostname(),
                "journal": token,  # (so that prune knows its journal for a completed backup's)
                "files": entries,
            }
            while True:
                if base is not None and not target.local:
                    # A backup of the same millisecond (another host's, on a schedule) may have
                    # finished meanwhile: an object store would let this manifest replace its own.
                    taken = set(_manifest_names(target))
                    while name in taken:
                        n += 1
                        name = f"{base}-{n}"
                body["name"] = report.name = name
                manifest = _encode_manifest(body)
                rel = _manifest_rel(name)
                try:
                    target.write_bytes(rel, manifest, exclusive=True)
                    break
                except _NotDurable as exc:
                    not_durable = exc  # (written: checked below as any manifest, then said)
                    break
                except _ExistsError as exc:
                    if base is None:
                        _refuse_blocked_manifest(target, name)  # (made while the backup ran)
                        raise BackupExistsError(
                            f"another backup named {name!r} completed at {target.url} meanwhile; choose "
                            "another name"
                        ) from exc
                    n += 1  # the caller chose no name: the next free one is as good
                    name = f"{base}-{n}"
            try:
                written = target.read_bytes(rel)
            except BackupError as exc:
                # (the manifest went out, but a connection lost now said only "cannot read", and a
                # run again under the same name said the name is taken)
                raise BackupError(
                    f"backup {name} was written to {target.url}, but reading its manifest back failed "
                    f"({exc}); kvb backups {target.url} lists it if it is intact, and then it is "
                    "complete (a restore checks every file); else back up again"
                ) from exc
            if written != manifest:
                raise BackupError(
                    f"{target.where(rel)} does not read back as written (another backup named {name!r} "
                    "finished at the same moment?); run the backup again under another name"
                )
        finally:
            try:
                target.remove(journal_rel)
            except BackupError:
                pass  # a stale journal only delays garbage collection by prune
        report.seconds = time.monotonic() - started
        if not_durable is not None:
            d = not_durable.directory
            raise BackupNotDurableError(
                f"backup {report.name} of {path} was written to {target.url}, but cannot make it durable: "
                f"{not_durable}. The backup is complete and restores, but a crash or power failure before "
                f"the system writes that directory may lose it: check the disk (the system log says why), "
                f"then run `sync {d}`; once it succeeds, the backup is durable",
                report,
                d,
                not_durable.reason,
            ) from not_durable
        return report
    except BackupNotDurableError:
        raise  # (in place and complete: its own message)
    except BackupError as exc:
        error: BackupError = exc
        if isinstance(exc, _NotDurable):
            # Before the manifest (the directories made, a journal, the objects' names in files/): a
            # backup that a crash could take away, or make name objects that are gone, is none.
            error = BackupError(f"cannot back up {path} to {target.url}: {exc}")
            if not _full(exc):
                raise BackupError(
                    f"{error}; nothing was backed up (a later prune deletes what was copied): check the disk "
                    "(the system log says why), then back up again"
                ) from exc
        if _full(exc):
            raise BackupTargetFullError(
                f"{error}; the backup target is full: free space there (kvb backups URL --keep N, or "
                "prune_backups, deletes older backups and what failed ones left), then back up again"
            ) from exc
        raise
    finally:
        closing.close()


def _check_local_target(target: _Target, path: str) -> None:
    """Refuse a local backup directory that the store at ``path`` could not be backed up into: a
    symbolic link to nothing, a directory inside the store itself or inside another store."""
    try:
        refuse_dangling_link(target.root, "the backup directory")  # (mkdir said "not found")
    except StoreNotFoundError as exc:
        raise BackupError(f"cannot back up to {target.url}: {exc.strerror}") from exc
    store = os.path.realpath(path)
    root = os.path.realpath(target.root)
    if os.path.commonpath([store, root]) == store:
        raise ConfigurationError(
            f"the backup URL {target.url} lies inside the store {path}; back up to another directory"
        )
    other = enclosing_store(root)
    if other is not None:
        # Another store's directory (two paths swapped or mistyped): its files/, backups/ and
        # pending/ would sit among that store's files, and go with it when it is replaced.
        raise ConfigurationError(
            f"the backup URL {target.url} lies inside the kv_backend store {other}; back up to a "
            "directory of its own"
        )


def check_backup_url(
    path: str | os.PathLike[str], url: str, name: str | None = None, **storage_options: Any
) -> None:
    """Refuse, as :func:`backup_store` would before it reads or writes anything, a backup of the store
    at ``path`` to ``url``: a URL or storage options it cannot use (options its filesystem would
    ignore, an archive it cannot write...), a bad ``name`` or one a backup there has, a local
    directory inside a store. It reads the manifests' names, and makes nothing. For a command that
    must refuse these before it says it started (``manage.py kv_backup``)."""
    if name is not None:
        check_backup_name(name)
    target = _Target(url, storage_options, writes=True)
    if target.local:
        _check_local_target(target, os.fspath(path))
    if name is not None:
        _refuse_taken_name(target, name, set(_manifest_names(target)))


def check_restore_url(url: str, name: str | None = None, **storage_options: Any) -> str:
    """Refuse, as :func:`restore` would before it makes anything, a restore from ``url``: a URL or
    storage options it cannot use, a bad ``name``, no such backup there (or no complete one, for the
    newest). It reads the manifests, and nothing else. For a command that must refuse these before
    it says it started (``manage.py kv_restore``).

    Returns the name of the backup a restore would restore (``name``, or the newest's): the restore
    that follows, given it, reads that backup's manifest by its name, and lists none of them again
    (a second listing is another request, paid for on S3, and may find a backup completed or
    pruned since the first)."""
    return _choose(_Target(url, storage_options), name)[0]


def _blocked_manifest(target: _Target, name: str) -> str:
    """What, other than a manifest, holds the path of backup ``name``'s manifest, where no backup of
    that name is listed (a directory made by hand or by another tool, a symbolic link to nothing), so
    that the manifest cannot be written there; "" where nothing does. An object store is never
    blocked: an object and a prefix of one name live side by side there."""
    rel = _manifest_rel(name)
    full = target.path(rel)
    with _io(f"cannot read {target.where(rel)}"):
        if target.local:
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                return ""
            if stat.S_ISDIR(st.st_mode) or os.path.isdir(full):
                return "a directory"
            if stat.S_ISLNK(st.st_mode) and not os.path.exists(full):
                return f"a symbolic link to nothing ({os.readlink(full)})"
            return "" if os.path.isfile(full) or not os.path.lexists(full) else "not a regular file"
        if not target.object_store and target.fs.isdir(full):
            return "a directory"
    return ""


def _refuse_taken_name(target: _Target, name: str, existing: set[str]) -> None:
    """Refuse the backup name ``name`` at ``target`` if a backup has it (``existing``: the names of
    the backups there) or the path of its manifest is taken (see :func:`_refuse_blocked_manifest`)."""
    if name in existing:
        raise BackupExistsError(
            f"a backup named {name!r} already exists at {target.url}; choose another name (or, to "
            f"reuse this one, delete its manifest {target.where(_manifest_rel(name))}: the next prune "
            "collects what only it used)"
        )
    _refuse_blocked_manifest(target, name)


def _refuse_blocked_manifest(target: _Target, name: str) -> None:
    """A :class:`BackupError` if :func:`_blocked_manifest` finds the path of ``name``'s manifest taken:
    the backup would send every file, then fail to publish it (taken for another backup of that
    name, which no listing showed)."""
    what = _blocked_manifest(target, name)
    if what:
        where = target.where(_manifest_rel(name))
        raise BackupError(
            f"cannot back up as {name!r} to {target.url}: {where}, where the manifest of a backup of that "
            f"name goes, is {what}, not a backup (kvb backups does not list it); move or delete it, or "
            "choose another name"
        )


def _full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says the storage is full (or over quota)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


def _note_all_damage(
    snapshot: list[SnapshotFile], entries: list[dict[str, Any]], earlier: list[dict[str, Any] | None]
) -> None:
    """:func:`_note_damage` of each data file of ``snapshot`` (the manifest ``entries`` of its files, and
    the entries of an earlier backup holding the same bytes, if any), with its hint file's."""
    copied = {snap.name: (snap, entry["sha256"]) for snap, entry in zip(snapshot, entries, strict=True)}
    for snap, entry, known in zip(snapshot, entries, earlier, strict=True):
        if snap.name.endswith(".data"):
            _note_damage(entry, snap, known, copied.get(snap.name[: -len(".data")] + ".hint"))


def _note_damage(
    entry: dict[str, Any],
    snap: SnapshotFile,
    known: dict[str, Any] | None,
    hint: tuple[SnapshotFile, str] | None,
) -> None:
    """Note in a data file's manifest ``entry`` its damaged spots, as a restore's store check finds
    them, those of the entries of its ``hint`` file (its snapshot and sha256) that point to no sound
    record of their key among them: from the entry of an earlier backup holding the same bytes
    (scanned the same way, with the same hint file), else by scanning the file, so that an
    incremental backup reads again only what it sends. The snapshot says whether the file may end in
    an unfinished write (``snap.tail``), which is no damage there: none does in a snapshot up to a
    published end (every file before the active one was closed first).

    A store's open checks the records of files without a hint file only, and a long-running process
    checked them when it opened the store: damage in a merged file, or that happened since, was
    found by the restore alone, on the day the backup was needed. Its hint file is read instead of
    its records when a store opens: an entry of it that points to the wrong record passes its
    checksum, and the backup reported no damage for a store a restore refused. Those entries are
    counted apart too (``damaged_hint_entries``): a restore leaves such a hint file out, and refuses
    damaged records only (:func:`kv_backend.backup_damage.refused_damage`, which a verify applies).
    """
    tail = snap.tail
    # (The hint file a restore's check reads with the data file: that of a closed one.)
    hint_sha = None if hint is None or tail else hint[1]
    # (A file a rotation that died did not finish closing is scanned anew: its end reads otherwise.
    # One noted by an earlier version, without the hint file it was checked with, is too.)
    if (
        known is not None
        and not snap.closing
        and known.get("scanned_as_tail") is tail
        and "damaged_records" in known
        and known.get("hint_sha256") == hint_sha
        and ("damaged_hint_entries" in known or known["damaged_records"] == 0)
    ):
        damaged, hinted = known["damaged_records"], known.get("damaged_hint_entries", 0)
    else:
        from kv_backend.check import snapshot_problems

        hints = None if hint is None or tail else (hint[0].name, hint[0].read, hint[0].length)
        read = snap.reader()  # (telling where zeros stand for bytes the file lost: skipped unread)
        problems = snapshot_problems(
            read, snap.length, snap.name, tail=tail, closing=snap.closing, hints=hints
        )
        damaged, hinted = len(problems), sum(1 for p in problems if p.hint)
    entry["damaged_records"], entry["scanned_as_tail"] = damaged, tail
    entry["damaged_hint_entries"] = hinted
    if hint_sha is not None:
        entry["hint_sha256"] = hint_sha


def _entry(snap: SnapshotFile, sha: str, stored: str) -> dict[str, Any]:
    return {"name": snap.name, "size": snap.length, "sha256": sha, "stored_as": stored}


# ---------------------------------------------------------------------- restore


def list_backups(url: str, **storage_options: Any) -> list[BackupInfo]:
    """Return the backups under ``url``, oldest first; damaged manifests are listed last with their error."""
    target = _Target(url, storage_options)
    infos = [_info(n, doc, err) for n, doc, err in _load_all(target)]
    infos.sort(key=_sort_key)
    return infos


def _choose(target: _Target, name: str | None) -> tuple[str, dict[str, Any]]:
    if name is not None:
        check_backup_name(name)
        rel = _manifest_rel(name)
        try:
            data = target.read_bytes(rel)
        except BackupError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                raise _no_such_backup(target, name) from None
            raise
        return name, _decode_manifest(data, target.where(rel))
    manifests = _load_all(target)
    if not manifests:
        raise BackupError(f"no complete backup at {target.url}{_why_no_manifest(target)}")
    damaged = [(n, err) for n, doc, err in manifests if doc is None]
    if damaged:
        n, err = damaged[0]
        raise BackupError(
            f"{err}; the newest backup cannot be determined while backup {n!r} is damaged: "
            "pass name= (kvb restore --name) to restore a specific backup"
        )
    refuse_to_choose(target.url, manifests)
    chosen = max(manifests, key=lambda m: (m[1]["created"], m[0]))  # type: ignore[index]
    return chosen[0], chosen[1]  # type: ignore[return-value]


def _no_such_backup(target: _Target, name: str) -> BackupError:
    """The error for a backup ``name`` that ``target`` does not hold: it names those it holds."""
    names = _manifest_names(target)
    have = f"; available: {', '.join(names)}" if names else "; there are no backups there"
    return BackupError(f"no backup named {name!r} at {target.url}{have}")


def _why_no_manifest(target: _Target) -> str:
    """Why ``target`` holds no manifest, for the message: the directory or bucket it names may not
    exist at all (mistyped in a hurry), which says more than an empty list of backups."""
    default = f" (no manifest under {MANIFEST_DIR}/)"
    if not (target.local or target.object_store):
        return _archive_hint(target) or default
    return _absent(target) or _misplaced(target) or default


def _absent(target: _Target) -> str:
    """Where the local directory or the bucket ``target`` names does not exist (a typo, a symbolic link
    to nothing), what to say after "no backups at URL", else ""."""
    try:
        if target.local:
            what, exists = f"the directory {target.root}", os.path.isdir(target.root)
        elif target.object_store:
            bucket = target.root.lstrip("/").split("/", 1)[0]
            what, exists = f"the bucket {bucket!r}", bool(target.fs.exists(bucket))
        else:
            return ""
    except Exception:  # only a better message was at stake
        return ""
    if exists:
        return ""
    return _dangling(target) or f": {what} does not exist (check the URL for a typo)"


def absent_url_hint(url: str, **storage_options: Any) -> str:
    """Where the local directory (or a symbolic link to nothing) or the bucket ``url`` names does not
    exist, what to say after "no backups at URL" (": the directory PATH does not exist (check the URL
    for a typo)", ": PATH is a symbolic link to ..."), else "": a prune there found nothing to prune
    because the backups are not where it looked, not because there are none."""
    return _absent(_Target(url, storage_options))


def _dangling(target: _Target) -> str:
    """Where ``target`` is a local directory that is, or lies under, a symbolic link to nothing (a volume
    not mounted), what to say after "no backups at URL", else "": not a typo, as kvb backup says."""
    if not target.local:
        return ""
    try:
        refuse_dangling_link(target.root, "the backup directory")
    except StoreNotFoundError as exc:
        return f": {exc.strerror}"
    return ""


def _archive_hint(target: _Target) -> str:
    """Where ``target`` is an archive (``zip::file:///x.zip``) that holds a backup URL's directories
    one level down (made by ``zip -r x.zip bk``), how to name that directory in the URL."""
    if not (target.archive and "::" in target.url):
        return ""
    try:
        tops = [
            i["name"].rstrip("/")
            for i in target.fs.ls(target.root, detail=True)
            if i.get("type") == "directory"
            and target.fs.exists(posixpath.join(i["name"].rstrip("/"), MANIFEST_DIR))
        ]
    except Exception:  # only a better message was at stake
        return ""
    if len(tops) != 1:
        return ""
    return f": the archive holds the backups under {tops[0]}/: give {target.archive_url(tops[0])}"


def _misplaced(target: _Target) -> str:
    """See :func:`misplaced_url_hint`."""
    if target.local and enclosing_store(target.root) == target.root:
        return f": {target.url} is a kv_backend store, not a backup URL: give the URL it was backed up to"
    above, _, last = target.url.rstrip("/").rpartition("/")
    if last not in (MANIFEST_DIR, FILES_DIR, PENDING_DIR) or not above or above.endswith((":", ":/", "://")):
        return ""
    parent = copy.copy(target)
    parent.url, parent.root = above, posixpath.dirname(target.root.rstrip("/")) or "/"
    try:
        if not _manifest_names(parent):
            return ""
    except BackupError:  # only a better message was at stake
        return ""
    return f": {target.url} is the {last}/ directory of the backup URL {above}: give {above}"


def misplaced_url_hint(url: str, **storage_options: Any) -> str:
    """Where ``url`` names the ``backups/``, ``files/`` or ``pending/`` directory of a backup URL with
    backups in it, what to say after "no backups at URL" (": URL is the backups/ directory of the
    backup URL ABOVE: give ABOVE"), else "". The manifests are what one finds when looking for the
    backups, and their directory, given as the URL, lists as empty. So does a store's directory,
    given for the URL it was backed up to (": URL is a kv_backend store, not a backup URL ..."), and a
    local directory that is a symbolic link to nothing (": PATH is a symbolic link to ..., which does not
    exist (a volume not mounted?) ...")."""
    target = _Target(url, storage_options)
    return _dangling(target) or _misplaced(target) or _archive_hint(target)


def _rotten_object_advice(target: _Target, where: str) -> str:
    """What to do about an object whose bytes changed in place (its size did not): the next backup of
    the same data file takes it as present, since it decides without reading objects, and shares it."""
    if target.archive:  # (read-only: the directory it was made from is where to repair it)
        return ""
    return (
        "; every backup that shares this object is damaged with it, and later backups of that data file "
        f"reuse it without reading it: delete {where}, then back up again (the next backup sends the file "
        "anew), or restore another backup (kvb backups lists them)"
    )


def _read_object(
    target: _Target,
    rel: str,
    size: int,
    reading: str,
    advance: Callable[[int], None],
    sink: Callable[[bytes], None] | None = None,
) -> tuple[int, str]:
    """Read the object at ``rel`` of ``target``, which its manifest says holds ``size`` bytes, a chunk
    at a time (memory bounded by :data:`CHUNK_SIZE`, whatever its size), hashing it: each chunk goes to
    ``sink`` (the restore's local copy), and its length to ``advance``. Returns the number of bytes
    read, which is more than ``size`` for a longer object (read no further), and the sha256 of the
    first ``size`` bytes at most. A read that fails raises a :class:`BackupError` saying ``reading``
    (whose cause is a :class:`FileNotFoundError` for a missing object). The restore and
    :func:`verify_backups` read objects so."""
    h = hashlib.sha256()
    got = 0
    with _io(reading):
        src = target.open_read(rel)
    try:
        while True:
            with _io(reading):
                chunk = src.read(CHUNK_SIZE)
            if not chunk:
                break
            got += len(chunk)
            if got > size:
                break
            h.update(chunk)
            if sink is not None:
                sink(chunk)
            advance(len(chunk))
    finally:
        with suppress(Exception):
            src.close()
    return got, h.hexdigest()


def _writer(out: Any, writing: str) -> Callable[[bytes], None]:
    """A sink for :func:`_read_object` that writes each chunk to the local file ``out`` (a failure as
    a :class:`BackupError` saying ``writing``)."""

    def write(chunk: bytes) -> None:
        with _io(writing):
            out.write(chunk)

    return write


def restore(
    url: str,
    path: str | os.PathLike[str],
    name: str | None = None,
    progress: Progress | None = None,
    **storage_options: Any,
) -> RestoreReport:
    """Restore backup ``name`` (default: the newest) from ``url`` into the new or empty directory ``path``.

    Every file's sha256 and every record's CRC are checked in a temporary
    directory next to ``path``; only a backup that checks out is moved into
    place. Any damage raises :class:`BackupError` naming the file, and leaves
    ``path`` as it was. ``progress(done_bytes, total_bytes)`` is called as files
    are downloaded; an exception it raises comes through unchanged. A store moved
    into place whose move cannot be made durable (a directory fsync fails) stays
    there, and :class:`RestoreNotDurableError` says so.
    """
    from kv_backend.check import check_kept
    from kv_backend.files import FORMAT_TEXT, LOCK_FILE

    started = time.monotonic()
    progress = _check_progress(progress)
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidBackupArgumentError(f"path must be a directory path, not {type(path).__name__}")
    refuse_unusable_path(
        os.fsdecode(path),
        "the path to restore into",
        "name a new or empty directory ('.' for the working one)",
    )
    given = dest = os.path.abspath(os.fspath(path))
    if os.path.islink(dest) and os.path.isdir(dest):
        # A link to an empty directory: the store goes into that directory (the link stays), built
        # next to it, since a directory cannot be renamed over a link, nor across file systems.
        dest = os.path.realpath(dest)
    check_new_store_target(dest, "restore", BackupError)
    target = _Target(url, storage_options)
    name, doc = _choose(target, name)
    # The first line, as a store's open compares it: a prefix test took "format 10" for format 1, and
    # the whole backup was downloaded before the store check refused it, naming a temporary directory.
    if doc["store_format"].partition("\n")[0].rstrip("\r") != FORMAT_TEXT.rstrip("\n"):
        raise BackupError(
            f"backup {name} holds a store of format {doc['store_format'].strip()!r}, which this kv_backend "
            "cannot open; upgrade kv_backend to restore it"
        )
    parent = os.path.dirname(dest)
    owner = new_path_owner(missing_directories(dest))  # (root restoring under a service's directory)
    # (made: created here; removed again if the restore fails)
    made, tmp, claim = claim_beside(dest, "restore", doc.get("store_mode"), owner, BackupError)
    report = RestoreReport(name=name, url=target.url, path=given)
    callback_error: list[BaseException] = []  # what the caller's progress raised: passed on as it is

    def report_progress(done: int, total: int) -> None:
        if progress is not None:
            try:
                progress(done, total)
            except BaseException as exc:
                callback_error.append(exc)
                raise

    try:
        total = sum(e["size"] for e in doc["files"])
        done = 0
        report_progress(0, total)

        def advance(n: int) -> None:
            nonlocal done
            done += n
            report_progress(min(done, total), total)

        for e in doc["files"]:
            where = target.where(e["stored_as"])
            local = os.path.join(tmp, e["name"])
            reading = f"cannot read {where} (file {e['name']} of backup {name})"
            writing = f"cannot write {local}"
            with _io(writing):
                out = open(local, "wb")  # noqa: SIM115 - closed below, errors wrapped
            try:
                got, digest = _read_object(
                    target, e["stored_as"], e["size"], reading, advance, _writer(out, writing)
                )
                with _io(writing):
                    out.flush()
                    os.fsync(out.fileno())
                    out.close()
            except BaseException:
                # Closed quietly: closing flushes what the file still buffers, and on a full disk
                # that failed again, with a bare OSError in place of the error that names the file.
                with suppress(OSError):
                    out.close()
                raise
            if got != e["size"]:
                raise BackupError(
                    f"file {e['name']} of backup {name} is damaged: {where} has "
                    f"{'more than ' if got > e['size'] else ''}{min(got, e['size'])} bytes, "
                    f"the manifest says {e['size']}"
                )
            if digest != e["sha256"]:
                raise BackupError(
                    f"file {e['name']} of backup {name} is damaged: the sha256 of {where} does not match "
                    f"the manifest{_rotten_object_advice(target, where)}"
                )
            report.files += 1
            report.bytes += got
        with (
            _late_step(dest, f"cannot write {os.path.join(tmp, FORMAT_FILE)}"),  # (a full disk: which file)
            open(os.path.join(tmp, FORMAT_FILE), "w", encoding="utf-8") as f,
        ):
            f.write(doc["store_format"])
            f.flush()
            os.fsync(f.fileno())
        # An empty lock file lets read-only processes open the restored store at once.
        with _late_step(dest, f"cannot write {os.path.join(tmp, LOCK_FILE)}"):
            os.close(os.open(os.path.join(tmp, LOCK_FILE), os.O_WRONLY | os.O_CREAT, 0o666))
        with _late_step(dest, f"cannot give the restored copy in {tmp} its STATE page"):
            _publish_restored(tmp, doc["files"])
        with _late_step(dest, f"cannot fsync the directory {tmp}"):  # (its files' names: durable first)
            fsync_dir(tmp)
        try:
            result = check_kept(tmp)
            if result.problems and not refused_damage(damage_of(result.problems)):
                # Only hint entries are wrong: the data files they index are sound. Without those hint
                # files the restored store replays them and reads every key (refused, the backup's data
                # was out of reach, the error's advice to remove the hint file not one to follow here).
                report.hints_dropped = sorted({p.hint for p in result.problems})
                for hint in report.hints_dropped:
                    with _late_step(dest, f"cannot remove the damaged hint file {os.path.join(tmp, hint)}"):
                        os.unlink(os.path.join(tmp, hint))
                with _late_step(dest, f"cannot fsync the directory {tmp}"):
                    fsync_dir(tmp)
                result = check_kept(tmp)
        except BackupError:
            raise  # (the hint file's, which says what failed)
        except KVError as exc:
            raise BackupError(f"backup {name} does not form a readable store: {exc}") from exc
        if not result.ok:
            p = result.problems[0]
            raise BackupError(
                f"file {os.path.basename(p.path)} of backup {name} is damaged at offset {p.offset}: {p.what} "
                f"({len(result.problems)} damaged spot(s) in all)"
            )
        report.records = result.records
        copy_id = parse_store_id(doc["store_format"])
        refuse_filled_meanwhile(dest, "restore", BackupError, copy_id)  # (a worker that started meanwhile)
        check_new_store_target(dest, "restore", BackupError)
        with _late_step(dest, f"cannot give the restored copy in {tmp} the permissions of {dest}"):
            keep_directory_access(dest, tmp, doc.get("store_mode"), owner)
        try:
            os.rename(tmp, dest)  # replaces an empty directory atomically
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                refuse_filled_meanwhile(dest, "restore", BackupError, copy_id)
            raise BackupError(
                f"cannot move the restored store into {dest}: {exc.strerror or exc}{whose(exc)}; "
                f"{_NOTHING_RESTORED}"
            ) from exc
        report.seconds = time.monotonic() - started
        # The rename, and the directories created for it (or the store goes with them), made durable
        # while the copy's directory is still claimed (see docs/protocol.md, "Opening").
        _durable_in_place(report, parent, made)
    except RestoreNotDurableError:
        raise  # (the store is in place: nothing to remove)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        if exc in callback_error:
            raise
        if _full(exc):
            reason: object = exc if isinstance(exc, KVError) else getattr(exc, "strerror", None) or exc
            if isinstance(exc, StorageError) and exc.advice:
                # The engine's (the copy's STATE page), whose advice ("nothing acknowledged was lost") is
                # a store's: the restore says its own.
                reason = (exc.strerror or "").removesuffix(exc.advice).rstrip(" .")
            raise BackupError(
                f"cannot restore into {dest}: {reason}; the disk of {parent} is full: free space there (the "
                "restore needs room for the whole store), then restore again"
            ) from exc
        if isinstance(exc, OSError) and not isinstance(exc, KVError):
            named = f" ({exc.filename})" if exc.filename is not None and exc.strerror else ""
            raise BackupError(
                f"cannot restore into {dest}: {exc.strerror or exc}{named}{whose(exc)}; {_NOTHING_RESTORED}"
            ) from exc
        if _pruned_meanwhile(exc, target, name):
            raise BackupError(
                f"{exc}; backup {name} was pruned while it was restored (kvb backups --keep, prune_backups): "
                "restore one of the backups kept (kvb backups lists them)"
            ) from exc
        if isinstance(exc, BackupError) and isinstance(exc.__cause__, FileNotFoundError):
            # (a missing object whose manifest is there: deleted by something other than prune)
            raise BackupError(
                f"{exc}; backup {name} is incomplete (something other than kv_backend deleted an object it "
                "needs) and cannot be restored: restore another backup (kvb backups lists them); nothing "
                "was restored"
            ) from exc
        raise
    finally:
        os.close(claim)
    return report


def _durable_in_place(report: RestoreReport, parent: str, made: list[str]) -> None:
    """fsync the directory ``parent`` the restored store was renamed into and those above it (see
    :func:`fsync_upwards`; ``made``, those the restore created); :class:`RestoreNotDurableError` if
    one fails, as the engine fails an operation whose directory fsync fails: the restore is not done
    until a crash cannot undo it. The store stays in place, checked, and perhaps opened already."""
    failed = fsync_upwards(parent, made)
    if failed is None:
        return
    d, reason, error = failed
    raise RestoreNotDurableError(
        f"restored backup {report.name} into {report.path}, but cannot make that durable: cannot fsync the "
        f"directory {d}: {reason}. The store is in place and checks out, but a crash or power failure "
        f"before the system writes that directory may undo the restore: check the disk (the system log "
        f"says why), then run `sync {d}`; once it succeeds, the restore is durable",
        report,
        d,
        reason,
    ) from error


def fsync_upwards(path: str, made: Iterable[str] = ()) -> tuple[str, str, OSError] | None:
    """fsync the local directory ``path`` and every directory above it on its filesystem (up to its
    mount point): the entries that keep ``path`` in place, whoever made them (a backup, restore or
    salvage beside this one may have made one, then failed or been killed before its fsync). Each is
    fsynced, whichever fails: the first that failed, the system's reason as a message says it (who
    may not use it, for a permission error) and the error; else None. A directory above ``path`` that this
    user may not open is passed by, unless one of ``made`` (those this process created) is in it:
    nothing a process of this user made is in it."""
    d = os.path.realpath(path)
    needed = {d, *(os.path.realpath(os.path.dirname(m)) for m in made)}
    top = os.stat(d).st_dev
    failed = None
    while True:
        try:
            fsync_dir(d)
        except OSError as exc:
            if d in needed or not isinstance(exc, PermissionError):
                failed = failed or (d, f"{exc.strerror or exc}{whose(exc)}", exc)
        parent = os.path.dirname(d)
        if parent == d or os.stat(parent).st_dev != top:
            return failed
        d = parent


#: What a restore that failed after its download says of what it left: nothing, and what to do.
_NOTHING_RESTORED = "nothing was restored (its temporary copy is removed): remedy that, then restore again"


@contextmanager
def _late_step(dest: str, what: str) -> Iterator[None]:
    """Turn an OSError of a restore's steps on its local copy after the download (``what``, naming
    the file) into a BackupError that says what to do, without the ``[Errno N]`` of an OSError's
    text: kvb and ``kv_restore`` print a project error's message as it is. A full disk is left to
    the restore's own message, which says where to free space."""
    try:
        yield
    except KVError:
        raise
    except OSError as exc:
        reason = f"{what}: {exc.strerror or exc}{whose(exc)}"
        if _full(exc):
            raise BackupError(reason) from exc
        raise BackupError(f"cannot restore into {dest}: {reason}; {_NOTHING_RESTORED}") from exc


def _publish_restored(store: str, entries: list[dict[str, Any]]) -> None:
    """Give the restored copy at ``store`` a ``STATE`` page that publishes all of its newest data file
    when the backup's snapshot held published records only (no data file was scanned as one that
    may end in an unfinished write): as in the store it was taken from, a damaged record at the end
    of a file is then damage, for the store check and every reader, not a write a crash tore, which
    the first writer would cut off (the key's damaged newest record then read as its older value)."""
    from kv_backend.files import STATE_FILE, data_name, list_data_files
    from kv_backend.record import FILE_HEADER_SIZE
    from kv_backend.state import SharedState

    fids = list_data_files(store)
    data = {data_name(fid) for fid in fids}
    if (
        not fids
        or fids[-1][1] != 0
        or any(e.get("scanned_as_tail") is not False for e in entries if e["name"] in data)
    ):
        return  # (a backup made before the manifest said, or of a store without a published end)
    end = os.path.getsize(os.path.join(store, data_name(fids[-1])))
    if end < FILE_HEADER_SIZE:
        return
    page = SharedState(os.path.join(store, STATE_FILE), writable=True)
    try:
        page.initialize(1, fids[-1][0], end)
    finally:
        page.close()


def _pruned_meanwhile(exc: BaseException, target: _Target, name: str) -> bool:
    """Whether ``exc`` is an object of backup ``name`` found missing, and its manifest is gone too:
    a prune removed the backup while it was restored (which said only "not found")."""
    if not (isinstance(exc, BackupError) and isinstance(exc.__cause__, FileNotFoundError)):
        return False
    try:
        return f"{name}{MANIFEST_SUFFIX}" not in target.listdir(MANIFEST_DIR)
    except BackupError:
        return False  # (only a better message was at stake)


# ----------------------------------------------------------------------- verify


def verify_backups(
    url: str, name: str | None = None, progress: Progress | None = None, **storage_options: Any
) -> VerifyReport:
    """Check backup ``name`` under ``url`` (default: every backup there) without restoring it: read
    every object its manifest names, and compare its size and sha256 with the manifest's.

    Each object is read once, however many backups share it, a chunk at a time (memory stays
    bounded, whatever its size), and nothing is written anywhere. The report lists every backup
    checked (``ok``, ``damaged``, or ``pruned`` where a prune removed it meanwhile), damaged
    manifests as :func:`list_backups` lists them, and each damaged object (missing, of the wrong size,
    or changed in place) with every backup that shares it and what to do. A backup ``name`` that is
    not there, and storage that cannot be read (other than a missing object), raise
    :class:`BackupError`. ``progress(done_bytes, total_bytes)`` is called as objects are read; an
    exception it raises comes through unchanged.
    """
    started = time.monotonic()
    progress = _check_progress(progress)
    target = _Target(url, storage_options)
    if name is not None:
        check_backup_name(name)
        manifests = _load(target, [name])
        if not manifests:
            raise _no_such_backup(target, name)
    else:
        manifests = _load_all(target)
    checked = sorted(((_info(n, doc, err), doc) for n, doc, err in manifests), key=lambda m: _sort_key(m[0]))
    report = VerifyReport(url=target.url, backups=[VerifiedBackup(info) for info, _doc in checked])
    # Every object, with the (backup, entry) pairs that name it, in the order of the backups: read once.
    uses: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for info, doc in checked:
        for e in doc["files"] if doc is not None else ():
            uses.setdefault(e["stored_as"], []).append((info.name, e))
    total = sum(max(e["size"] for _n, e in pairs) for pairs in uses.values())
    done = 0
    if progress is not None:
        progress(0, total)
    damage: dict[tuple[str, str, int], DamagedObject] = {}
    for rel, pairs in uses.items():
        size = max(e["size"] for _n, e in pairs)
        names = list(dict.fromkeys(n for n, _e in pairs))
        where = target.where(rel)
        reading = f"cannot read {where} (file {pairs[0][1]['name']} of backup{'s' if len(names) > 1 else ''} "
        reading += f"{', '.join(names)})"
        start = done

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        got: int | None
        try:
            got, digest = _read_object(target, rel, size, reading, advance)
        except BackupError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise
            got, digest = None, ""
        report.objects += int(got is not None)
        report.bytes += min(got or 0, size)
        found = str(got)
        if got is not None and got > size:  # (read no further: its size says by how much)
            found = f"more than {size}"
            with suppress(Exception):
                got = int(target.fs.size(target.path(rel)))
                found = str(got)
        for backup_name, e in pairs:
            if got is None:
                problem = "missing"
            elif got != e["size"]:
                problem = f"size {found}, expected {e['size']}"
            elif digest != e["sha256"]:  # (got == e["size"] <= size: the sha256 of all of it)
                problem = "sha256 mismatch"
            else:
                continue
            key = (rel, problem, e["size"])
            if key not in damage:
                damage[key] = DamagedObject(rel, where, e["name"], e["size"], problem, got)
            if backup_name not in damage[key].backups:
                damage[key].backups.append(backup_name)
        if done != start + size:  # (an object missing or short: the bar goes on to the next one)
            done = start + size
            if progress is not None:
                progress(done, total)
    if any(d.problem == "missing" for d in damage.values()):
        # A prune deletes manifests before the objects only they name: an object found missing whose
        # backup's manifest is gone too belongs to a backup pruned while it was verified, no damage.
        present = set(_manifest_names(target))
        pruned: set[str] = set()
        for key, d in list(damage.items()):
            if d.problem == "missing":
                pruned.update(n for n in d.backups if n not in present)
                d.backups = [n for n in d.backups if n in present]
                if not d.backups:
                    del damage[key]
        for b in report.backups:
            if b.name in pruned:
                b.status = "pruned"
    for d in damage.values():
        d.advice = _damaged_object_advice(target, d)
        for b in report.backups:
            if b.name in d.backups:
                b.damaged.append(d)
    report.damaged_objects = list(damage.values())
    for b, (_, doc) in zip(report.backups, checked, strict=True):
        if doc is not None:
            b.damaged_records = refused_damage(_counted_damage(doc))
            if b.damaged_records:
                b.advice = _damaged_records_advice(b.name, doc)
        if b.error is not None or b.damaged:
            b.status = "damaged"
        elif b.damaged_records and b.status != "pruned":
            b.status = "unrestorable"
    report.seconds = time.monotonic() - started
    return report


def _counted_damage(doc: dict[str, Any]) -> list[FileDamage]:
    """The damage a backup's manifest ``doc`` counted in each data file. A backup made before the
    count of a hint file's entries was kept apart has its whole count taken as damaged records: a
    restore refuses those, and its manifest cannot tell that some are not."""
    return [
        FileDamage(
            e["name"],
            e["damaged_records"] - e.get("damaged_hint_entries", 0),
            e.get("damaged_hint_entries", 0),
        )
        for e in doc["files"]
        if e.get("damaged_records")
    ]


def _damaged_records_advice(name: str, doc: dict[str, Any]) -> str:
    """What to do about backup ``name`` (manifest ``doc``) of a store that held damaged records."""
    source = shlex.quote(str(doc["source"])) if doc.get("source") else "STORE"
    host = f" on {doc['host']}" if isinstance(doc.get("host"), str) and doc["host"] else ""
    return (
        f"backup {name} is an exact copy of a store that held damaged records, and a restore, which checks "
        f"every record, refuses it (it has no option to accept them): kvb check {source}{host} lists them; "
        f"kvb salvage {source} NEW_PATH copies the readable keys into a new store: back that up, and "
        "restore that backup (or restore an older backup without damage, kvb backups lists them)"
    )


def _damaged_object_advice(target: _Target, damage: DamagedObject) -> str:
    """What to do about a damaged object found by :func:`verify_backups`, as a restore says it."""
    if target.archive:
        return (
            "the archive is read only: repair the backup URL it was made from (kvb backups URL --verify "
            "there), then archive it again, or restore another backup (kvb backups lists them)"
        )
    if damage.problem == "sha256 mismatch":
        return _rotten_object_advice(target, damage.where).removeprefix("; ")
    # (a backup takes an object as present only where it has the size its manifest says)
    found = "missing" if damage.problem == "missing" else "of the wrong size"
    return (
        f"the backups that name it cannot be restored; the next backup of that data file finds it {found} "
        "and sends the file anew: back up again, or restore another backup (kvb backups lists them)"
    )


def claim_beside(
    dest: str, kind: str, source_mode: int | None, owner: tuple[int, int] | None, error: type[Exception]
) -> tuple[list[str], str, int]:
    """Create the missing directories above ``dest`` (given to ``owner``) and the claimed temporary
    directory a restore (or a salvage: ``kind``) builds its store in beside it (see
    :func:`new_claimed_directory`); return the directories made (deepest first), that directory and its
    claim. A restore that fails removes the parents it made (:func:`_remove_empty`): where one
    removed a parent this one found there before its copy's directory was in it, it is made again.
    Raises ``error`` saying why (:func:`beside_failure`) if that cannot be done."""
    parent = os.path.dirname(dest)
    made: list[str] = []
    attempts = 0
    while True:
        attempts += 1
        missing = missing_directories(parent)
        made = sorted({*made, *missing}, key=len, reverse=True)  # (a chain: the deepest is the longest)
        try:
            os.makedirs(parent, exist_ok=True)
            give_new_directories(missing, owner)
            tmp, claim = new_claimed_directory(parent, os.path.basename(dest), kind, source_mode)
            return made, tmp, claim
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError) or attempts == _CLAIM_ATTEMPTS:
                raise error(beside_failure(dest, made, exc)) from exc


_CLAIM_ATTEMPTS = 5
"""How many times :func:`claim_beside` makes the directories above a store again that failed restores
removed meanwhile: each removes them once."""


def new_claimed_directory(
    parent: str, base: str, kind: str, source_mode: int | None = None
) -> tuple[str, int]:
    """Make the temporary directory ``parent/.BASE.KIND-TOKEN`` a restore (or a salvage) builds its
    store in, claimed (see :func:`claim_directory`) for as long as the descriptor returned is open,
    after removing those that runs killed midway left (:func:`remove_abandoned_copies`).

    Made with no more permission than :func:`keep_directory_access` gives it at the end, so that
    nobody reads the copy while it is built: 0700 where ``parent/BASE`` is an empty directory (whose
    mode it then takes), no permission the source's directory withholds where ``source_mode`` is
    known, else like any new directory (the umask applies)."""
    if os.path.isdir(os.path.join(parent, base)):
        mode = 0o700
    else:
        mode = 0o777 if source_mode is None else withheld_modes(source_mode)[1]
    remove_abandoned_copies(parent, base, kind)
    while True:
        tmp = os.path.join(parent, f".{base}.{kind}-{_token()}")
        os.mkdir(tmp, mode)
        claim = claim_directory(tmp)
        if claim is not None:
            return tmp, claim


def claim_directory(path: str) -> int | None:
    """Open the new directory ``path`` and take an exclusive ``flock`` on it for as long as this
    process keeps the descriptor returned (the kernel drops it when the process dies): a later
    restore (or salvage) removes a temporary directory only if it can take that lock. None if one
    cleaning up took it first (or removed it), and another name must be chosen."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None  # one cleaning up removed it before it could be claimed
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        pass  # a filesystem without directory locks: no restore can then tell it is abandoned
    try:
        if os.path.samestat(os.fstat(fd), os.lstat(path)):
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None


def remove_abandoned_copies(parent: str, base: str, kind: str = "restore") -> None:
    """Delete the temporary directories (``.BASE.KIND-TOKEN``) that a restore (or a salvage) into
    ``parent/base`` killed midway left: those whose lock (see :func:`claim_directory`) no process
    holds. One still running holds its lock, so its directory stays."""
    pattern = re.compile(rf"\.{re.escape(base)}\.{re.escape(kind)}-[0-9a-f]+")
    try:
        names = [n for n in os.listdir(parent) if pattern.fullmatch(n)]
    except OSError:
        return
    for name in names:
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone meanwhile, or no directory of ours (a symbolic link is left alone)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.lstat(path)):
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # still in use (or no lock to be had): left alone
        finally:
            os.close(fd)


def beside_failure(dest: str, made: list[str], exc: OSError) -> str:
    """The message of a restore or salvage into ``dest`` that could not create its directory beside
    ``dest`` (``exc``), after removing the parents of ``dest`` it created (``made``, deepest first)."""
    _remove_empty(made)
    above = os.path.dirname(made[-1]) if made else os.path.dirname(dest)  # the nearest one that exists
    if os.path.lexists(above) and not os.path.isdir(above):
        why = f"{above} is a file, not a directory"  # rather than "File exists" or "Not a directory"
    else:
        why = (exc.strerror or str(exc)) + whose(exc)
    return f"cannot create a directory next to {dest}: {why}"


def _remove_empty(directories: list[str]) -> None:
    """Remove ``directories`` (deepest first) where they are still empty: a failed restore leaves
    no trace of the parents it created, and never removes what something else put there."""
    for d in directories:
        try:
            os.rmdir(d)
        except OSError:
            return


def keep_directory_access(
    dest: str, tmp: str, source_mode: int | None = None, owner: tuple[int, int] | None = None
) -> None:
    """Give ``tmp`` the permission bits (and, where allowed, owner and group, also of the files in
    it) of the empty directory ``dest`` it is about to replace: a directory prepared as 0700, or for
    a service's group, must not come back as a world-readable directory of whoever ran the restore.

    The files get the read and write bits the directory grants (2770: 0660, 0750: 0640, 0700: 0600),
    whatever the umask of the restore: a store prepared for a group of service users came back
    with files only their owner could write (0644 under root's umask 022), and every other member
    of the group failed to open it. The engine then gives the files it adds no more than these.

    A ``dest`` that does not exist leaves ``tmp`` as made (the umask applies), unless ``source_mode``
    gives the mode of the store directory the copy was made from (salvage's source, a backup's
    store): then ``tmp`` and its files keep no permission that directory withholds, as a backup's
    files do; and ``tmp`` and its files get ``owner`` (uid, gid) if given (see
    :func:`kv_backend.owners.new_path_owner`)."""
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        if source_mode is not None:
            allowed = stat.S_IMODE(source_mode) | 0o700
            for name in os.listdir(tmp):
                path = os.path.join(tmp, name)
                os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & withheld_modes(source_mode)[0])
            os.chmod(tmp, stat.S_IMODE(os.stat(tmp).st_mode) & allowed)
        if owner is not None:
            try:
                give_tree(tmp, owner)
            except OSError:  # (best effort, as the engine's)
                pass
        return  # a new directory: made like any other (the umask applies)
    file_mode = withheld_modes(st.st_mode)[0]
    for name in os.listdir(tmp):
        os.chmod(os.path.join(tmp, name), file_mode)
    # And the store's files: a directory prepared for a service and restored by root held files only
    # root could write, and the service could not open the store (its LOCK file).
    for uid in (st.st_uid, -1):  # only root may give a directory to another user
        try:
            give_tree(tmp, (uid, st.st_gid))
        except OSError:
            continue
        break
    os.chmod(tmp, stat.S_IMODE(st.st_mode))


# ------------------------------------------------------------------------ prune


_TEMPORARY_RE = re.compile(r"^\..+\.[0-9a-f]+\.tmp\Z")


def _remove_stale_temporaries(target: _Target, now: float) -> None:
    """Delete the temporary copies of manifests and journals (local disks only) that a backup killed
    while writing one left behind, once they are ``PENDING_GRACE`` old (a live writer renames its
    copy within moments)."""
    if not target.local:
        return
    for rel in (MANIFEST_DIR, PENDING_DIR):
        with _io(f"cannot list {target.where(rel)}"):
            try:
                entries = list(os.scandir(target.path(rel)))
            except FileNotFoundError:
                continue
        for entry in entries:
            if not _TEMPORARY_RE.match(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                old = now - entry.stat(follow_symlinks=False).st_mtime >= PENDING_GRACE
            except FileNotFoundError:
                continue
            if old:
                target.remove(f"{rel}/{entry.name}")


def _completed(journal: dict[str, Any], finished: set[object]) -> bool:
    """Whether the backup that wrote ``journal`` completed: its manifest names the journal (in
    ``finished``, the journals the manifests name). Its journal is left only when removing it failed
    (a connection lost at that moment), and its manifest names every object it sent, so the journal
    holds nothing back. Taken for a running backup's, it kept prune from collecting anything for 24
    hours wherever the process that wrote it lived on (a server, a worker)."""
    return journal["token"] in finished


def prune_backups(url: str, keep: int, **storage_options: Any) -> list[str]:
    """Delete all but the newest ``keep`` backups under ``url`` and the objects only they used.

    Returns the names removed, oldest first. Damaged manifests are left alone
    (they are listed by :func:`list_backups`). While another backup to the same
    URL is running, or a damaged manifest is present, unreferenced objects are
    kept; a later prune removes them.
    """
    if not isinstance(keep, int) or isinstance(keep, bool):
        raise InvalidBackupArgumentError(f"keep must be an int, not {type(keep).__name__}")
    if keep < 0:
        raise ConfigurationError(f"keep must be >= 0, not {keep}")
    target = _Target(url, storage_options, writes=True)
    manifests = _load_all(target)
    valid = sorted(((doc["created"], n, doc) for n, doc, _err in manifests if doc is not None))
    # The newest ``keep`` of each store's (keep >= a store's count: none of its removed).
    doomed = sorted(d for group in retention_groups(valid) for d in group[: max(len(group) - keep, 0)])
    removed = []
    for _created, n, _doc in doomed:
        target.remove(_manifest_rel(n))
        removed.append(n)
    # Order matters (see docs/backup.md): list the objects (and S3's incomplete uploads of objects),
    # then the journals, then the manifests.
    # An object listed here was stored before the journals are read, so the backup that stored it
    # either still has a journal (then nothing is collected, or, if it was killed, not what that
    # journal names) or has written its manifest already.
    objects = target.listdir(FILES_DIR)
    uploads = stale_uploads(target.fs, target.root, FILES_DIR, _STORED_RE)  # (S3's incomplete ones)
    now = time.time()
    running = False
    referenced: set[str] = set()
    journals = _journals(target)
    current = _load_all(target)
    # (with those removed above: a backup whose manifest prune removed had completed too)
    finished = {doc.get("journal") for _n, doc, _err in manifests + current if doc is not None}
    for journal in journals:
        if now - journal["updated"] >= PENDING_GRACE or _completed(journal, finished):
            target.remove(f"{PENDING_DIR}/{journal['token']}.json")
        elif _dead(journal):
            # Killed: what it sent stays while a new backup may reuse it (see _known_copies), the
            # journal with it; other objects need not wait 24 hours for it.
            referenced.update(e["stored_as"] for e in journal["files"])
        else:
            running = True
    _remove_stale_temporaries(target, now)
    if running:
        return removed
    abort_uploads(target.fs, uploads)  # (what killed backups were sending in parts)
    for _n, doc, _err in current:
        if doc is None:
            # A damaged manifest (or one written by a newer kv_backend) may still name objects
            # that someone needs; without knowing which, collect none of them.
            return removed
        referenced.update(e["stored_as"] for e in doc["files"])
    for obj in objects:
        rel = f"{FILES_DIR}/{obj}"
        # Only objects a backup stores (<data or hint file>.<token>): the URL may hold other things.
        if rel not in referenced and _STORED_RE.match(rel):
            target.remove(rel)
    return removed
