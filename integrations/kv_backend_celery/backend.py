"""Celery result backend that keeps task results in a kv_backend store.

Configure it with a ``kvb://`` URL naming an absolute directory::

    app = Celery("proj", broker="redis://...", backend="kvb:///var/lib/proj/results")
    # options: kvb:///var/lib/proj/results?sync=always&auto_merge=0.5

Celery finds the class through the ``celery.result_backends`` entry point, so
the URL works without importing this module. Results are stored under
Celery's usual key names (``celery-task-meta-<id>`` ...) with the
``result_expires`` lifetime as a TTL, chords count their parts with the
store's atomic cross-process ``incr``, and ``AsyncResult.get()`` wakes as soon
as any process writes to the store instead of polling every half second.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import json
import logging
import math
import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from celery import group, maybe_signature, signals, states
from celery._state import _task_stack
from celery.app.task import Context
from celery.backends.base import KeyValueStoreBackend
from celery.exceptions import BackendStoreError, ChordError, ImproperlyConfigured
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult, GroupResult, ResultSet, allow_join_result
from celery.utils.functional import _regen
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads
from kombu.serialization import prepare_accept_content

if TYPE_CHECKING:  # kombu leaves them unannotated

    def bytes_to_str(s: bytes | str) -> str: ...
    def ensure_bytes(s: bytes | str) -> bytes: ...

else:
    from kombu.utils.encoding import bytes_to_str, ensure_bytes

from kv_backend import DB
from kv_backend.db_common import MAX_FILE_SIZE, MIN_FILE_SIZE
from kv_backend.errors import (
    ConfigurationError,
    CorruptionError,
    MergeInProgressError,
    NotAStoreError,
    StorageError,
    StoreNotFoundError,
    ValueTooLargeError,
)
from kv_backend.files import STATE_FILE
from kv_backend.threads import start_daemon_thread

__all__ = ["KVBackend", "KVBackendConfigurationError", "parse_url"]

logger = logging.getLogger(__name__)

#: Whether this Celery's groups send each task with its own index in the group (Celery 5.6 and
#: later): before, a ``group_index`` among a group's options (a chord member replaced by a group)
#: went to every task, and a chord with a generator header cannot be ordered by the indexes.
_GROUPS_KEEP_TASK_INDEXES = "group_index" in inspect.signature(group._apply_tasks).parameters

SCHEME = "kvb"
#: Query options of a ``kvb://`` URL and the engine option each one sets.
OPTIONS = ("sync", "max_file_size", "auto_merge", "read_only")

#: errno values of storage errors that no retry can cure: the path or its permissions are wrong
#: (a parent that is a file, a directory that cannot be created, a read-only mount...).
_NOT_TRANSIENT = frozenset(
    {
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EINVAL,
    }
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class KVBackendConfigurationError(ImproperlyConfigured, ConfigurationError):
    """A ``kvb://`` result backend URL that cannot be used (Celery's ImproperlyConfigured)."""


class _TakenOver(int):
    """The count (0) of a chord a redelivered part took over after the claim of its sender lapsed."""


def _chord_error(message: str, cause: BaseException) -> ChordError:
    error = ChordError(message)
    error.__cause__ = cause
    return error


def _failed_part(results: Iterable[Any]) -> AsyncResult | None:
    """The first header result in a failed state, looking inside nested groups.

    A chord header may hold a group (a chain that ends in one): its result has
    no state of its own, the failure is in one of its tasks.
    """
    for result in results:
        if isinstance(result, ResultSet):
            found = _failed_part(result.results)
            if found is not None:
                return found
        elif result.state in states.PROPAGATE_STATES:
            return result
    return None


def _header_parts(results: Iterable[Any]) -> Iterator[AsyncResult]:
    """The task results of a chord header, those inside nested groups included (each is a part)."""
    for result in results:
        if isinstance(result, ResultSet):
            yield from _header_parts(result.results)
        else:
            yield result


def _nested_groups(results: Iterable[Any]) -> Iterator[ResultSet]:
    """The groups nested in a chord header (a header chain that ends in a group leaves one)."""
    for result in results:
        if isinstance(result, ResultSet):
            yield result
            yield from _nested_groups(result.results)


class _ChordPart:
    """A chord part being marked finished in this thread, and its count once stored with its result."""

    __slots__ = ("chained", "claim", "counted", "gid", "left", "request")

    def __init__(self, request: Any, gid: str, chained: bool = False) -> None:
        self.request = request
        self.gid = gid
        self.chained = chained  # a task of a chain failed with an earlier task of that chain
        self.counted = False  # set by _store_result, taken by on_chord_part_return
        self.left: int | None = None
        self.claim = b""


#: The chord part each thread is marking finished (``part``): its result and its count are
#: written in one transaction by ``_store_result``, which ``on_chord_part_return`` then uses.
_chord_part = threading.local()


@contextlib.contextmanager
def _storing_chord_part(request: Any) -> Iterator[None]:
    """Within the block, store the result of ``request``'s task with its count if it is a chord part.

    A task that is no chord part (no group, no chord callback or no id) goes the usual way.
    """
    gid = getattr(request, "group", None) if request is not None else None
    if not gid or not getattr(request, "chord", None) or not getattr(request, "id", None):
        yield
        return
    previous = _chord_part.__dict__.get("part")
    _chord_part.part = _ChordPart(request, gid)
    try:
        yield
    finally:
        _chord_part.part = previous


@contextlib.contextmanager
def _failing_chains() -> Iterator[None]:
    """Within the block, a chained task Celery fails with an earlier one is stored with its count.

    When a task fails, Celery stores the same failure for the tasks chained
    after it and, for one that is a chord part (the last task of a chain in a
    chord header), then calls ``on_chord_part_return`` with the request it
    stored the failure with: ``_store_result`` counts that part in the
    transaction that stores its failure (see :func:`_chained_part`).
    """
    state = _chord_part.__dict__
    previous = state.get("part"), state.get("failing_chains", False)
    _chord_part.failing_chains = True
    try:
        yield
    finally:
        _chord_part.part, _chord_part.failing_chains = previous


def _chained_part(request: Any, task_id: str, state: str) -> _ChordPart | None:
    """The chord part a failure being stored belongs to, if Celery is failing it with its chain.

    Only while a failure is propagated down a chain (see :func:`_failing_chains`),
    for a failed state, and for a request that is a chord part Celery built
    from a chained task's signature (it has that signature's ``options``,
    which no task's own request has): Celery calls ``on_chord_part_return``
    with it right after storing its failure (Celery 5.7+ unless that task had
    failed already, see :meth:`KVBackend._store_result`).
    """
    if not _chord_part.__dict__.get("failing_chains") or state not in states.PROPAGATE_STATES:
        return None
    options = getattr(request, "options", None)  # only the request Celery rebuilds from a chained signature
    if not isinstance(options, dict) or "chord" not in options:
        return None
    gid = getattr(request, "group", None) if request is not None else None
    if not gid or not getattr(request, "chord", None) or getattr(request, "id", None) != task_id:
        return None
    return _ChordPart(request, gid, chained=True)


def _bad(url: str, why: str) -> KVBackendConfigurationError:
    return KVBackendConfigurationError(
        f"invalid kv_backend result backend URL {url!r}: {why}. "
        "Expected kvb:///absolute/path[?sync=never|always|SECONDS&max_file_size=BYTES"
        "&auto_merge=FRACTION&read_only=0|1]"
    )


def _seconds(setting: str, value: Any) -> float | None:
    """A lifetime setting as seconds (None: keep for ever), or ImproperlyConfigured naming the setting.

    Numeric strings (a value read from the environment) are accepted, as
    Celery's redis backend does; anything else would otherwise fail at every
    stored result, with an error that doesn't say which setting is wrong.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not math.isfinite(seconds):
        raise KVBackendConfigurationError(
            f"{setting} must be a finite number of seconds or a timedelta "
            f"(None or 0 keeps results for ever), not {value!r}"
        )
    return seconds


def _parse_sync(url: str, text: str) -> str | float:
    if text in ("never", "always"):
        return text
    try:
        seconds = float(text)
    except ValueError:
        raise _bad(url, f"sync must be 'never', 'always' or a number of seconds, not {text!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise _bad(url, f"sync must be a finite number of seconds >= 0, not {text!r}")
    return seconds


def _parse_size(url: str, text: str) -> int:
    t = text.strip().lower().removesuffix("b")
    factor = 1
    if t and t[-1] in _SIZE_SUFFIXES:
        factor, t = _SIZE_SUFFIXES[t[-1]], t[:-1]
    try:
        size = int(t) * factor
    except ValueError:
        raise _bad(url, f"max_file_size must be a byte count such as 67108864 or 64M, not {text!r}") from None
    if size < MIN_FILE_SIZE:
        raise _bad(url, f"max_file_size must be at least {MIN_FILE_SIZE} bytes, not {text!r}")
    if size >= MAX_FILE_SIZE:
        raise _bad(url, f"max_file_size must be below 1 TiB (at most 1023G), not {text!r}")
    return size


def _parse_fraction(url: str, text: str) -> float | None:
    if text.lower() in ("", "none", "off", "0"):
        return None
    try:
        fraction = float(text)
    except ValueError:
        raise _bad(url, f"auto_merge must be a fraction between 0 and 1 (or 'off'), not {text!r}") from None
    if not 0 < fraction < 1:
        raise _bad(url, f"auto_merge must be a fraction between 0 and 1 (or 'off'), not {text!r}")
    return fraction


def _parse_bool(url: str, name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _bad(url, f"{name} must be 1/0, true/false, yes/no or on/off, not {text!r}")


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split a ``kvb://`` URL into the store's absolute path and its :class:`kv_backend.DB` options.

    Raises :class:`KVBackendConfigurationError` (an ``ImproperlyConfigured``)
    for anything that is not an absolute path with known options, so a typo
    fails when the app starts rather than when the first result is written.
    """
    if not isinstance(url, str) or not url:
        raise KVBackendConfigurationError(
            f"the kv_backend result backend needs a URL such as kvb:///var/lib/proj/results, got {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise _bad(url, f"the scheme must be {SCHEME}://, not {parts.scheme or 'missing'}")
    if parts.fragment:
        raise _bad(url, "a URL fragment (#...) has no meaning here")
    if parts.netloc.startswith("~") or unquote(parts.path).lstrip("/").startswith("~"):
        # Not expanded: workers and clients may run as different users, with different homes.
        written = parts.netloc + unquote(parts.path) if parts.netloc.startswith("~") else unquote(parts.path)
        home, _, rest = written.lstrip("/").partition("/")
        meant = os.path.normpath(os.path.join(os.path.expanduser(home), rest))
        if not os.path.isabs(meant):  # an unknown ~user
            meant = "/var/lib/proj/results"
        raise _bad(
            url,
            "'~' is not expanded (workers and clients may run as different users); "
            f"write the absolute directory instead, e.g. kvb://{meant}",
        )
    if parts.netloc.lower() not in ("", "localhost"):  # host names are case-insensitive
        raise _bad(
            url,
            f"the path must be absolute (three slashes: kvb:///{parts.netloc}{parts.path}); "
            f"{parts.netloc!r} would be a host name, and relative paths are refused because "
            "workers and clients may run in different directories",
        )
    path = unquote(parts.path)
    if "\0" in path:
        raise _bad(url, "the path holds a NUL byte (%00), which no file name can contain")
    if not path or not os.path.isabs(path):
        raise _bad(url, "the URL names no absolute directory")
    path = os.path.normpath(path)
    if path == "/":
        raise _bad(url, "the store needs a directory of its own, not the file system root")
    options: dict[str, Any] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _bad(url, f"cannot parse the query string {parts.query!r}") from None
    for name, value in pairs:
        if name not in OPTIONS:
            raise _bad(url, f"unknown option {name!r} (known options: {', '.join(OPTIONS)})")
        if name in options:
            raise _bad(url, f"option {name!r} is given twice")
        if name == "sync":
            options[name] = _parse_sync(url, value)
        elif name == "max_file_size":
            options[name] = _parse_size(url, value)
        elif name == "auto_merge":
            options[name] = _parse_fraction(url, value)
        else:
            options[name] = _parse_bool(url, name, value)
    return path, options


# One open DB per (path, options) and process, shared by every backend instance
# (Celery makes one backend per thread). Weak values: a store no backend uses
# any more is closed by the garbage collector.
_shared: weakref.WeakValueDictionary[tuple[str, tuple[tuple[str, Any], ...]], DB] = (
    weakref.WeakValueDictionary()
)
_shared_lock = threading.Lock()
# The identity of the store each open DB found (see _store_identity).
_identities: weakref.WeakKeyDictionary[DB, tuple[Any, ...] | None] = weakref.WeakKeyDictionary()


def _store_identity(path: str) -> tuple[Any, ...] | None:
    """What tells this store from another one made at ``path`` later: its STATE page's inode.

    Every process that shares a store maps that page; a store whose directory
    was deleted (or emptied) and created again has a new one. None: nothing
    is there any more. A read-only store without a page (nobody could ever
    write to it) is known by its directory.
    """
    try:
        st = os.stat(os.path.join(path, STATE_FILE))
    except FileNotFoundError:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return ("dir", st.st_dev, st.st_ino)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _is_current(db: DB, path: str) -> bool:
    """False if ``db`` is closed, or its store was deleted or replaced since it was opened."""
    return not db.closed and _identities.get(db) == _store_identity(path)


def _reset_lock_in_child() -> None:
    """A forked child gets new module locks: one held by another thread of the parent at the fork
    (opening the store, starting the chord recovery) would be held for ever in the child."""
    global _shared_lock, _recovery_lock
    _shared_lock = threading.Lock()
    _recovery_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def _open_shared(path: str, options: dict[str, Any]) -> DB:
    """This process's open store at ``path``, opened anew if it was closed, deleted or replaced.

    A results directory deleted while workers run would otherwise keep
    taking their results into unlinked files no other process can read, and
    clients would wait for them for ever; reopening creates the store again
    (a writable one), so results stored from then on are seen by everyone.
    The previous handle is left to the garbage collector: another thread may
    still be using it.
    """
    key = (path, tuple(sorted(options.items())))
    with _shared_lock:
        db = _shared.get(key)
        if db is None or not _is_current(db, path):
            if db is not None and not db.closed:
                logger.warning("kv_backend result store %s was deleted or replaced; reopening it", path)
            db = DB(path, **options)
            _identities[db] = _store_identity(path)
            _shared[key] = db
        return db


class KVBackend(KeyValueStoreBackend):
    """Celery result backend on a kv_backend store, selected with ``kvb:///absolute/path``.

    The store opens on first use in each process (so the backend can be built
    in a parent and used in forked or unpickled worker processes), writes are
    visible to every other process at once, and waits wake within about a
    millisecond of the result landing.
    """

    supports_autoexpire = True
    supports_native_join = True
    supports_result_compression = True
    supports_failure_expires = True
    implements_incr = True
    persistent = True
    #: The result lifetime in seconds (None: for ever), set from result_expires.
    expires: float | None

    #: Shortest lifetime (seconds) of the claim the part that completes a chord
    #: holds while it joins the header and sends the callback.
    chord_claim_min = 1.0
    #: Seconds between two looks, in each worker process, for chords whose sender was lost
    #: (see :meth:`recover_chords`).
    chord_recovery_interval = 2.0

    def __init__(self, *args: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, url=url, **kwargs)
        if url is None:
            url = self.app.conf.result_backend if isinstance(self.app.conf.result_backend, str) else None
            self.url = url
        self.path, self.options = parse_url(url)  # type: ignore[arg-type]
        self.expires = _seconds("result_expires", self.expires)
        failure_expires = self.app.conf.get("result_failure_expires")
        self.failure_expires = (
            self.expires
            if failure_expires is None
            else _seconds("result_failure_expires", self.prepare_expires(failure_expires))
        )
        chord_expires = self.app.conf.get("result_chord_expires")
        if chord_expires is not None and hasattr(self, "_chord_expires"):  # Celery 5.7+
            # Checked here too: Celery reads it with int() at every chord, so a value such as
            # "1 day", "1.5" or inf failed the first chord sent, in the client, naming no setting.
            self._chord_expires = _seconds("result_chord_expires", self.prepare_expires(chord_expires))
        self._db: DB | None = None
        if _in_pool_child():
            # This module was not loaded when the child started (a worker that printed no
            # banner and was not started by the celery program, see kv_backend_celery.cli,
            # never built its backend before forking), so its worker_process_init handler
            # did not run: start the recovery now, at the child's first task, rather than
            # only at its first chord part.
            _start_recovery_thread(self.app, self)

    # ------------------------------------------------------------------ store

    @property
    def db(self) -> DB:
        """The store, opened on first use in this process and reopened if it was closed."""
        db = self._db
        if db is None or not _is_current(db, self.path):
            db = self._db = _open_shared(self.path, self.options)
        return db

    def close(self) -> None:
        """Drop this backend's handle on the store (it reopens on next use)."""
        self._db = None

    @staticmethod
    def _ttl(expires: float | None) -> float | None:
        """TTL in seconds for the engine: None means keep forever (Celery's 0/None)."""
        if not expires or expires < 0:
            return None
        return float(expires)

    def get(self, key: bytes | str) -> bytes | None:
        """Return the raw value stored at ``key``, or None."""
        return self.db.get(ensure_bytes(key))

    def mget(self, keys: Iterable[bytes | str]) -> list[bytes | None]:
        """Return the raw values of ``keys`` in order (None for missing ones)."""
        get = self.db.get
        return [get(ensure_bytes(k)) for k in keys]

    def set(self, key: bytes | str, value: bytes | str, expires: float | None = None) -> None:
        """Store ``value`` with the result lifetime (``expires`` seconds if given, else result_expires)."""
        ttl = self._ttl(self.expires if expires is None else expires)
        try:
            self.db.put(ensure_bytes(key), ensure_bytes(value), ttl=ttl)
        except ValueTooLargeError as exc:
            raise BackendStoreError(f"result too large for the kv_backend store: {exc}") from exc

    def _set_with_state(self, key: bytes | str, value: bytes | str, state: str) -> None:
        self.set(key, value, expires=self._lifetime(state) or 0)

    def _lifetime(self, state: str | None) -> float | None:
        """The lifetime of a result in ``state``: result_failure_expires for a FAILURE (0/None: for ever)."""
        return self.failure_expires if state == states.FAILURE else self.expires

    def _longest(self, *lifetimes: float | None) -> float | None:
        """The longest of Celery lifetimes (0 or None, for ever, is the longest)."""
        ttls = [self._ttl(lifetime) for lifetime in lifetimes]
        return None if None in ttls else max(t for t in ttls if t is not None)

    def _stored_state(self, task_id: str) -> str | None:
        """The state stored for ``task_id`` (None: nothing stored)."""
        raw = self.get(self.get_key_for_task(task_id))
        return None if raw is None else self.decode(raw).get("status")

    def delete(self, key: bytes | str) -> None:
        """Remove ``key`` (no error if it is missing)."""
        self.db.delete(ensure_bytes(key))

    def incr(self, key: bytes | str, delta: int = 1) -> int:
        """Atomically add ``delta`` to the counter at ``key`` across every process; return the new value."""
        return self.db.incr(ensure_bytes(key), delta)

    def expire(self, key: bytes | str, value: float | None) -> bool:
        """Give ``key`` a lifetime of ``value`` seconds; 0 or None keeps it forever (as Celery means)."""
        ttl = self._ttl(value)
        if ttl is None:
            return self.db.persist(ensure_bytes(key))
        return self.db.expire(ensure_bytes(key), ttl)

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        payload = self.encode(meta)  # encoded before taking the lock: other writers don't wait on it
        key = self.get_key_for_task(task_id)
        db = self.db
        part = _chord_part.__dict__.get("part")
        if part is None or part.request is not request:
            part = _chained_part(request, meta["task_id"], state)
        if (
            part is not None
            and part.request is request
            and meta["task_id"] == request.id
            and state in states.READY_STATES
        ):
            # A chord part finishing (see mark_as_done): its result and its count in one
            # transaction, so that a process killed between the two leaves neither.
            with db.transaction():
                if part.chained and self._failed_already(db, key):
                    # Celery 5.7+ does not return the part of a chained task that had failed
                    # (5.3 does: its marker then keeps it from being counted twice).
                    self._write_result(db, task_id, key, payload, state)
                    return result
                self._write_result(db, task_id, key, payload, state)
                part.claim = uuid.uuid4().hex.encode()
                part.left = self._count_undamaged(
                    self.get_key_for_chord(part.gid),
                    part.gid,
                    task_id,
                    self._chord_part_ttl(),
                    part.claim,
                    request.chord,
                    getattr(request, "group_index", None),
                )
                part.counted = True
            if part.chained:
                _chord_part.part = part  # for the on_chord_part_return Celery calls next with this request
            return result
        with db.locked():
            self._write_result(db, task_id, key, payload, state)
        return result

    def _failed_already(self, db: DB, key: bytes | str) -> bool:
        """True if the task at ``key`` has a failed state (FAILURE, REVOKED) stored."""
        try:
            current = db.get(ensure_bytes(key))
        except CorruptionError:
            return False  # a damaged record (a disk fault): no state to be read
        return current is not None and self.decode_result(current).get("status") in states.PROPAGATE_STATES

    def _write_result(self, db: DB, task_id: str, key: bytes | str, payload: bytes | str, state: str) -> None:
        """Store a task's encoded result, unless the one stored must stay (write lock held).

        Under the store's write lock, the check and the write are one atomic step:
        a SUCCESS is never overwritten (a redelivered or lost task reporting late),
        and a finished state (SUCCESS, FAILURE, REVOKED) is never replaced by an
        unfinished one: a retry that reports RETRY after the last attempt already
        stored its FAILURE must not leave the task looking unfinished for ever.
        A damaged record (failing its checksum) is replaced by a finished state only:
        what it held, maybe a finished state too, can never be read back.
        """
        try:
            current = db.get(ensure_bytes(key))
        except CorruptionError as exc:
            logger.warning("the stored result of task %s is damaged (%s)", task_id, exc)
            if state not in states.READY_STATES:
                return
            current = None
        if current is not None:
            stored = self.decode_result(current).get("status")
            if stored == states.SUCCESS or (
                stored in states.READY_STATES and state not in states.READY_STATES
            ):
                return
        try:
            self._set_with_state(key, payload, state)
        except BackendStoreError as exc:
            raise BackendStoreError(str(exc), state=state, task_id=task_id) from exc

    def cleanup(self) -> Any:
        """Compact the store (expired and replaced results are dropped); the TTLs do the expiring."""
        if self.options.get("read_only"):
            return None
        try:
            return self.db.merge()
        except MergeInProgressError:
            logger.info("kv_backend result store %s is already being merged; skipping", self.path)
            return None

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        """With result_backend_always_retry, retry OS-level storage errors (disk full, EIO...).

        Configuration errors are raised at once: Celery's default
        result_backend_max_retries is unlimited, so retrying a path that can
        never work (under a file, not creatable, not writable) would stall the
        worker for good instead of saying what is wrong.
        """
        return (
            isinstance(exc, StorageError)
            and not isinstance(exc, (StoreNotFoundError, NotAStoreError))
            and exc.errno not in _NOT_TRANSIENT
        )

    # ----------------------------------------------------------------- chords

    def _chord_counter_ttl(self) -> float | None:
        """Lifetime of a chord's part counter and markers.

        Celery 5.7+ has ``result_chord_expires`` for it (``chord_expires``);
        earlier releases give chord keys the ``result_expires`` lifetime.
        """
        return getattr(self, "chord_expires", self.expires)

    def _chord_part_ttl(self) -> float | None:
        """Lifetime of a running chord's header results and group (never below result_expires)."""
        ttl = getattr(self, "_chord_result_expires", None)
        if ttl is None:
            ttl = self._chord_counter_ttl()
        return ttl

    def _apply_chord_incr(self, header_result_args: Any, body: Any, **kwargs: Any) -> None:
        """Prepare a chord's bookkeeping before its header is sent (Celery calls it as ``apply_chord``).

        A header given as a list: its group is saved, as Celery's key-value
        backends do. A header given as a generator (Celery hands its results
        over as a lazy ``_regen``) is not unrolled here: Celery sends each of
        its tasks as the generator yields it and announces the size before the
        last one (Celery issue #3021). Saving its group would pull the whole
        generator before the first task goes out, and the results it would
        freeze are not the tasks being sent. Instead the chord is marked as
        one whose parts record their header position (see :meth:`_count_part`);
        the part that completes it saves the group from those positions.

        Before Celery 5.6 a group applied with a ``group_index`` option of its own (the group a
        task is replaced with inside a chord) handed that one index to every task it sent, so
        the positions cannot order the header: there the generator is unrolled and its group
        saved first, as for a list.
        """
        results = header_result_args[1] if len(header_result_args) > 1 else None
        if not isinstance(results, _regen) or not _GROUPS_KEEP_TASK_INDEXES:
            super()._apply_chord_incr(header_result_args, body, **kwargs)
            return
        self.ensure_chords_allowed()
        self.db.put(self._slots_key(header_result_args[0]), b"0", ttl=self._ttl(self._chord_counter_ttl()))

    def _slots_key(self, gid: str) -> bytes:
        """How many parts of a generator-header chord recorded their position (also marks such a chord)."""
        return ensure_bytes(self.get_key_for_chord(gid, ".slots"))

    def _slot_key(self, gid: str, slot: int) -> bytes:
        """Where the ``slot``-th counted part of a generator-header chord keeps its position and task id."""
        return ensure_bytes(self.get_key_for_chord(gid, f".slot.{slot}"))

    def _slotted_group(
        self, db: DB, gid: str, slots: int, last: tuple[Any, str], batch: Any
    ) -> bytes | None:
        """The encoded header group of a generator-header chord its last part completes (write lock held).

        Read from the positions its other ``slots - 1`` parts recorded, plus
        ``last`` (the completing part's); each is dropped in ``batch``. Parts
        are ordered by their index in the header (``group_index``), in
        counting order where that is missing or shared (a group nested in the
        header numbers its own tasks). None if a position is missing (expired):
        the chord then fails with its lost group.
        """
        entries = []
        lost = False
        for slot in range(1, slots):
            raw = db.get(self._slot_key(gid, slot))
            batch.delete(self._slot_key(gid, slot))
            if raw is None:
                lost = True
                continue
            index, task_id = json.loads(raw)
            entries.append((index, slot, task_id))
        if lost:
            logger.error("chord %s: a header position recorded by one of its parts is gone", gid)
            return None
        entries.append((last[0], slots, last[1]))
        entries.sort(key=lambda e: (e[0] is None, e[0] if isinstance(e[0], int) else 0, e[1]))
        header = self.app.GroupResult(gid, [self.app.AsyncResult(task_id) for _, _, task_id in entries])
        return ensure_bytes(self.encode({"result": header.as_tuple()}))

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        """Subtract the chord's size from its part counter (the client calls this before the last part).

        Parts add one as they finish, so the counter reaches exactly zero when
        the last one does, whichever order the size and the parts arrive in.
        """
        key = self.get_key_for_chord(group_id)
        db = self.db
        with db.locked():
            if self._damaged_key(group_id) in db:  # failed already for a damaged record: keep its 0
                return
            db.incr(key, -int(chord_size))
        self.expire(key, self._chord_counter_ttl())

    def mark_as_done(
        self,
        task_id: str,
        result: Any,
        request: Any = None,
        store_result: bool = True,
        state: str = states.SUCCESS,
    ) -> Any:
        """Celery's ``mark_as_done``; a chord part's result is stored and counted in one transaction."""
        with _storing_chord_part(request):
            return super().mark_as_done(
                task_id, result, request=request, store_result=store_result, state=state
            )

    def mark_as_failure(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        store_result: bool = True,
        call_errbacks: bool = True,
        state: str = states.FAILURE,
    ) -> Any:
        """Celery's ``mark_as_failure``; a chord part's failure is stored and counted in one transaction.

        So is the failure Celery gives the chord part that ends a chain in a
        chord header when an earlier task of that chain fails.
        """
        with _storing_chord_part(request), _failing_chains():
            return super().mark_as_failure(
                task_id,
                exc,
                traceback=traceback,
                request=request,
                store_result=store_result,
                call_errbacks=call_errbacks,
                state=state,
            )

    def mark_as_revoked(
        self,
        task_id: str,
        reason: str = "",
        request: Any = None,
        store_result: bool = True,
        state: str = states.REVOKED,
    ) -> Any:
        """Celery's ``mark_as_revoked``; a revoked chord part is stored and counted in one transaction."""
        with _storing_chord_part(request):
            return super().mark_as_revoked(
                task_id, reason=reason, request=request, store_result=store_result, state=state
            )

    def chord_error_from_stack(self, callback: Any, exc: BaseException | None = None) -> Any:
        """Celery's ``chord_error_from_stack``; chained chord parts fail in one transaction.

        Celery 5.7+ also fails the tasks chained after a failed chord callback:
        one of them that is a part of an enclosing chord is stored and counted
        in one transaction, as in :meth:`mark_as_failure`.
        """
        with _failing_chains():
            return super().chord_error_from_stack(callback, exc)

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> Any:
        """Count a finished chord part with one atomic ``incr``; the part that brings it to zero fires.

        Exactly one part, in whichever process, sees the counter reach zero, so
        the callback is sent once and no ``chord_unlock`` task polls. Only that
        part reads the saved header group back (doing it for every part would
        cost O(parts^2) for large chords). A part that finishes before the
        client has announced the size sees a positive count and does nothing
        more: the last part is always sent after the size.
        """
        gid = getattr(request, "group", None)
        chord_sig = getattr(request, "chord", None)
        if not gid or not chord_sig:
            return None
        if _recovery_pids.get(id(self.app)) != os.getpid():
            _start_recovery_late(self.app, request)
        key = self.get_key_for_chord(gid)
        task_id = getattr(request, "id", None)
        keep = self._chord_part_ttl()
        part = _chord_part.__dict__.get("part")
        if part is not None and part.request is request and part.counted:
            # Counted with its result, in one transaction (see _store_result): once only.
            part.counted = False
            left, claim = part.left, part.claim
        else:
            claim = uuid.uuid4().hex.encode()
            left = self._count_undamaged(
                key, gid, task_id, keep, claim, chord_sig, getattr(request, "group_index", None)
            )
        if left is None:
            return None
        if left == 0:
            return self._run_chord_callback(gid, chord_sig, key, claim, isinstance(left, _TakenOver))
        self.expire(self.get_key_for_group(gid), keep)
        if task_id:  # (a failed part's result_failure_expires may be longer)
            self.expire(self.get_key_for_task(task_id), self._longest(keep, self._lifetime(state)))
        return None

    def _count_undamaged(
        self,
        key: bytes,
        gid: str,
        task_id: str | None,
        keep: float | None,
        claim: bytes,
        chord_sig: Any,
        group_index: Any = None,
    ) -> int | None:
        """:meth:`_count_part`; if a record of the chord is damaged on disk, the chord is failed.

        Its counter (or a generator header's positions) failing its checksum raised
        CorruptionError out of every part, and the transaction that stores a part's result with
        its count then stored no result either; later the chord never completed and ``get()``
        on it waited for ever. The part's result is stored, and the chord fails (see
        :meth:`_take_damaged`): 0 is returned to the one part that takes that failure over.
        """
        try:
            return self._count_part(key, gid, task_id, keep, claim, chord_sig, group_index)
        except CorruptionError as exc:
            return self._take_damaged(key, gid, task_id, keep, claim, chord_sig, exc)

    def _damaged_key(self, gid: str) -> bytes:
        """Where a chord failed for a damaged record keeps the ChordError's message until its end."""
        return ensure_bytes(self.get_key_for_chord(gid, ".damaged"))

    def _damage_reason(self, db: DB, gid: str) -> str | None:
        """Why the chord fails for a damaged record (see :meth:`_take_damaged`); None: it does not."""
        try:
            raw = db.get(self._damaged_key(gid))
        except CorruptionError as exc:  # that note damaged in turn: the chord fails all the same
            return f"chord {gid} cannot complete: a record of it is damaged on disk ({exc})"
        return None if raw is None else raw.decode("utf-8", "replace")

    def _counting_records(self, db: DB, gid: str, key: bytes) -> Iterator[bytes]:
        """The keys of the records a chord's parts read to count: its counter, and a generator
        header's count of positions and each position (see :meth:`_count_part`)."""
        yield ensure_bytes(key)
        yield self._slots_key(gid)
        try:
            slots = int(db.get(self._slots_key(gid)) or 0)
        except (CorruptionError, ValueError):
            return
        for slot in range(1, slots + 1):
            yield self._slot_key(gid, slot)

    def _damaged_record(self, db: DB, gid: str, keys: Iterable[bytes], exc: CorruptionError) -> str:
        """The ChordError message naming which of the chord's ``keys`` is damaged (``exc``: how)."""
        for key in keys:
            try:
                db.get(key)
            except CorruptionError as found:
                return (
                    f"chord {gid} cannot complete: its record {bytes_to_str(key)!r} is damaged on disk "
                    f"({found})"
                )
        return f"chord {gid} cannot complete: a record of it is damaged on disk ({exc})"

    def _take_damaged(
        self,
        key: bytes,
        gid: str,
        task_id: str | None,
        keep: float | None,
        claim: bytes,
        chord_sig: Any,
        exc: CorruptionError,
    ) -> int | None:
        """Take over (to fail it) a chord whose counter or header positions are damaged on disk.

        Under the write lock, once for the chord whichever parts meet the damage at once: the
        first one writes, in one batch, why it fails, a readable count of 0, its claim, its
        marker, and the callback to the list of chords being fired, and gets 0 (see
        :class:`_TakenOver`); :meth:`_run_chord_callback` then fails the callback with a
        ChordError instead of joining the header. A process killed before that leaves a complete
        chord that a redelivered part or the recovery takes over, and fails, as any other. None
        (nothing more to do here) if the chord failed so already, has a live owner (its claim
        holds: it sends or fails the callback), or is over.

        A chord whose callback is stored was complete (the part that brought its count to 0
        stored it, in the same batch) and its sender was lost: its damaged count was 0, and it
        is taken over as any such chord (the callback is sent), not failed.
        """
        db = self.db
        claim_key = self._claim_key(gid)
        with db.locked():
            group_key = ensure_bytes(self.get_key_for_group(gid))
            slots_key = self._slots_key(gid)
            if (
                self._damaged_key(gid) in db
                or claim_key in db
                or not claim
                or not any(k in db for k in (key, group_key, slots_key))  # over since the damage was met
            ):
                logger.error(
                    "chord %s: a record of it is damaged (%s); part %s not counted, the chord is failed "
                    "or finished elsewhere",
                    gid,
                    exc,
                    task_id,
                )
                return None
            counter_ttl = self._ttl(self._chord_counter_ttl())
            complete = self._callback_key(gid) in db
            reason = self._damaged_record(db, gid, self._counting_records(db, gid, key), exc)
            if complete:
                logger.error("%s; it was complete: taking it over (part %s)", reason, task_id)
            else:
                logger.error(
                    "chord %s: a record of it is damaged (%s); failing the chord: %s", gid, exc, reason
                )
            record = None if complete else self._encode_callback(gid, chord_sig)
            with db.batch() as batch:
                if not complete:
                    batch.put(self._damaged_key(gid), reason.encode(), ttl=counter_ttl)
                batch.put(ensure_bytes(key), b"0", ttl=counter_ttl)
                batch.delete(slots_key)  # a generator header's: later parts must not count on it
                batch.put(claim_key, claim, ttl=self._chord_claim_ttl())
                if task_id:
                    batch.put(self._part_marker(gid, task_id), b"1", ttl=self._ttl(keep))
                if record is not None:
                    batch.put(self._callback_key(gid), record, ttl=counter_ttl)
                    self._note_firing(batch, db, add=[gid])
        return _TakenOver(0)

    def _count_part(
        self,
        key: bytes,
        gid: str,
        task_id: str | None,
        keep: float | None,
        claim: bytes = b"",
        chord_sig: Any = None,
        group_index: Any = None,
    ) -> int | None:
        """Add one to the chord counter for ``task_id``, once; None if that part was counted already.

        The "counted" marker and the new count are written in one batch under
        the write lock, so a redelivered task is not counted twice and a crash
        can't leave one without the other. The part that brings the count to
        zero writes ``claim`` in the same batch: it owns the callback for
        :meth:`_chord_claim_ttl` seconds. A part delivered again (its worker
        was killed, ``acks_late``) finds its marker; if the count is zero, the
        chord has not been cleaned up and the claim has lapsed, the process
        that was sending the callback died, and this part claims the chord
        and sends it (0 is returned).

        A part delivered again after the chord has fired and been cleaned up
        finds neither its marker, nor the counter, nor the saved group: it is
        not counted (None), so it leaves no counter or marker behind. While a
        chord runs its group is always there (the client saves it before
        sending any part), and a group lost meanwhile leaves the counter, so
        the last part still reports the lost group. A chord whose header was
        a generator has no group yet (see :meth:`_apply_chord_incr`): each
        part records its header position (``group_index``) and task id in a
        slot of its own, in the same batch, and the part that completes the
        chord saves the group built from them in its batch, so the chord
        goes on from there (the join, a take-over, the recovery) as any other.

        The part that completes the chord also records the callback and notes
        the chord among those being fired, in the same batch, so that
        :meth:`recover_chords` can send it if that process dies and no part
        is delivered again.
        """
        db = self.db
        if not task_id:
            left = db.incr(key)
            self.expire(key, self._chord_counter_ttl())
            return left
        marker = self._part_marker(gid, task_id)
        claim_key = self._claim_key(gid)
        claim_ttl = self._chord_claim_ttl()
        with db.locked():
            if marker in db:
                if claim and db.get(key) == b"0" and claim_key not in db:
                    logger.warning(
                        "chord %s: part %s finished again after the process sending the callback "
                        "was lost; sending it from here",
                        gid,
                        task_id,
                    )
                    db.put(claim_key, claim, ttl=claim_ttl)
                    return _TakenOver(0)
                logger.warning("chord %s: part %s finished again; it was counted already", gid, task_id)
                return None
            if self._damaged_key(gid) in db:
                logger.warning("chord %s failed for a damaged record; part %s not counted", gid, task_id)
                return None
            raw = db.get(key)
            group_key = ensure_bytes(self.get_key_for_group(gid))
            slots = None if group_key in db else db.get(self._slots_key(gid))
            if raw is None and slots is None and group_key not in db:
                logger.warning(
                    "chord %s: part %s finished again after the chord was complete; ignored", gid, task_id
                )
                return None
            left = (int(raw) if raw is not None else 0) + 1
            record = self._encode_callback(gid, chord_sig) if left == 0 and claim else None
            counter_ttl = self._ttl(self._chord_counter_ttl())
            with db.batch() as batch:
                batch.put(marker, b"1", ttl=self._ttl(keep))
                batch.put(key, str(left).encode(), ttl=counter_ttl)
                if slots is not None:  # a generator header: this part's position, or the whole group
                    slot = int(slots) + 1
                    if left == 0:
                        batch.delete(self._slots_key(gid))
                        header = self._slotted_group(db, gid, slot, (group_index, task_id), batch)
                        if header is not None:
                            batch.put(group_key, header, ttl=self._ttl(keep))
                    else:
                        entry = json.dumps([group_index, task_id]).encode()
                        batch.put(self._slots_key(gid), str(slot).encode(), ttl=counter_ttl)
                        batch.put(self._slot_key(gid, slot), entry, ttl=counter_ttl)
                if left == 0 and claim:
                    batch.put(claim_key, claim, ttl=claim_ttl)
                    if record is not None:
                        batch.put(self._callback_key(gid), record, ttl=self._ttl(self._chord_counter_ttl()))
                        self._note_firing(batch, db, add=[gid])
        return left

    def _encode_callback(self, gid: str, chord_sig: Any) -> bytes | None:
        """The chord's callback as stored for :meth:`recover_chords`; None if it cannot be encoded."""
        if chord_sig is None:
            return None
        record: dict[str, Any] = {"callback": dict(chord_sig)}
        parent = self.app.current_worker_task
        if parent is not None:
            # Sent from here, the callback's message takes its root, parent and (with
            # task_inherit_parent_priority) priority from this task: the recovery, which
            # sends it from a thread running no task, stands in for it (see _sending_from).
            request = parent.request
            record["parent"] = {
                "name": parent.name,
                "id": request.id,
                "root_id": request.root_id,
                "priority": (request.delivery_info or {}).get("priority"),
            }
        # With the serializer of the task messages, which carried the callback to this
        # part: the result serializer could change it (json makes tuples lists).
        serializer = self.app.conf.task_serializer
        try:
            content_type, encoding, payload = kombu_dumps(record, serializer=serializer)
            return b"%s\0%s\0%s" % (ensure_bytes(content_type), ensure_bytes(encoding), ensure_bytes(payload))
        except Exception as exc:
            # Only the automatic recovery is lost: a redelivered part still sends the callback.
            logger.warning(
                "chord %s: its callback cannot be stored with the task serializer (%r); if the "
                "process sending it dies, only a part delivered again can send it",
                gid,
                exc,
            )
            return None

    def _decode_callback(self, record: bytes) -> dict[str, Any]:
        """The stored callback record: ``{"callback": ..., "parent": ...}`` (see :meth:`_encode_callback`)."""
        if record.startswith(b"application/") and record.count(b"\0") >= 2:
            content_type, encoding, payload = record.split(b"\0", 2)
            decoded: dict[str, Any] = kombu_loads(
                payload,
                bytes_to_str(content_type),
                bytes_to_str(encoding),
                accept=prepare_accept_content(self.app.conf.accept_content),
            )
            return decoded
        stored = self.decode(record)  # stored with the result serializer by the first release
        return stored if "callback" in stored else {"callback": stored}

    def _callback_key(self, gid: str) -> bytes:
        return ensure_bytes(self.get_key_for_chord(gid, ".callback"))

    def _firing_key(self) -> bytes:
        """The key listing the chords whose callback is being sent (Celery's global key prefix first)."""
        prefix = self.chord_keyprefix[: len(self.chord_keyprefix) - len(KeyValueStoreBackend.chord_keyprefix)]
        return ensure_bytes(prefix) + b"kvb-chords-firing"

    def _firing(self, db: DB) -> list[str]:
        """The group ids of the chords being fired (the write lock held, or a snapshot).

        An unreadable list is read as the chords whose callback is stored
        (see :meth:`_repair_firing`).
        """
        raw = self._firing_record(db)
        if raw is None:
            return []
        gids = self._parse_firing(raw)
        return gids if gids is not None else self._stored_callbacks(db)

    def _firing_record(self, db: DB) -> bytes | None:
        """The stored list of chords being fired; ``b""`` (unreadable) for one damaged on disk.

        A record failing its checksum would otherwise fail every chord's completion and end,
        which all read the list, and every round of the recovery, for good.
        """
        try:
            return db.get(self._firing_key())
        except CorruptionError as exc:
            logger.error("the list of chords being fired is damaged: %s", exc)
            return b""

    @staticmethod
    def _parse_firing(raw: bytes) -> list[str] | None:
        """The group ids in a stored list of chords being fired; None if it is unreadable."""
        try:
            gids = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(gids, list) or not all(isinstance(g, str) for g in gids):
            return None
        return gids

    def _stored_callbacks(self, db: DB) -> list[str]:
        """The group ids of the chords whose callback is stored: a scan, only to rebuild a lost list."""
        prefix, suffix = ensure_bytes(self.chord_keyprefix), b".callback"
        return [
            bytes_to_str(k[len(prefix) : -len(suffix)]) for k in db.keys(prefix=prefix) if k.endswith(suffix)
        ]

    def _repair_firing(self, db: DB) -> None:
        """Rebuild an unreadable list of chords being fired from the stored callbacks, once.

        Read as empty, it would hide the chords it held from the recovery for good.
        """
        key = self._firing_key()
        with db.locked():
            raw = self._firing_record(db)
            if raw is None or self._parse_firing(raw) is not None:
                return  # another process rebuilt it
            gids = self._stored_callbacks(db)
            logger.error(
                "the list of chords being fired (%r) was unreadable; rebuilt it from the %d stored callbacks",
                raw[:100],
                len(gids),
            )
            if gids:
                db.put(key, json.dumps(gids).encode(), ttl=self._ttl(self._chord_counter_ttl()))
            else:
                db.delete(key)

    def _note_firing(self, batch: Any, db: DB, add: Iterable[str] = (), drop: Iterable[str] = ()) -> None:
        """Add ``add`` to and remove ``drop`` from the list of chords being fired, in ``batch``.

        Call it with the write lock held: it reads the list, then writes it in the batch.
        """
        gids = self._firing(db)
        dropped = set(drop)
        new = [g for g in gids if g not in dropped]
        new += [g for g in add if g not in new]
        if new == gids:
            return
        if new:
            batch.put(self._firing_key(), json.dumps(new).encode(), ttl=self._ttl(self._chord_counter_ttl()))
        else:
            batch.delete(self._firing_key())

    def recover_chords(self) -> int:
        """Send the callback of each chord whose sender was lost; return how many chords were taken over.

        A chord is stuck when all its parts are counted, the claim of the
        process that completed it has lapsed, and it was not cleared: that
        process died (killed while sending the callback) and, as Celery 5.7
        acknowledges a part that stored its result before its pool process
        was lost, no part may ever be delivered again. Each worker process
        calls this every :attr:`chord_recovery_interval` seconds and when it
        starts. It takes such a chord over exactly as a redelivered part does
        (the claim is taken under the write lock, so one process wins), and
        sends the callback unless the callback has a finished state (then it
        only clears the chord). It reads one key, the list of chords being
        fired, so it costs next to nothing when there is nothing to do.
        """
        db = self.db
        taken = 0
        raw = self._firing_record(db)
        firing = [] if raw is None else self._parse_firing(raw)
        if firing is None:
            self._repair_firing(db)
            firing = self._firing(db)
        for gid in firing:
            key = ensure_bytes(self.get_key_for_chord(gid))
            claim_key = self._claim_key(gid)
            claim = uuid.uuid4().hex.encode()
            try:
                count = db.get(key)
                if count is not None and (count != b"0" or claim_key in db):
                    continue  # owned by a live process: the usual case, seen without the write lock
                with db.locked():
                    count = db.get(key)
                    record = db.get(self._callback_key(gid))
                    if count is None or record is None:
                        # Expired with the chord (result_chord_expires): nothing left to send.
                        with db.batch() as batch:
                            batch.delete(self._callback_key(gid))
                            self._note_firing(batch, db, drop=[gid])
                        continue
                    if count != b"0" or claim_key in db:
                        continue  # still owned by a live process (or not complete)
                    db.put(claim_key, claim, ttl=self._chord_claim_ttl())
            except CorruptionError as exc:
                record = self._recover_damaged(db, gid, key, claim, exc)
                if record is None:
                    continue
            logger.warning(
                "chord %s: the process sending its callback was lost and no part came again; "
                "taking it over here",
                gid,
            )
            taken += 1
            try:
                stored = self._decode_callback(record)
                chord_sig, parent = stored["callback"], stored.get("parent")
            except Exception as exc:
                logger.error("chord %s: its stored callback cannot be read (%r); clearing it", gid, exc)
                self._end_chord(gid, key, None)
                continue
            try:
                with _sending_from(parent):
                    self._run_chord_callback(gid, chord_sig, key, claim, taken_over=True)
            except CorruptionError as exc:  # the round goes on with the other chords
                logger.error("chord %s: a record of it is damaged (%s); not finished in this round", gid, exc)
        return taken

    def _recover_damaged(
        self, db: DB, gid: str, key: bytes, claim: bytes, exc: CorruptionError
    ) -> bytes | None:
        """The stored callback of a stuck chord whose count is damaged, once claimed.

        Its count failing its checksum (a disk fault), the chord is taken over as a part meeting
        that damage takes it over (see :meth:`_take_damaged`: its callback is stored, so the chord
        was complete, and the callback is sent); None if another process owns the chord. A damaged
        stored callback cannot be sent by any round, and each would fail on it: the chord is left
        out of the recovery (a part delivered again, which carries the callback, can still send it).
        """
        try:
            record = db.get(self._callback_key(gid))
        except CorruptionError as damaged:
            logger.error("chord %s: a record of it is damaged (%s); the recovery leaves it", gid, damaged)
            record = None
        if record is None:  # (or expired with the chord: nothing left to send)
            with db.locked(), db.batch() as batch:
                self._note_firing(batch, db, drop=[gid])
            return None
        if self._take_damaged(key, gid, None, None, claim, None, exc) is None:
            return None
        return record

    def _claim_key(self, gid: str) -> bytes:
        return ensure_bytes(self.get_key_for_chord(gid, ".claim"))

    def _chord_claim_ttl(self) -> float:
        """How long the part that completes a chord owns it before a redelivered part may take over.

        Twice the longest join (``result_chord_join_timeout``; 5 s when it is
        unbounded), so a live owner is never overtaken while it joins.
        """
        join = self.app.conf.get("result_chord_join_timeout")
        return max(self.chord_claim_min, 2.0 * (join or 5.0))

    def _chord_publish_ttl(self, callback: Any) -> float:
        """The claim's lifetime while the callback is sent: the join's plus the publish retries' budget."""
        conf = self.app.conf
        policy = dict(conf.get("task_publish_retry_policy") or {})
        policy.update(callback.options.get("retry_policy") or {})
        retry = callback.options.get("retry", conf.get("task_publish_retry", True))
        retries = policy.get("max_retries", 3) if retry else 0
        retries = 3 if retries is None else max(int(retries), 0)
        per_try = float(conf.get("broker_connection_timeout") or 4.0)
        per_try += float(policy.get("interval_max", 1) or 0)
        return self._chord_claim_ttl() + (retries + 1) * per_try

    def _keep_claim(self, gid: str, key: bytes, claim: bytes, ttl: float) -> bool:
        """Extend this process's claim on the chord to ``ttl`` seconds; False if another process owns it.

        A claim that lapsed (a slow join) is taken back as long as the chord is
        still complete and nobody else has claimed it.

        A claim damaged on disk cannot tell its owner: it is taken as another process's, so
        nobody sends the callback until it expires (seconds), and then the recovery takes the
        chord over. A damaged count was 0 when this process claimed the chord, and nobody else
        can have claimed it since: a process taking over a chord reads its count (and a chord
        failed for that damage gets a new one, see :meth:`_take_damaged`).
        """
        db = self.db
        claim_key = self._claim_key(gid)
        with db.locked():
            try:
                current = db.get(claim_key)
            except CorruptionError as exc:
                logger.error("chord %s: its claim is damaged (%s); left until it expires", gid, exc)
                return False
            if current not in (None, claim) or self._count_of(db, gid, key) != b"0":
                return False
            db.put(claim_key, claim, ttl=ttl)
        return True

    @staticmethod
    def _count_of(db: DB, gid: str, key: bytes) -> bytes | None:
        """The chord's stored count; ``b"0"`` for one damaged on disk (see :meth:`_keep_claim`)."""
        try:
            return db.get(key)
        except CorruptionError as exc:
            logger.error("chord %s: its count is damaged (%s)", gid, exc)
            return b"0"

    def _part_marker(self, gid: str, task_id: str) -> bytes:
        return ensure_bytes(self.get_key_for_chord(gid, f".part.{task_id}"))

    def _restore_chord_group(self, gid: str, chord_sig: Any) -> GroupResult | None:
        """The chord's saved header group, or None after recording a ChordError on the callback."""
        try:
            deps = GroupResult.restore(gid, backend=self)
        except Exception as exc:
            logger.exception("chord %s: cannot restore its group", gid)
            self.chord_error_from_stack(
                maybe_signature(chord_sig, app=self.app), _chord_error(f"Cannot restore group: {exc!r}", exc)
            )
            return None
        if deps is None:
            # chord_error_from_stack records the traceback of the exception being handled.
            try:
                raise ChordError(f"GroupResult {gid} no longer exists (expired or deleted before the end)")
            except ChordError as exc:
                logger.error("chord %s: %s", gid, exc)
                self.chord_error_from_stack(maybe_signature(chord_sig, app=self.app), exc)
        return deps

    def _run_chord_callback(
        self, gid: str, chord_sig: Any, key: bytes, claim: bytes, taken_over: bool = False
    ) -> Any:
        callback = maybe_signature(chord_sig, app=self.app)
        if taken_over and self._callback_finished(callback):
            # The process that sent the callback (or stored its ChordError) died
            # before clearing the chord's keys.
            logger.warning(
                "chord %s: its callback %s has finished already, so it was sent; not sending it again",
                gid,
                callback.id,
            )
            self._end_chord(gid, key, self._saved_group(gid))
            return None
        reason = self._damage_reason(self.db, gid)
        if reason is not None:
            return self._fail_for_damage(gid, callback, key, claim, reason)
        deps = self._restore_chord_group(gid, chord_sig)
        if deps is None:
            db = self.db
            with db.locked(), db.batch() as batch:  # the parts' markers expire with _chord_counter_ttl()
                batch.delete(ensure_bytes(key))
                batch.delete(self._claim_key(gid))
                batch.delete(self._callback_key(gid))
                self._note_firing(batch, db, drop=[gid])
            return None
        owner = joined = False
        publish_ttl = self._chord_publish_ttl(callback)
        try:
            try:
                join = deps.join_native if deps.supports_native_join else deps.join
                with allow_join_result():
                    values = join(timeout=self.app.conf.result_chord_join_timeout, propagate=True)
                joined = True  # (every part succeeded: a failed one raises)
            except Exception as exc:
                cause: BaseException = exc
                try:
                    culprit = _failed_part(deps.results)
                except CorruptionError as damaged:
                    # A part's stored result fails its checksum: it can never be read, so the
                    # chord fails, naming the record, rather than being taken over for ever.
                    culprit, cause = None, damaged
                if culprit is not None:
                    # The join may stop at another failed part than the first one: name the
                    # culprit with its own exception, not another part's.
                    own = culprit.result
                    cause = own if isinstance(own, BaseException) else exc
                reason = f"Dependency {culprit.id} raised {cause!r}" if culprit is not None else repr(cause)
                owner = self._keep_claim(gid, key, claim, publish_ttl)
                if not owner:
                    return self._taken_over(gid)
                logger.error("chord %s failed: %s", gid, reason)
                return self.chord_error_from_stack(callback, _chord_error(reason, cause))
            owner = self._keep_claim(gid, key, claim, publish_ttl)
            if not owner:
                return self._taken_over(gid)
            try:
                return self._publish_callback(callback, values)
            except Exception as exc:
                logger.exception("chord %s: cannot send its callback", gid)
                return self.chord_error_from_stack(callback, _chord_error(f"Callback error: {exc!r}", exc))
        finally:
            if owner:
                self._end_chord(gid, key, deps, succeeded=joined)

    def _saved_group(self, gid: str) -> GroupResult | None:
        """The chord's saved header group, if it can be read, only to end the chord."""
        try:
            return GroupResult.restore(gid, backend=self)
        except Exception:
            return None

    def _fail_for_damage(self, gid: str, callback: Any, key: bytes, claim: bytes, reason: str) -> Any:
        """Fail the callback of a chord that a damaged record keeps from completing, and end the chord.

        Only as the owner of its claim (see :meth:`_take_damaged`): once, and never as well as sent.
        """
        if not self._keep_claim(gid, key, claim, self._chord_publish_ttl(callback)):
            return self._taken_over(gid)
        try:
            try:
                raise ChordError(reason)
            except ChordError as exc:  # chord_error_from_stack records the traceback being handled
                return self.chord_error_from_stack(callback, exc)
        finally:
            self._end_chord(gid, key, self._saved_group(gid))

    def _publish_callback(self, callback: Any, values: Any) -> Any:
        """Send the chord's callback, retrying a refused publish as Celery's own backends do.

        Celery 5.7+ sends a chord callback through ``app.amqp._retry_publish``,
        which retries (reconnecting) a publish the broker refused, up to the
        publish retry policy; a plain ``delay()`` fails the whole chord with a
        ChordError at the first refusal. Earlier releases have no such step.
        """
        retry_publish = getattr(self.app.amqp, "_retry_publish", None)
        if retry_publish is None:
            return callback.delay(values)
        return retry_publish(callback.delay, values)

    @staticmethod
    def _taken_over(gid: str) -> None:
        # Only the owner of the claim finishes the chord: this process was too slow,
        # and a redelivered part took the chord over and sends its callback.
        logger.warning("chord %s: another process took over its callback; not sending it from here", gid)

    def _callback_finished(self, callback: Any) -> bool:
        """True if the chord's callback has a finished state here: it was sent (or failed with a ChordError).

        Only a finished state (``SUCCESS``, ``FAILURE``, ``REVOKED``) proves
        it: a callback that replaces a task (``Task.replace()`` with a group
        makes a chord whose callback takes the replaced task's id) finds that
        task's ``STARTED`` or progress states under its id before it is sent.
        No finished state proves nothing: the callback may still wait in the
        broker, run, ignore its result, or keep it in another backend; nor does
        a record damaged on disk, which no read gets back.
        """
        callback_id = getattr(callback, "id", None)
        if not callback_id or isinstance(callback, group):
            return False
        try:
            return self._stored_state(callback_id) in states.READY_STATES
        except CorruptionError:
            return False

    def _end_chord(self, gid: str, key: bytes, deps: GroupResult | None, succeeded: bool = False) -> None:
        """Drop the chord's saved group, counter, claim, markers and stored callback, in one write.

        One write: a process killed after sending the callback leaves either
        the whole chord (a redelivered part then finds it) or none of it.
        The tasks of groups nested in the header are parts too, and Celery
        announces each nested group's size under its own id: that counter,
        never reached by a part, goes as well. ``succeeded``: every part is known to have succeeded.
        """
        self._cache.pop(gid, None)
        results = deps.results if deps is not None else []
        parts = list(_header_parts(results))
        db = self.db
        with db.locked(), db.batch() as batch:
            batch.delete(ensure_bytes(self.get_key_for_group(gid)))
            batch.delete(ensure_bytes(key))
            batch.delete(self._claim_key(gid))
            batch.delete(self._callback_key(gid))
            batch.delete(self._damaged_key(gid))
            self._note_firing(batch, db, drop=[gid])
            for dep in parts:
                batch.delete(self._part_marker(gid, dep.id))
            for nested in _nested_groups(results):
                if getattr(nested, "id", None):
                    batch.delete(ensure_bytes(self.get_key_for_chord(nested.id)))
        # The chord is over: header results get back their normal lifetime, which for a failed
        # part is result_failure_expires (its state is read only where a part may have failed
        # and that lifetime differs).
        by_state = not succeeded and self._ttl(self.failure_expires) != self._ttl(self.expires)
        for dep in parts:
            try:
                state = self._stored_state(dep.id) if by_state else None
                self.expire(self.get_key_for_task(dep.id), self._lifetime(state))
            except CorruptionError as exc:  # a damaged record: left as it is (kvb check lists it)
                logger.warning("chord %s: the stored result of part %s is damaged: %s", gid, dep.id, exc)

    # ---------------------------------------------------------------- waiting

    @staticmethod
    def _wait_cap(interval: float | None) -> float:
        """Longest single sleep: waits end early on any write, this only paces ``on_interval``."""
        return interval if interval and interval > 0 else 1.0

    def _check_not_eager(self) -> None:
        check = getattr(self, "_ensure_not_eager", None)
        if check is not None:
            check()

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Callable[[], Any] | None = None,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Block until the task is ready and return its meta; wakes on the store's next write.

        ``on_message`` is called with the meta of each stored state seen while
        waiting (``STARTED``, custom progress states..., the final one), as
        Celery's redis backend calls it for each state message.

        ``interval`` only paces ``on_interval`` (and bounds each sleep): the
        result is seen typically within a millisecond of being written, up to
        about 2 ms into a long wait (docs/engine.md, waiting for changes). A result
        that became ready while waiting is followed by one more
        ``on_interval`` call before it is returned, as Celery's redis backend
        does after every message: ``AsyncResult.get()`` passes its check of
        the parents there, so a failed parent (a chord's header) is raised
        rather than the ChordError its failure left on this task, whenever
        the failure lands.
        """
        self._check_not_eager()
        cap = self._wait_cap(interval)
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        next_tick = now
        waited = False
        seen: dict[str, Any] | None = None
        while True:
            db = self.db  # a store deleted meanwhile is opened anew
            token = db.change_token()
            meta: dict[str, Any] = self.get_task_meta(task_id)
            if on_message is not None and meta["status"] != states.PENDING and meta != seen:
                seen = meta
                on_message(meta)
            if meta["status"] in states.READY_STATES:
                if waited and on_interval is not None:
                    on_interval()
                return meta
            now = time.monotonic()
            if on_interval is not None and now >= next_tick:
                on_interval()
                next_tick = now + cap
            if deadline is not None and now >= deadline:
                raise CeleryTimeoutError("The operation timed out.")
            nap = min(cap, next_tick - now) if on_interval is not None else cap
            if deadline is not None:
                nap = min(nap, deadline - now)
            db.wait_for_change(token, max(nap, 0.0))
            waited = True

    def wait_for_pending(
        self,
        result: AsyncResult,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        callback: Callable[..., Any] | None = None,
        propagate: bool = True,
    ) -> Any:
        """``AsyncResult.get()``'s wait, with ``on_message`` (which Celery's synchronous backends refuse)."""
        meta = self.wait_for(
            result.id,
            timeout=timeout,
            interval=interval,
            no_ack=no_ack,
            on_interval=on_interval,
            on_message=on_message,
        )
        result._maybe_set_cache(meta)
        return result.maybe_throw(propagate=propagate, callback=callback)

    def get_many(
        self,
        task_ids: Iterable[str],
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        max_iterations: int | None = None,
        READY_STATES: frozenset[str] = states.READY_STATES,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(task_id, meta)`` as each task becomes ready, waking on the store's writes.

        ``max_iterations`` bounds the number of reads of the pending results
        (1 = look once and return without waiting).
        """
        self._check_not_eager()
        pending = {bytes_to_str(t) for t in task_ids}
        cache = self._cache
        for task_id in list(pending):
            cached = cache.get(task_id)
            if cached is not None and cached["status"] in READY_STATES:
                pending.discard(task_id)
                yield task_id, cached
        if not pending:
            return
        cap = self._wait_cap(interval)
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        next_tick = now
        passes = 0
        while pending:
            db = self.db  # a store deleted meanwhile is opened anew
            token = db.change_token()
            ids = list(pending)
            values = self.mget([self.get_key_for_task(t) for t in ids])
            for task_id, raw in zip(ids, values, strict=True):
                if raw is None:
                    continue
                meta = self.decode_result(raw)
                if meta["status"] not in READY_STATES:
                    continue
                pending.discard(task_id)
                cache[task_id] = meta
                if on_message is not None:
                    on_message(meta)
                yield task_id, meta
            passes += 1
            if not pending or (max_iterations and passes >= max_iterations):
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise CeleryTimeoutError(f"Operation timed out ({timeout})")
            if on_interval is not None and now >= next_tick:
                on_interval()
                next_tick = now + cap
            nap = min(cap, next_tick - now) if on_interval is not None else cap
            if deadline is not None:
                nap = min(nap, deadline - now)
            db.wait_for_change(token, max(nap, 0.0))

    # --------------------------------------------------------------- pickling

    def __reduce__(self, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        # The open store stays behind: the copy opens its own on first use.
        kwargs = dict(kwargs or {}, url=self.url, expires=self.expires)
        return super().__reduce__(args, kwargs)

    def __repr__(self) -> str:
        return f"<KVBackend {self.path!r}>"


# ------------------------------------------------------------ chord recovery


class _PartStandIn:
    """Stands, while the recovery sends a chord's callback, for the part that completed the chord.

    Celery gives a task sent from within a worker task that task as its
    parent (``parent_id``), its root (``root_id``) and, with
    ``task_inherit_parent_priority``, its priority; the callback keeps
    exactly what the original send would have given it.
    """

    def __init__(self, parent: dict[str, Any]) -> None:
        self.name = parent.get("name")  # Celery's task log format shows it
        self.request = Context(
            id=parent.get("id"),
            root_id=parent.get("root_id"),
            delivery_info={"priority": parent.get("priority")},
            called_directly=False,
        )

    def add_trail(self, result: Any) -> Any:
        return result  # the part's result is stored already: its children stay as they were


@contextlib.contextmanager
def _sending_from(parent: dict[str, Any] | None) -> Iterator[None]:
    """Send tasks, in this thread, as if from the part described by ``parent`` (None: as is)."""
    if not parent:
        yield
        return
    _task_stack.push(_PartStandIn(parent))
    try:
        yield
    finally:
        _task_stack.pop()


# The process (pid) in which each app's recovery thread runs, by id(app): a thread does not
# survive fork, so a forked child starts its own.
_recovery_pids: dict[int, int] = {}
_recovery_lock = threading.Lock()


def start_chord_recovery(app: Any) -> bool:
    """Start this process's thread that runs :meth:`KVBackend.recover_chords` for ``app``.

    It looks at once (a chord stuck while no worker ran is finished when one
    starts), then every ``chord_recovery_interval`` seconds. Only one thread
    per app and process; False if there is one already, or if ``app`` does
    not use this backend (or uses a read-only store, which cannot finish
    chords). Worker processes call it at their start (see the signal handlers
    below), when a pool child builds its backend, and at their first chord part.
    """
    if _recovery_pids.get(id(app)) == os.getpid():
        return False
    try:
        backend = app.backend
    except Exception:  # another backend's configuration error is its own business
        with _recovery_lock:
            _recovery_pids[id(app)] = os.getpid()
        return False
    return _start_recovery_thread(app, backend)


def _start_recovery_thread(app: Any, backend: Any) -> bool:
    """Start the recovery thread of ``app`` (whose backend is ``backend``), once per process."""
    pid = os.getpid()
    with _recovery_lock:
        if _recovery_pids.get(id(app)) == pid:
            return False
        _recovery_pids[id(app)] = pid
    if not isinstance(backend, KVBackend) or backend.options.get("read_only"):
        return False
    # Blocking the process's signals: the thread runs in every prefork pool child, and a
    # SIGTERM it took would never interrupt the child's main thread (see kv_backend.threads).
    start_daemon_thread(_recovery_loop, "kvb-chord-recovery", (app,))
    return True


def _in_pool_child() -> bool:
    """True in a prefork pool child (Celery's process initializer ran in this process or a parent)."""
    prefork = sys.modules.get("celery.concurrency.prefork")
    return prefork is not None and getattr(prefork, "_process_hostname", None) is not None


def _recovery_loop(app: Any) -> None:
    failures = 0
    interval = KVBackend.chord_recovery_interval
    while True:
        try:
            backend = app.backend  # this thread's own backend instance (Celery keeps one per thread)
            interval = backend.chord_recovery_interval
            backend.recover_chords()
            failures = 0
        except Exception:
            failures += 1
            if failures == 1:  # the store or the broker unreachable: say it once, keep trying
                logger.exception("kv_backend chord recovery failed; trying again")
        time.sleep(max(float(interval), 0.01))


def _start_recovery_late(app: Any, request: Any) -> None:
    """Start the recovery in a worker process whose start signal came before this module was loaded.

    Not in a prefork worker's main process (its pool children run it, and a
    thread there could hold a lock while the pool forks a new child), nor
    for eager tasks or calls made outside a worker.
    """
    if not getattr(request, "hostname", None) or getattr(request, "is_eager", False):
        return
    if "celery.concurrency.prefork" in sys.modules:
        from billiard.process import current_process

        if current_process().name == "MainProcess":
            return
    start_chord_recovery(app)


@signals.worker_process_init.connect(weak=False, dispatch_uid="kv_backend_celery.chord_recovery.child")
def _recover_chords_in_pool_child(**kwargs: Any) -> None:
    """A prefork pool child starts its recovery thread (the children send the callbacks)."""
    from celery import current_app

    start_chord_recovery(current_app._get_current_object())


@signals.worker_ready.connect(weak=False, dispatch_uid="kv_backend_celery.chord_recovery.worker")
def _recover_chords_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """A worker whose tasks run in its own process (solo, threads, gevent...) starts the recovery."""
    app = getattr(sender, "app", None)
    if app is None:
        return
    prefork = sys.modules.get("celery.concurrency.prefork")
    if prefork is not None and isinstance(getattr(sender, "pool", None), prefork.TaskPool):
        # Its pool children run it; none in this process, where a thread could hold
        # a lock while the pool forks a new child.
        with _recovery_lock:
            _recovery_pids[id(app)] = os.getpid()
        return
    start_chord_recovery(app)
