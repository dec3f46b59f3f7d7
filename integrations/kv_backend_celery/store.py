"""The store behind the result backend: one open store per process, and the backend's reads and writes.

The store opens on first use in each process and is opened anew if its
directory was deleted or replaced; :class:`StoreBackend` keeps Celery's keys
in it with the result lifetimes as TTLs.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celery import states
from celery.backends.base import KeyValueStoreBackend
from celery.exceptions import BackendStoreError

if TYPE_CHECKING:  # kombu leaves them unannotated

    def bytes_to_str(s: bytes | str) -> str: ...
    def ensure_bytes(s: bytes | str) -> bytes: ...

else:
    from kombu.utils.encoding import bytes_to_str, ensure_bytes

from kv_backend import DB
from kv_backend.errors import (
    CorruptionError,
    MergeInProgressError,
    NotAStoreError,
    StorageError,
    StoreNotFoundError,
    ValueTooLargeError,
)
from kv_backend.files import STATE_FILE
from kv_backend_celery.config import _seconds, chord_join_timeout, parse_url, read_only_error

__all__ = ["StoreBackend", "bytes_to_str", "ensure_bytes", "read_only_workers"]

# The backend's one logger, whatever module logs: the name users configure.
logger = logging.getLogger("kv_backend_celery.backend")

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


# One open DB per (path, options) and process, shared by every backend instance
# (Celery makes one backend per thread). Weak values: a store no backend uses
# any more is closed by the garbage collector.
_shared: weakref.WeakValueDictionary[tuple[str, tuple[tuple[str, Any], ...]], DB] = (
    weakref.WeakValueDictionary()
)
_shared_lock = threading.Lock()
# The identity of the store each open DB found (see _store_identity).
_identities: weakref.WeakKeyDictionary[DB, tuple[Any, ...] | None] = weakref.WeakKeyDictionary()

#: The apps of this process (and of its forked pool processes) whose worker started on a
#: ``read_only=1`` URL because every task ignores its results (see kv_backend_celery.worker_check):
#: a state such a worker is asked to store after all is dropped with an error in its log.
read_only_workers: weakref.WeakSet[Any] = weakref.WeakSet()


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
    """A forked child gets a new module lock: one held by another thread of the parent at the fork
    (opening the store) would be held for ever in the child."""
    global _shared_lock
    _shared_lock = threading.Lock()


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


# The apps whose backends use each open store (see _hook_app_close).
_users: weakref.WeakKeyDictionary[DB, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()


def _hook_app_close(app: Any) -> None:
    """Make ``app.close()`` (also run at the end of ``with Celery(...) as app``) release the stores
    the app's result backends opened: Celery's close does not reach its backends, and a store holds
    files and locks. Done once per app, on the instance; the app's own close runs first."""
    if vars(app).get("_kvb_close_hooked"):
        return
    own = vars(app).get("close")  # one set on the instance before, kept
    app_ref = weakref.ref(app)  # (no cycle through the app's own attribute)

    def close() -> None:
        target = app_ref()
        try:
            if own is not None:
                own()
            elif target is not None:
                type(target).close(target)
        finally:
            if target is not None:
                _release(target)

    close.__doc__ = type(app).close.__doc__
    app.close = close
    app._kvb_close_hooked = True


def _use(db: DB, app: Any) -> None:
    """Note that ``app``'s backend uses ``db``."""
    with _shared_lock:
        _users.setdefault(db, weakref.WeakSet()).add(app)


def _release(app: Any) -> None:
    """Close every store ``app`` used that no other app of this process uses (their backends open
    it again at their next use)."""
    with _shared_lock:
        unused = []
        for db, apps in list(_users.items()):
            if app in apps:
                apps.discard(app)
                if not apps:
                    unused.append(db)
                    del _users[db]
    for db in unused:
        db.close()


class StoreBackend(KeyValueStoreBackend):
    """Celery's key-value backend on a kv_backend store: results stored and read, with their lifetimes.

    The store opens on first use in each process (so the backend can be built
    in a parent and used in forked or unpickled worker processes), and writes
    are visible to every other process at once.
    """

    supports_autoexpire = True
    supports_native_join = True
    supports_result_compression = True
    supports_failure_expires = True
    implements_incr = True
    persistent = True
    #: The result lifetime in seconds (None: for ever), set from result_expires.
    expires: float | None

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
        chord_join_timeout(self.app.conf)  # checked here too: read when a chord completes
        self._db: DB | None = None
        _hook_app_close(self.app)
        self._missing = False  # a read-only store found missing was logged (see _reader)

    # ------------------------------------------------------------------ store

    @property
    def db(self) -> DB:
        """The store, opened on first use in this process and reopened if it was closed."""
        db = self._db
        if db is None or not _is_current(db, self.path):
            db = self._db = _open_shared(self.path, self.options)
            _use(db, self.app)
        return db

    def _reader(self) -> DB | None:
        """The store to read results from; None for a read-only backend whose store does not exist.

        A read-only client (a web process that only reads results) may start before any worker
        has created the store, or find it deleted and not yet created again by a worker: its
        results are not stored yet, as with any backend (``PENDING``), and ``get()`` waits until a
        worker creates the store and stores them, instead of raising StoreNotFoundError at once.
        """
        try:
            return self.db
        except StoreNotFoundError as exc:
            if not self.options.get("read_only"):
                raise
            if not self._missing:
                self._missing = True
                logger.warning(
                    "%s; reading every result as not stored yet (PENDING) until a worker creates the "
                    "store (check the path if no worker uses it)",
                    exc.strerror or exc,
                )
            return None

    def _check_writable(self, what: str, key: bytes | str | None = None) -> None:
        """Raise ReadOnlyError naming the URL's ``read_only=1`` if this backend cannot do ``what`` (a
        write, of ``key`` if given: the message is made only then).

        The engine's own message speaks of ``DB(read_only=True)``, which a Celery user never wrote.
        """
        if self.options.get("read_only"):
            raise read_only_error(self.url, what if key is None else f"{what} {bytes_to_str(key)}")

    def _writer(self, what: str, key: bytes | str) -> DB:
        """The store, to do ``what`` to ``key``: a missing read-only store raises StoreNotFoundError
        (as a read finds it), then a read-only backend ReadOnlyError naming ``read_only=1``."""
        db = self.db
        self._check_writable(what, key)
        return db

    def _dropped_by_read_only_worker(self, what: str, task_id: Any, request: Any, outcome: str) -> bool:
        """True (with an error logged) if this is a worker on a read_only=1 URL, which drops ``what``
        (a write, naming the task as ``{task}``).

        Such a worker starts only if every task ignores its results; a call that asks for its
        result after all (``apply_async(..., ignore_result=False)``), or a chord part run there,
        raised ReadOnlyError from the worker's own handling of the task: a solo worker exited
        ("Unrecoverable error"), a prefork one logged two tracebacks and no outcome. The task runs
        as usual and what it would store is dropped, as with no result backend; ``outcome`` says
        what its clients see.
        """
        if not self.options.get("read_only") or self.app not in read_only_workers:
            return False
        name = getattr(request, "task", None) or getattr(request, "name", None) or "task"
        error = read_only_error(self.url, what.replace("{task}", f"{name}[{bytes_to_str(task_id)}]"))
        logger.error("%s; it is dropped: %s", error, outcome)
        return True

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
        """Return the raw value stored at ``key``, or None (also from a read-only store not created yet)."""
        db = self._reader()
        return None if db is None else db.get(ensure_bytes(key))

    def mget(self, keys: Iterable[bytes | str]) -> list[bytes | None]:
        """Return the raw values of ``keys`` in order (None for missing ones)."""
        db = self._reader()
        if db is None:
            return [None for _ in keys]
        get = db.get
        return [get(ensure_bytes(k)) for k in keys]

    def set(self, key: bytes | str, value: bytes | str, expires: float | None = None) -> None:
        """Store ``value`` with the result lifetime (``expires`` seconds if given, else result_expires)."""
        ttl = self._ttl(self.expires if expires is None else expires)
        db = self._writer("cannot store", key)
        try:
            db.put(ensure_bytes(key), ensure_bytes(value), ttl=ttl)
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
        self._writer("cannot delete", key).delete(ensure_bytes(key))

    def incr(self, key: bytes | str, delta: int = 1) -> int:
        """Atomically add ``delta`` to the counter at ``key`` across every process; return the new value."""
        return self._writer("cannot count", key).incr(ensure_bytes(key), delta)

    def expire(self, key: bytes | str, value: float | None) -> bool:
        """Give ``key`` a lifetime of ``value`` seconds; 0 or None keeps it forever (as Celery means)."""
        ttl = self._ttl(value)
        db = self._writer("cannot set the lifetime of", key)
        if ttl is None:
            return db.persist(ensure_bytes(key))
        return db.expire(ensure_bytes(key), ttl)

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

    # --------------------------------------------------------------- pickling

    def __reduce__(self, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        # The open store stays behind: the copy opens its own on first use.
        kwargs = dict(kwargs or {}, url=self.url, expires=self.expires)
        return super().__reduce__(args, kwargs)

    def __repr__(self) -> str:
        return f"<KVBackend {self.path!r}>"
