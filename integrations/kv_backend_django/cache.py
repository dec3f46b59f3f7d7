"""A Django cache backend storing pickled values in a kv_backend store.

Configure it like any Django cache::

    CACHES = {"default": {
        "BACKEND": "kv_backend_django.cache.KVCache",
        "LOCATION": "/var/lib/mysite/cache",   # a directory, created if missing
        "TIMEOUT": 300,
        "OPTIONS": {"MAX_ENTRIES": 100_000, "CULL_FREQUENCY": 3, "sync": "never"},
    }}

Every process opens each LOCATION once (a module-level registry shared by
all aliases and threads), so ``close()``, which Django calls after every
request, costs nothing. ``add``, ``incr``/``decr``, ``get_or_set``, ``touch``
and ``incr_version`` are atomic across processes: they run under the store's
cross-process write lock.
"""

from __future__ import annotations

import decimal
import errno
import functools
import hashlib
import inspect
import logging
import math
import numbers
import os
import pickle
import random
import re
import threading
import time
import urllib.parse
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from kv_backend import DB
from kv_backend.db_common import auto_merge_threshold, check_tuning_options
from kv_backend.errors import (
    ConfigurationError,
    CorruptionError,
    DatabaseClosedError,
    NotAStoreError,
    StorageError,
)
from kv_backend.files import STATE_FILE, missing_directories, user_name
from kv_backend.owners import give_new_directories, new_path_owner
from kv_backend.record import MAX_KEY_SIZE

__all__ = [
    "ENGINE_OPTIONS",
    "KVCache",
    "KVCacheConfigurationError",
    "close_all",
    "close_store",
    "location_path",
    "open_store",
    "store_open_here",
]

#: OPTIONS passed through to :class:`kv_backend.DB` (everything else but
#: MAX_ENTRIES/CULL_FREQUENCY is refused, so that typos do not go unnoticed).
ENGINE_OPTIONS = ("sync", "max_file_size", "auto_merge")
_CACHE_OPTIONS = ("MAX_ENTRIES", "CULL_FREQUENCY")
# What DB uses for an engine option left out: an alias that spells out a default
# agrees with one that omits it.
_ENGINE_DEFAULTS = {name: inspect.signature(DB).parameters[name].default for name in ENGINE_OPTIONS}

_MISSING: Any = object()
_DAMAGED: Any = object()  # what a record failing its checksum reads as (see KVCache._drop_damaged)


def effective_engine_options(options: dict[str, Any]) -> dict[str, Any]:
    """The engine OPTIONS as they take effect: defaults filled in, ``sync`` as its fsync interval.

    Two aliases agree when these are equal: ``sync`` ``0`` and ``"always"`` (fsync
    every write) are one setting. Raises ConfigurationError for a value the engine refuses.
    """
    merged = {**_ENGINE_DEFAULTS, **{k: v for k, v in options.items() if k in ENGINE_OPTIONS}}
    merged["sync"] = check_tuning_options(**merged)
    merged["auto_merge"] = auto_merge_threshold(merged["auto_merge"])  # (0 and None: off)
    return merged


# The characters Django warns about (CacheKeyWarning) because memcached rejects them.
_MEMCACHE_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")
_HASHED_PREFIX = b"kvb-sha256:"
logger = logging.getLogger(__name__)


class KVCacheConfigurationError(ConfigurationError, ImproperlyConfigured):
    """The CACHES entry of a KVCache is not valid (both a KVError and ImproperlyConfigured)."""


class _KeyNotFound(Exception):
    """Raised inside an atomic update when the key is missing (turned into ValueError)."""


class _Undecodable(Exception):
    """Raised inside an atomic update when the stored value does not unpickle (a damaged entry)."""

    def __init__(self, exc: Exception, raw: bytes) -> None:
        super().__init__(exc)
        self.exc = exc
        self.raw = raw


# ---------------------------------------------------------------- registry

_stores: dict[str, tuple[DB, dict[str, Any]]] = {}
_stores_lock = threading.Lock()
#: ``(st_dev, st_ino)`` of the STATE file of each store of the registry as it was opened: a LOCATION
#: that holds another one since (deleted and made anew) is no longer that store (see KVCache.close).
_opened_as: weakref.WeakKeyDictionary[DB, tuple[int, int] | None] = weakref.WeakKeyDictionary()


def _state_ident(state_path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the STATE file ``state_path`` of a store; None if there is none."""
    try:
        st = os.stat(state_path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _reset_lock_after_fork() -> None:
    # Another thread may have held the lock at fork time; the child starts with a free one.
    global _stores_lock
    _stores_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def open_store(path: str, **options: Any) -> DB:
    """Return this process's shared :class:`~kv_backend.DB` for ``path``, opening it once.

    All aliases and threads using one directory share one DB (a forked child
    keeps using it: the engine reopens its locks after ``fork()``). Two aliases
    that ask for different engine options on one directory are a configuration
    error, since only one set of options can apply; an option left out counts
    as the engine's default for it. A directory reached through a symlink is
    the same directory: it is keyed by its real path.
    """
    path = os.path.realpath(path)
    entry = _stores.get(path)
    if entry is None or entry[0].closed:
        with _stores_lock:
            entry = _stores.get(path)
            if entry is None or entry[0].closed:
                create_private_directory(path)
                try:
                    db = DB(path, **options)
                except ConfigurationError as exc:
                    raise KVCacheConfigurationError(f"cache at {path}: {exc}") from exc
                except NotAStoreError as exc:
                    if not os.path.isdir(path):
                        raise  # a file where the directory belongs: the engine's OSError says so
                    raise KVCacheConfigurationError(
                        f"cache LOCATION {path} holds other files and is not a kv_backend store: "
                        "point LOCATION at a new or empty directory"
                    ) from exc
                except StorageError as exc:
                    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                        raise _permission_error(path, exc) from exc
                    raise
                entry = (db, dict(options))
                _stores[path] = entry
                _opened_as[db] = _state_ident(os.path.join(path, STATE_FILE))
    if effective_engine_options(entry[1]) != effective_engine_options(options):
        raise KVCacheConfigurationError(
            f"two caches use LOCATION {path} with different engine OPTIONS "
            f"({entry[1]!r} and {options!r}); give them the same sync/max_file_size/auto_merge "
            "or separate directories"
        )
    return entry[0]


def _permission_error(path: str, exc: StorageError) -> StorageError:
    """The engine's permission error opening a cache's store, with advice for a Django site.

    The engine's message ends "or open it with read_only=True", which a KVCache
    cannot be (every process that uses a cache writes to it). The errno and filename
    stay, so callers can still tell what happened.
    """
    if exc.filename is not None and exc.errno is not None:  # (the callers' errors have an errno)
        what = f"{exc.filename}: {os.strerror(exc.errno)}"
    else:
        what = str(exc)
    if exc.errno == errno.EROFS:
        advice = "point LOCATION at a directory on a writable filesystem"
    else:
        user = user_name() or str(os.geteuid())
        advice = (
            f"this process runs as user {user}, and every process that uses a cache writes to its store: "
            "it needs read and write permission on LOCATION and its files (and on the parent directory "
            "to create LOCATION). Run the site's workers, Celery and management commands as one user, "
            "or give them one group ('Processes of different users' in docs/engine.md)"
        )
    err = StorageError(exc.errno, f"the cache at {path} cannot open its store ({what}); {advice}")
    if exc.filename is not None:
        err.filename = exc.filename  # (set to None, str(err) would end in ": None")
    return err


def create_private_directory(path: str) -> None:
    """Create a missing LOCATION, and missing parents, readable by this user only (0o700).

    Cached values often hold sessions and personal data, so a new cache
    directory is private, as Django's file-based cache makes its own. An
    existing directory keeps its mode. Errors are left to the store's open,
    which reports them. Made by root (``sudo manage.py shell``, a root cron job
    using the cache) under a directory of the site's user, they are that
    user's, with the store in them (see ``kv_backend.owners.new_path_owner``):
    root's, 0700, the site's workers could not use the cache.
    """
    made = missing_directories(path)
    owner = new_path_owner(made)
    for directory in reversed(made):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass  # another process created it first
        except OSError:
            break
    give_new_directories(made, owner)


def close_all() -> None:
    """Close every store opened by this process (they reopen on next use)."""
    with _stores_lock:
        entries = list(_stores.values())
        _stores.clear()
    for db, _ in entries:
        db.close()


def close_store(path: str) -> None:
    """Close this process's store of the directory ``path``, if it is open (it reopens on next use)."""
    with _stores_lock:
        entry = _stores.pop(os.path.realpath(path), None)
    if entry is not None:
        entry[0].close()


def store_open_here(path: str) -> bool:
    """Whether a cache of this process has the store of the directory ``path`` open."""
    entry = _stores.get(os.path.realpath(path))
    return entry is not None and not entry[0].closed


def _close_stores_left_by_settings(*, setting: str, enter: bool, **kwargs: Any) -> None:
    """When a CACHES override ends, close the stores that no alias of the restored CACHES uses; when
    one begins or ends, those open with other engine OPTIONS than an alias of the CACHES now in
    effect gives their LOCATION.

    Tests that give a cache a temporary directory (``override_settings(CACHES=...)``, pytest-django's
    ``settings`` fixture, or CACHES changed in place with ``setting_changed`` sent, as Django's own
    file-based cache tests do) otherwise kept every store they opened open for the rest of the run,
    with five file descriptors each: "Too many open files" after a few hundred tests. Only the end
    of an override (``enter=False``) closes those no alias uses, so the stores of the outer settings
    stay open during it; a KVCache still held somewhere reopens its store on next use. A test that
    overrides the ``sync``, ``max_file_size`` or ``auto_merge`` of a cache on its LOCATION got
    KVCacheConfigurationError ("two caches use LOCATION ... with different engine OPTIONS") on every
    call, the store being still open with the outer settings' options (and after the override, the
    outer settings' cache got it): such a store is closed, and reopens with the options in effect.
    """
    if setting != "CACHES":
        return
    from django.conf import settings
    from django.utils.module_loading import import_string

    wanted: dict[str, list[dict[str, Any]]] = {}  # (the OPTIONS of each KVCache LOCATION)
    for config in settings.CACHES.values():
        try:
            cls = import_string(config.get("BACKEND", ""))
            if isinstance(cls, type) and issubclass(cls, KVCache):
                path = os.path.realpath(location_path(config.get("LOCATION")))
                wanted.setdefault(path, []).append(config.get("OPTIONS") or {})
        except (ImportError, AttributeError, ImproperlyConfigured):
            continue  # not a KVCache, or one the cache itself refuses when it is created
    with _stores_lock:
        doomed = [path for path, (_, opened) in _stores.items() if _unwanted(opened, wanted.get(path), enter)]
        entries = [_stores.pop(path) for path in doomed]
    for db, _ in entries:
        db.close()


def _unwanted(opened: dict[str, Any], wanted: list[Any] | None, enter: bool) -> bool:
    """Whether a store opened with the engine options ``opened`` is to be closed as CACHES changes,
    the KVCache aliases of the new CACHES giving its LOCATION the OPTIONS ``wanted`` (None: none does)
    (see :func:`_close_stores_left_by_settings`)."""
    if wanted is None:
        return not enter
    try:
        effective = effective_engine_options(opened)
        return any(not isinstance(o, dict) or effective_engine_options(o) != effective for o in wanted)
    except ConfigurationError:  # (OPTIONS the cache refuses: it opens no store with them either)
        return True


setting_changed.connect(_close_stores_left_by_settings)


# ------------------------------------------------------------------ backend

# What separates the servers of a memcached or Redis LOCATION: "host1:11211;host2:11211".
_LIST_SEPARATOR = re.compile(r"[;,]")
# "scheme://": a URL, such as the LOCATION of a Redis or memcached alias, or a file:// URL; and
# memcached's "host:port" and "unix:/path/to/socket".
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|[A-Za-z0-9.-]+:\d+(?:/|$)|unix:")


def location_path(location: Any) -> str:
    """The directory a KVCache LOCATION names, with ``~`` expanded; KVCacheConfigurationError if none.

    A URL (``"redis://..."`` copied from another backend, ``"file:///var/cache/x"``), or a
    memcached server (``"127.0.0.1:11211"``, ``"unix:/run/memcached.sock"``), would otherwise
    be a directory named like it under the working directory, so it is
    refused; so are whitespace around the path (``"/var/cache/site\\n"`` read from a file
    would be another directory than the one every other tool is given), a NUL character, a
    list of directories (``"/a;/b"``) and a path ending with ``,`` or ``;`` (unless a directory
    of that very name exists already). ``~`` and ``~user`` are expanded as a shell does:
    Django's file-based cache takes them literally, making a directory named ``~`` in each
    working directory (another store per process), which is never what the setting meant.
    """
    if isinstance(location, (list, tuple)) and location:
        # Django's memcached and Redis backends take a list of servers as LOCATION.
        raise _several_locations(location)
    if not location or not isinstance(location, (str, bytes, os.PathLike)):
        raise KVCacheConfigurationError(
            "kv_backend_django.cache.KVCache needs LOCATION: the directory that holds the cache "
            f"(it is created if missing), got {location!r}"
        )
    path: str | bytes = os.fspath(location)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if "\0" in path or path != path.strip():
        raise KVCacheConfigurationError(
            f"LOCATION of KVCache {path!r} "
            + ("holds a NUL character" if "\0" in path else "begins or ends with whitespace")
            + ", which no intended directory name does (a value read from a file or an environment "
            "variable with its newline?): give the directory's path alone"
        )
    parts = [part for part in (part.strip() for part in _LIST_SEPARATOR.split(path)) if part]
    if len(parts) > 1 and all(part.startswith(("/", "~")) for part in parts):
        # "/a;/b" or "/a,/b" (or "/a;/b;"): how memcached's and Redis's LOCATION list servers, and
        # one directory named "b" inside "/a;" (or "/a,") to the filesystem.
        raise _several_locations(parts)
    if (
        _LIST_SEPARATOR.fullmatch(path[-1])
        and not _URL.match(path)
        and not os.path.isdir(os.path.expanduser(path))
    ):
        # "/var/cache/site,": a list's separator, or a settings line's, left over.
        raise KVCacheConfigurationError(
            f"LOCATION of KVCache {path!r} ends with {path[-1]!r}, left over from a list or a line of "
            "settings (a KVCache keeps its cache in one directory): give the directory alone, "
            f"{path.rstrip(';,').rstrip()!r} (a directory whose name ends with {path[-1]!r} is used "
            "only if it exists already)"
        )
    if _URL.match(path):
        hint = (
            f"use the path itself, {urllib.parse.unquote(urllib.parse.urlsplit(path).path)!r}"
            if path[:7].lower() == "file://"
            else "it looks like the LOCATION of another cache backend"
        )
        raise KVCacheConfigurationError(
            f"LOCATION of KVCache must be a directory, not a URL or server ({path!r}): {hint}; a "
            "KVCache keeps its cache in a local directory such as '/var/cache/mysite'"
        )
    if path.startswith("~"):
        expanded = os.path.expanduser(path)
        if expanded.startswith("~"):
            raise KVCacheConfigurationError(
                f"LOCATION of KVCache {path!r} starts with '~', but this process has no such home "
                "directory to expand it to: use an absolute path"
            )
        path = expanded
    return path


def _several_locations(locations: list[Any] | tuple[Any, ...]) -> KVCacheConfigurationError:
    """The error for a LOCATION that lists directories, as memcached's and Redis's list servers."""
    first = locations[0]
    example = os.fspath(first) if isinstance(first, (str, os.PathLike)) else "/var/cache/mysite"
    if len(locations) == 1:
        return KVCacheConfigurationError(
            f"kv_backend_django.cache.KVCache needs LOCATION as one directory, not a "
            f"{type(locations).__name__} ({locations!r}): give the directory itself, {example!r}"
        )
    return KVCacheConfigurationError(
        f"kv_backend_django.cache.KVCache needs LOCATION as one directory, not {len(locations)} "
        f"({locations!r}) as a memcached or Redis LOCATION lists servers: a KVCache keeps its cache in "
        f"one directory, which every process of the machine shares; give one, such as {example!r}, and "
        "for several stores configure a cache alias for each directory"
    )


#: How often, at most, KVCache.close() (at the end of each request) looks whether LOCATION still holds
#: the store this process has open, in seconds.
_LOCATION_CHECK_INTERVAL = 1.0

_Method = TypeVar("_Method", bound=Callable[..., Any])
_REOPEN_TRIES = 3


def _reopening(method: _Method) -> _Method:
    """Run a cache method again, on the store reopened, if the store was closed under it (up to
    _REOPEN_TRIES times in all: a store reopened may be closed again before the call is done).

    ``close_all()`` (a shutdown hook, a test) and ``close_store()`` (``kv_restore``) close stores of
    the process, which reopen on next use; a call in flight in another thread meanwhile failed with
    DatabaseClosedError. The engine raises it only for a call that wrote nothing (a write that
    took effect returns), so running the method again changes nothing twice.
    """

    @functools.wraps(method)
    def run(self: KVCache, *args: Any, **kwargs: Any) -> Any:
        try:  # (the common case first: nothing more than a try on the way)
            return method(self, *args, **kwargs)
        except DatabaseClosedError:
            if not self._closed_under_it():
                raise
        for _ in range(_REOPEN_TRIES - 2):
            try:
                return method(self, *args, **kwargs)
            except DatabaseClosedError:
                if not self._closed_under_it():
                    raise
        return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


def _left_by_sets(
    stored: list[bytes], batch: list[bytes], max_entries: int, frequency: int
) -> tuple[dict[bytes, None], OrderedDict[bytes, None]]:
    """``(stored entries left, batch keys left)`` once the keys ``batch`` are ``set`` one by one,
    in order, into a cache holding the entries ``stored``, as Django's backends do.

    Each ``set`` that finds ``max_entries`` entries or more first culls ``entries // frequency`` of
    them (all of them with ``frequency`` 0), then stores its key (a key stored already takes no new
    room). The culled entries are those stored before the batch, in random order, then the batch's
    keys set earliest: LocMemCache's least recently used first; FileBasedCache picks at random
    among all, which leaves as many. O(entries + batch), whatever the number of rounds.
    """
    random.shuffle(stored)
    old = dict.fromkeys(stored)  # (popitem() takes the last: a random one)
    new: OrderedDict[bytes, None] = OrderedDict()  # (popitem(last=False): the earliest set)
    for k in batch:
        count = len(old) + len(new)
        if count >= max_entries:
            doomed = count if frequency == 0 else count // frequency
            if doomed >= count:
                old.clear()
                new.clear()
            else:
                from_old = min(doomed, len(old))
                for _ in range(from_old):
                    old.popitem()
                for _ in range(doomed - from_old):  # (fewer than len(new): doomed < count)
                    new.popitem(last=False)
        old.pop(k, None)
        new[k] = None
        new.move_to_end(k)  # (set again: now the most recently used)
    return old, new


_OPTION_NAMES = {name.lower(): name for name in _CACHE_OPTIONS + ENGINE_OPTIONS}


def _spelled(key: Any) -> str | None:
    """The OPTIONS name that ``key`` spells in other letter case ("SYNC": "sync"), or None."""
    return _OPTION_NAMES.get(key.lower()) if isinstance(key, str) else None


def _setting_name(params: dict[Any, Any], name: str) -> str:
    """How the CACHES entry ``params`` gives the cache option ``name``: ``max_entries`` beside OPTIONS
    (which Django reads first) or ``OPTIONS MAX_ENTRIES``."""
    return name.lower() if name.lower() in params else f"OPTIONS {name}"


def _check_culling(path: str, params: dict[Any, Any], max_entries: int, cull_frequency: int) -> None:
    """KVCacheConfigurationError for MAX_ENTRIES and CULL_FREQUENCY with which culling cannot work."""
    if max_entries < 1:
        # Django takes it and culls before every write: the cache keeps 3 entries or so (sessions
        # logged out at once), each write scanning the store. 0 or -1 often means "no limit" elsewhere.
        raise KVCacheConfigurationError(
            f"{_setting_name(params, 'MAX_ENTRIES')} of KVCache at {path} is {max_entries}: the cache would "
            "be culled before every write and keep almost nothing; give the number of entries to keep (1 or "
            "more; there is no 'unlimited': use a large number such as 1_000_000)"
        )
    frequency = _setting_name(params, "CULL_FREQUENCY")
    if cull_frequency < 0:
        raise KVCacheConfigurationError(
            f"{frequency} of KVCache at {path} is {cull_frequency}: use N > 0 "
            "(culling removes 1/N of the entries) or 0 (culling empties the cache)"
        )
    given = "cull_frequency" in params or "CULL_FREQUENCY" in (params.get("OPTIONS") or {})
    if cull_frequency > max_entries and given:
        # A cull of MAX_ENTRIES entries removed MAX_ENTRIES // N = 0 of them, so the cache outgrew
        # MAX_ENTRIES up to N entries, every write scanning them all under the store's lock. (The
        # default 3 with a MAX_ENTRIES of 1 or 2 only lets a tiny cache hold 3 entries.)
        raise KVCacheConfigurationError(
            f"{frequency} of KVCache at {path} is {cull_frequency}, more than MAX_ENTRIES ({max_entries}): a "
            f"cache full at {max_entries} entries would cull {max_entries} // {cull_frequency} = 0 of them, "
            "and grow on, every write scanning all of its entries. CULL_FREQUENCY N removes 1/N of the "
            "entries when the cache is full (it is not how often): use a small N such as 3 (the default), "
            "or 0 to empty the cache"
        )


#: The keys of a CACHES entry that Django reads for a KVCache (BACKEND and LOCATION it takes out
#: before it creates the cache; called directly, a KVCache may be given them).
_ENTRY_KEYS = ("BACKEND", "LOCATION", "TIMEOUT", "OPTIONS", "KEY_PREFIX", "VERSION", "KEY_FUNCTION")
_ENTRY_KEYS_BESIDE = ("timeout", "max_entries", "cull_frequency")


def _ignored_keys(params: dict[Any, Any]) -> list[Any]:
    """The keys of a CACHES entry that Django does not read for a KVCache."""
    return [key for key in params if key not in _ENTRY_KEYS and key not in _ENTRY_KEYS_BESIDE]


def unknown_entry_keys(params: dict[Any, Any]) -> list[Any]:
    """The keys of a CACHES entry that Django does not read for a KVCache and that are no cache option
    given beside OPTIONS (those :func:`_check_entry_keys` refuses): a typo (``"OPTION"``), another
    backend's setting (``"SHARDS"``), a key of the site's own; ``manage.py check`` warns of them (W005)."""
    return [key for key in _ignored_keys(params) if not _spelled(key)]


def _check_entry_keys(location: Any, params: dict[Any, Any]) -> None:
    """KVCacheConfigurationError for a cache option given beside OPTIONS, where Django does not read it.

    Django ignores it: "MAX_ENTRIES": 100_000 given beside OPTIONS instead of in it left the cache
    culling at 300 entries (cached sessions logged out), "sync": "always" never fsynced. Other keys
    Django ignores (a typo, another backend's setting) are left to the system check W005, which warns
    of them: a harmless extra key must not stop a site that ran with it.
    """
    for key in _ignored_keys(params):
        name = _spelled(key)
        if name:
            raise KVCacheConfigurationError(
                f"{key!r} of KVCache at {location!r} is given beside OPTIONS, where Django does not read it: "
                f"put it in OPTIONS, as {{'OPTIONS': {{{name!r}: {params[key]!r}}}}}"
            )


class KVCache(BaseCache):
    """Django cache backend on a kv_backend store; LOCATION is the store's directory."""

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        # Django's BaseCache calls OPTIONS.get(): anything but a dict was an AttributeError.
        if params.get("OPTIONS") is None:
            params = {**params, "OPTIONS": {}}  # "OPTIONS": None is no options
        elif not isinstance(params["OPTIONS"], dict):
            raise KVCacheConfigurationError(
                f"OPTIONS of KVCache at {location!r} must be a dict such as {{'MAX_ENTRIES': 10000}}, "
                f"not {type(params['OPTIONS']).__name__} {params['OPTIONS']!r}"
            )
        _check_entry_keys(location, params)
        # Django's BaseCache also reads "timeout", "max_entries" and "cull_frequency" beside OPTIONS
        # (before TIMEOUT and OPTIONS); they are checked where Django reads them.
        timeout_key = "timeout" if "timeout" in params else "TIMEOUT"
        timeout = params.get(timeout_key)
        fraction: float | None = None  # a TIMEOUT that is no whole number of seconds, kept as given
        if isinstance(timeout, float) and timeout == math.inf:
            params = {**params, timeout_key: None}  # forever, as for a call's timeout (int() refuses inf)
        elif timeout is not None:
            # Django reads TIMEOUT with int() and silently uses 300 when that fails ("1h", "none").
            try:
                whole = int(timeout)
            except (TypeError, ValueError, OverflowError):
                raise KVCacheConfigurationError(
                    f"{timeout_key} of KVCache at {location!r} must be a number of seconds or None (never "
                    f"expire), not {timeout!r}"
                ) from None
            if isinstance(timeout, (numbers.Real, decimal.Decimal)) and timeout != whole:
                # Django's int() cut 0.5 to 0 ("don't cache": nothing was stored) and 2.5 to 2, where a
                # call's timeout=0.5 keeps the value half a second.
                fraction = float(timeout)
        for name in _CACHE_OPTIONS:
            # Django reads these with int() and silently uses its default (300, 3) when that fails:
            # a MAX_ENTRIES of "1e5" would cull at 300 entries, logging out cached sessions. Checked
            # before Django reads them: float("inf") (meant as "unlimited") was its raw OverflowError.
            beside = name.lower() in params
            value = params[name.lower()] if beside else params["OPTIONS"].get(name, 0)
            try:
                int(value)
            except (TypeError, ValueError, OverflowError):
                raise KVCacheConfigurationError(
                    f"{_setting_name(params, name)} of KVCache at {location!r} must be a "
                    f"whole number, not {value!r} (Django would silently use its default; there is no "
                    "'unlimited')"
                ) from None
        super().__init__(params)
        if fraction is not None:
            self.default_timeout = fraction
        self._path = os.path.abspath(location_path(location))
        options = params.get("OPTIONS") or {}
        # (named by repr, sorted as text: an OPTIONS key that is no string, {1: 2}, was a raw TypeError)
        unknown = set(options) - set(ENGINE_OPTIONS) - set(_CACHE_OPTIONS)
        if unknown:
            # (names are case-sensitive: "SYNC" and "max_entries" are typos of "sync" and "MAX_ENTRIES")
            meant = [f"{key!r} is {_spelled(key)!r}" for key in unknown if _spelled(key)]
            raise KVCacheConfigurationError(
                f"unknown OPTIONS for KVCache at {self._path}: {', '.join(sorted(map(repr, unknown)))}; "
                f"valid ones are {', '.join(_CACHE_OPTIONS + ENGINE_OPTIONS)}"
                + (f" (the names are case-sensitive: {', '.join(sorted(meant))})" if meant else "")
            )
        _check_culling(self._path, params, self._max_entries, self._cull_frequency)
        self._options = {k: options[k] for k in ENGINE_OPTIONS if k in options}
        # Checked now, not when the store opens on the first request: ``manage.py check`` (which
        # creates every cache) then reports a bad value such as sync "allways" at deploy time.
        try:
            check_tuning_options(**{**_ENGINE_DEFAULTS, **self._options})
        except ConfigurationError as exc:
            raise KVCacheConfigurationError(f"OPTIONS of KVCache at {self._path}: {exc}") from exc
        self._db: DB | None = None
        # Records of Redis keys (kvb serve's, on the same directory) that the last cull's scan found:
        # they are no entries, so the cheap bound that decides whether to scan again leaves them out.
        self._kept = 0
        self._state_path = os.path.join(self._path, STATE_FILE)
        self._checked_at = -math.inf  # (when close() last looked whether LOCATION still holds the store)

    # ---------------------------------------------------------- plumbing

    @property
    def location(self) -> str:
        """The absolute path of the store directory."""
        return self._path

    @property
    def db(self) -> DB:
        """The shared :class:`kv_backend.DB` of this cache's LOCATION (opened on first use)."""
        db = self._db
        if db is None or db.closed:
            db = self._db = open_store(self._path, **self._options)
        return db

    def _closed_under_it(self) -> bool:
        """After a DatabaseClosedError: whether the store was closed (or is closing) under this cache,
        by ``close_all()``, ``close_store()`` or a ``close()`` of its ``db``; then the next :attr:`db` is
        the store reopened."""
        db = self._db
        if db is None:
            return False
        entry = _stores.get(os.path.realpath(self._path))
        if not db.closed and entry is not None and entry[0] is db:
            return False  # (neither closed nor taken from the registry to be closed)
        self._db = None
        return True

    def validate_key(self, key: str) -> None:
        """Warn (CacheKeyWarning) about keys memcached would reject, exactly as Django does.

        The common case, a short key without control characters or spaces,
        returns after one length check and one regex search.
        """
        if len(key) > MEMCACHE_MAX_KEY_LENGTH or _MEMCACHE_BAD_CHARS.search(key):
            super().validate_key(key)

    def _key(self, key: Any, version: int | None) -> bytes:
        """Make, validate and encode a cache key (very long keys are replaced by their hash).

        So is an empty one, which only a KEY_FUNCTION makes: Django's backends store it,
        and the engine takes keys of 1 byte or more.
        """
        made: str = self.make_and_validate_key(key, version=version)
        raw = made.encode("utf-8", "surrogatepass")
        if not 0 < len(raw) <= MAX_KEY_SIZE:
            raw = _HASHED_PREFIX + hashlib.sha256(raw).hexdigest().encode("ascii")
        return raw

    def _ttl(self, timeout: Any) -> float | None:
        """Seconds to live for a Django timeout: None (or infinity) = forever, <= 0 = already expired.

        ``float("inf")`` never expires, as in Django's local-memory and file-based
        backends (the engine itself takes only finite TTLs), and so does a number too
        large for a float (``10**400``, their OverflowError). A NaN timeout is a
        ValueError, as in Django's Redis, memcached and database backends (the engine's
        own error spoke of a "ttl"; Django's local-memory backend keeps such a key forever).
        """
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        try:
            if timeout <= 0:
                return -1.0
            ttl = float(timeout)
        except TypeError:  # "'<=' not supported between instances of 'str' and 'int'" said too little
            raise TypeError(f"a cache timeout is a number of seconds or None, not {timeout!r}") from None
        except OverflowError:  # an int beyond any float: longer than any expiry
            return None
        except ArithmeticError:  # Decimal("NaN") does not compare
            ttl = math.nan
        if math.isnan(ttl):
            raise ValueError(f"a cache timeout is a number of seconds or None, not {timeout!r}")
        return None if ttl == math.inf else ttl

    def _dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.pickle_protocol)

    # ---------------------------------------------------------- culling

    def _maybe_cull(self, db: DB) -> None:
        """Cull before storing one entry if the store holds MAX_ENTRIES or more.

        As a ``set`` into one of Django's own backends: removes ``entries // CULL_FREQUENCY`` random
        entries (all with CULL_FREQUENCY 0). One ``set`` culls one round however far over MAX_ENTRIES
        the store is (a MAX_ENTRIES lowered since), as FileBasedCache does, rather than the store at once.
        """
        if _indexed_count(db) - self._kept < self._max_entries:
            return  # the cheap upper bound (it counts expired keys too) is below the limit
        with db.locked():
            live, self._kept = _scan(db)
            count = len(live)
            if count < self._max_entries:
                return  # only expired leftovers (dropped by the scan) or Redis records made the bound high
            if self._cull_frequency == 0 and not self._kept:
                db.clear()
                return
            frequency = self._cull_frequency
            doomed = live if frequency == 0 else random.sample(live, count // frequency)
            with db.batch() as b:
                for k in doomed:
                    b.delete(k)

    def _store_culling(self, db: DB, items: list[tuple[bytes, bytes]], ttl: float | None) -> None:
        """Store ``items`` in one atomic batch, culling as the same keys ``set`` one by one would.

        Django's ``set_many`` is a loop of ``set``, each culling first if the cache is full: a cull
        may remove entries the same ``set_many`` stored before it, and with CULL_FREQUENCY 0 (a cull
        empties the cache) only the keys set after the last one are left. The batch deletes what
        those sets would have culled and stores the keys they would have left (see
        :func:`_left_by_sets`), so the entries left are as many as Django's own backends leave.
        """
        # The most entries any of the sets finds: the store's and the keys set before the last one,
        # of which only those not yet stored add entries (looked up only near the limit).
        added = len(items) - 1
        if _indexed_count(db) - self._kept + added >= self._max_entries:
            added = len({k for k, _ in items[:-1] if k not in db})
        if _indexed_count(db) - self._kept + added < self._max_entries:
            with db.batch() as b:  # (the bound counts expired keys too: it may only be high)
                for k, v in items:
                    b.put(k, v, ttl)
            return
        with db.locked():
            live, self._kept = _scan(db)
            batch = [k for k, _ in items]
            old, new = _left_by_sets(list(live), batch, self._max_entries, self._cull_frequency)
            with db.batch() as b:
                for k in live:
                    if k not in old and k not in new:
                        b.delete(k)
                for k, v in items:
                    if k in new:
                        b.put(k, v, ttl)

    # ---------------------------------------------------------- the contract

    def _read(self, db: DB, k: bytes) -> Any:
        """The stored bytes of ``k``, or _MISSING; a damaged entry is a miss, and is deleted.

        A cache holds nothing that cannot be computed again: a record that fails its
        checksum (a disk fault) must not make every request that reads the key fail
        (a cached page, a fragment) until it expires, which for ``timeout=None`` is
        never. It is logged, so the disk fault is not missed.
        """
        try:
            return db.get(k, _MISSING)
        except CorruptionError as exc:
            return self._drop_damaged(db, k, exc)

    def _loads(self, db: DB, k: bytes, raw: bytes) -> Any:
        """The value stored as ``raw`` under ``k``, or _MISSING if it does not unpickle.

        Bytes that are no pickle (written by another serializer or program), or one
        whose class no longer imports after a deploy, are a damaged entry: a logged
        miss, and deleted, as a record failing its checksum is.
        """
        try:
            return pickle.loads(raw)
        except Exception as exc:  # whatever unpickling raises: the entry cannot be returned
            return self._drop_damaged(db, k, exc, raw)

    def _drop_damaged(self, db: DB, k: bytes, exc: Exception, raw: Any = _DAMAGED) -> Any:
        """Log and delete the damaged entry ``k``; returns _MISSING (what a read of it gives).

        ``raw`` is the value read (_DAMAGED: a record failing its checksum). The entry is
        deleted only if it still holds that, under the write lock: another process may
        have replaced it meanwhile (an ``add`` that won), and that value must stay.
        """
        if isinstance(exc, CorruptionError):
            logger.warning("kv_backend cache at %s: dropping a damaged entry (%s)", self._path, exc)
        else:
            logger.warning(
                "kv_backend cache at %s: dropping a damaged entry %r: its value does not unpickle (%s: %s)",
                self._path,
                k,
                type(exc).__name__,
                exc,
            )
        with db.locked():
            try:
                current = db.get(k, _MISSING)
            except CorruptionError:
                current = _DAMAGED
            if current is raw or current == raw:
                db.delete(k)
        return _MISSING

    def _holds(self, db: DB, k: bytes) -> bool:
        """Whether ``get`` of ``k`` would find a value (a damaged entry is dropped: a miss).

        Call it only for a key the index holds (``k in db``, the cheap check that answers
        a missing key): this reads and unpickles the value.
        """
        raw = self._read(db, k)
        return raw is not _MISSING and self._loads(db, k, raw) is not _MISSING

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        k = self._key(key, version)
        db = self.db
        try:  # _read(), inlined on the hottest path
            raw = db.get(k, _MISSING)
        except CorruptionError as exc:
            raw = self._drop_damaged(db, k, exc)
        except DatabaseClosedError:  # (as _reopening does, without a call more on the hottest path)
            if not self._closed_under_it():
                raise
            return self._get_reopened(k, default)
        if raw is _MISSING:
            return default
        try:  # _loads(), inlined
            return pickle.loads(raw)
        except Exception as exc:
            self._drop_damaged(db, k, exc, raw)
            return default

    @_reopening
    def _get_reopened(self, k: bytes, default: Any) -> Any:
        """What get() of the made key ``k`` returns, on the store reopened (see :func:`_reopening`)."""
        db = self.db
        raw = self._read(db, k)
        value = _MISSING if raw is _MISSING else self._loads(db, k, raw)
        return default if value is _MISSING else value

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        k = self._key(key, version)
        data = self._dumps(value)
        ttl = self._ttl(timeout)
        try:  # (as get(), without _reopening's call on a hot path: 0.4 us of 6.5)
            self._store(k, data, ttl)
        except DatabaseClosedError:
            if not self._closed_under_it():
                raise
            self._store_reopened(k, data, ttl)

    def _store(self, k: bytes, data: bytes, ttl: float | None) -> None:
        """set() of the made key ``k`` to the pickled ``data``."""
        db = self.db
        if ttl is None or ttl > 0:
            self._maybe_cull(db)
        db.put(k, data, ttl)

    _store_reopened = _reopening(_store)

    @_reopening
    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k = self._key(key, version)
        data = self._dumps(value)
        ttl = self._ttl(timeout)
        db = self.db
        if ttl is not None and ttl <= 0:
            # Stored already expired: it "succeeds" when the key is absent, and nothing remains.
            return not (k in db and self._holds(db, k))
        if k in db and self._holds(db, k):
            return False
        # Absent, or damaged and dropped (only if still damaged: of several processes adding
        # over one damaged entry, the first one's value stays and the others find it here).
        self._maybe_cull(db)
        return db.put_if_absent(k, data, ttl)

    @_reopening
    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k = self._key(key, version)
        ttl = self._ttl(timeout)
        db = self.db
        # A damaged entry is a missing one, as for get(): it is dropped, and touch() is False.
        if not (k in db and self._holds(db, k)):
            return False
        try:
            return db.expire(k, ttl)
        except CorruptionError as exc:  # damaged since: as above
            return self._drop_damaged(db, k, exc) is not _MISSING

    @_reopening
    def delete(self, key: Any, version: int | None = None) -> bool:
        return self.db.delete(self._key(key, version))

    @_reopening
    def has_key(self, key: Any, version: int | None = None) -> bool:
        k = self._key(key, version)
        db = self.db
        return k in db and self._holds(db, k)

    @_reopening
    def clear(self) -> None:
        """Remove every entry of the LOCATION (all aliases and prefixes), as Django's backends do; the
        records of Redis keys (of ``kvb serve`` on the same directory), no entries, are left whole."""
        from kv_backend.structures.layout import clear_own  # (not at import: clear's only)

        clear_own(self.db)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        # (read once, into a list: a generator would be empty for the call run again by _reopening)
        return self._get_many(list(keys), version)

    @_reopening
    def _get_many(self, keys: list[Any], version: int | None) -> dict[Any, Any]:
        db = self.db
        out: dict[Any, Any] = {}
        for key in keys:
            k = self._key(key, version)
            raw = self._read(db, k)
            if raw is not _MISSING:
                value = self._loads(db, k, raw)
                if value is not _MISSING:
                    out[key] = value
        return out

    @_reopening
    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        """Store all of ``data`` in one atomic batch; returns [] (no key ever fails)."""
        items = [(self._key(k, version), self._dumps(v)) for k, v in data.items()]
        if not items:
            return []
        ttl = self._ttl(timeout)
        db = self.db
        if ttl is not None and ttl <= 0:
            # Stored already expired: the keys are deleted. A batch would write a delete record for
            # each key, stored or not, so a site with TIMEOUT 0 ("don't cache") grew dead records.
            _delete_present(db, [k for k, _ in items])
            return []
        self._store_culling(db, items, ttl)
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        """Delete ``keys`` in one atomic step: another process sees all of them or none."""
        self._delete_made([self._key(key, version) for key in keys])

    @_reopening
    def _delete_made(self, made: list[bytes]) -> None:
        # (the made keys, read once: see get_many)
        _delete_present(self.db, made)

    @_reopening
    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Add ``delta`` to the stored value atomically (across processes); it keeps its expiry."""
        k = self._key(key, version)
        result: list[Any] = []

        def add_delta(old: bytes | None) -> bytes:
            if old is None:
                raise _KeyNotFound
            try:
                old_value = pickle.loads(old)
            except Exception as exc:  # a damaged entry: a missing one, as for get()
                raise _Undecodable(exc, old) from exc
            new_value = old_value + delta
            result.append(new_value)
            return self._dumps(new_value)

        db = self.db
        try:
            db.update(k, add_delta)
        except _KeyNotFound:
            raise ValueError(f"Key '{key}' not found") from None
        except CorruptionError as exc:  # a damaged entry is a missing one, as for get()
            self._drop_damaged(db, k, exc)
            raise ValueError(f"Key '{key}' not found") from None
        except _Undecodable as undecodable:
            self._drop_damaged(db, k, undecodable.exc, undecodable.raw)
            raise ValueError(f"Key '{key}' not found") from None
        return result[-1]

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version=version)

    @_reopening
    def get_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """Return the cached value, or store ``default`` (called if callable) and return it.

        The check and the store happen under the cross-process write lock, so
        concurrent callers all get the one value that was stored. ``default()``
        runs outside the lock (several callers may compute it; one wins).
        """
        k = self._key(key, version)
        db = self.db
        raw = self._read(db, k)
        if raw is not _MISSING:
            value = self._loads(db, k, raw)
            if value is not _MISSING:
                return value
        if callable(default):
            default = default()
        data = self._dumps(default)
        ttl = self._ttl(timeout)
        with db.locked():
            raw = self._read(db, k)
            if raw is not _MISSING:
                value = self._loads(db, k, raw)
                if value is not _MISSING:
                    return value
            if ttl is None or ttl > 0:
                self._maybe_cull(db)
                db.put(k, data, ttl)
        return pickle.loads(data)

    @_reopening
    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Move ``key`` to version ``version + delta`` atomically; it gets the default timeout."""
        if version is None:
            version = self.version
        old_k = self._key(key, version)
        new_k = self._key(key, version + delta)
        db = self.db
        with db.locked():
            raw = self._read(db, old_k)
            if raw is _MISSING or self._loads(db, old_k, raw) is _MISSING:
                raise ValueError(f"Key '{key}' not found")
            self._maybe_cull(db)
            with db.batch() as b:
                b.put(new_k, raw, self._ttl(DEFAULT_TIMEOUT))
                if new_k != old_k:  # (delta 0, or a KEY_FUNCTION that leaves the version out: Django's
                    b.delete(old_k)  # set-then-delete lost the value it was moving)
        return version + delta

    def decr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self.incr_version(key, -delta, version)

    def close(self, **kwargs: Any) -> None:
        """Called by Django after every request: the shared store stays open, unless LOCATION no longer
        holds it.

        Writes are already in the files when they return; the ``sync`` option decides when they are
        fsynced. A LOCATION deleted, or emptied, while the site runs (``rm -rf``, as one clears a
        file-based cache) left each running process writing to its deleted store for good, unseen by
        the others and by every process started since, which make a new store there: a user logged in
        on one worker was logged out on the next. One stat of its STATE file, at most once a second,
        tells: the store is then closed, and the next request opens the one at LOCATION (made anew if
        there is none).
        """
        db = self._db
        if db is None or db.closed:
            return
        now = time.monotonic()
        if now - self._checked_at < _LOCATION_CHECK_INTERVAL:
            return
        self._checked_at = now
        opened = _opened_as.get(db, _MISSING)
        if opened is _MISSING or _state_ident(self._state_path) == opened:
            return
        logger.warning(
            "kv_backend cache at %s: the directory no longer holds the store this process has open (deleted "
            "or replaced while it ran); closing it, the next request opens the store there",
            self._path,
        )
        with _stores_lock:
            for path, entry in list(_stores.items()):
                if entry[0] is db:
                    del _stores[path]
        self._db = None
        db.close()

    # ---------------------------------------------------------- async API
    # The base class builds several async methods from other async calls (not
    # atomic, and one thread hop per key); run the atomic sync versions instead.

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return await sync_to_async(self.get_many, thread_sensitive=True)(list(keys), version)

    async def aset_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        return await sync_to_async(self.set_many, thread_sensitive=True)(data, timeout, version)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        await sync_to_async(self.delete_many, thread_sensitive=True)(list(keys), version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await sync_to_async(self.has_key, thread_sensitive=True)(key, version)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await sync_to_async(self.incr, thread_sensitive=True)(key, delta, version)

    async def aget_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        return await sync_to_async(self.get_or_set, thread_sensitive=True)(key, default, timeout, version)

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await sync_to_async(self.incr_version, thread_sensitive=True)(key, delta, version)

    async def aclose(self, **kwargs: Any) -> None:
        """As :meth:`close` (one stat, no thread hop)."""
        self.close()


# ------------------------------------------------------- engine helpers


def _indexed_count(db: DB) -> int:
    """Number of keys in the index, expired ones included: an O(1) upper bound of len(db)."""
    return db.index_size()


def _delete_present(db: DB, made: list[bytes]) -> None:
    """Delete the stored ones of the keys ``made`` in one atomic batch; write nothing for the others."""
    if not any(k in db for k in made):
        return  # none is stored: nothing to write, no lock taken
    # Checked again under the write lock, with the deletes: a set_many of these keys by another
    # process between the checks above would otherwise be half deleted.
    with db.locked():
        present = [k for k in made if k in db]
        if present:
            with db.batch() as b:
                for k in present:
                    b.delete(k)


def _scan(db: DB) -> tuple[list[bytes], int]:
    """Return ``(the cache's live keys, how many records of Redis keys were left out)``; call with
    ``db.locked()`` held.

    Expired keys are dropped from the index without writing anything (their records are invisible
    everywhere and go at the next merge). The records of ``kvb serve``'s Redis keys (or of
    ``Structures``) on the same directory are no cache entries: culling one alone would leave its Redis
    key damaged (a hash counting fields it no longer has, a list with a hole), so they are left out.
    """
    from kv_backend.structures.layout import is_structures_key

    db.purge_expired()
    keys = db.unordered_keys()
    live = [k for k in keys if not is_structures_key(k)]
    return live, len(keys) - len(live)
