"""Running the HTTP interface: :func:`serve` (``kvb http``) and :func:`app_from_env` for ASGI servers."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp

from kv_backend.db import DB
from kv_backend.errors import ConfigurationError, InvalidArgumentError, StorageError
from kv_backend.http import connlimit, headtimer
from kv_backend.http import workers as workers_module
from kv_backend.http.app import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MAX_VALUE_SIZE,
    LocalHostOnly,
    check_app_options,
    create_app,
)
from kv_backend.http.loading import OpenWhileListening
from kv_backend.http.workers import supervise
from kv_backend.http.workers import where as _where
from kv_backend.server import listen_error, worker_count

__all__ = ["StoreNotClosedError", "app_from_env", "serve"]

log = logging.getLogger("kv_backend.http")

#: Seconds a shutdown (SIGTERM, SIGINT) waits for the requests in progress before it cancels them: a
#: client that stalls mid-request would otherwise keep the server from ever stopping.
SHUTDOWN_GRACE = 10

#: Seconds a shutdown waits, once it stopped accepting, for the connections accepted just before that
#: have sent no request yet (or are in their TLS handshake) to send their first: uvicorn closes a
#: connection without a request in progress at once, which dropped the connections a worker stopped by
#: a reload (SIGHUP to kvb http --workers) had just accepted (2 in 550 over 20 reloads).
FIRST_REQUEST_GRACE = 1.0

#: Seconds an idle keep-alive connection stays open (uvicorn's default). Behind a proxy that keeps
#: connections to its upstreams open longer (an AWS load balancer: 60 s), set it above the proxy's
#: idle timeout, or the server may close a connection as the proxy sends on it (a 502 there).
DEFAULT_KEEP_ALIVE = 5.0

#: Seconds a request's head (request line and headers) may take to arrive (see
#: :mod:`kv_backend.http.headtimer`).
DEFAULT_HEADER_TIMEOUT = headtimer.DEFAULT_HEADER_TIMEOUT

#: The exit status of ``kvb http`` (one process, no ``--workers``) whose store's close at its stop did
#: not finish within workers.STOP_MARGIN seconds (see :class:`StoreNotClosedError`).
CLOSE_NOT_FINISHED_STATUS = 3


class StoreNotClosedError(StorageError):
    """At the stop of :func:`serve` in one process, the store's close (its fsync, its wait for a call
    still inside the engine) did not finish within workers.STOP_MARGIN seconds, as a worker of
    ``--workers`` still there then is killed: the close goes on in a thread of its own, which nothing
    can stop. Every write the server acknowledged is in the store's files (fsynced with sync "always");
    ``kvb http`` says so and exits at once with :data:`CLOSE_NOT_FINISHED_STATUS`."""


#: Room for a request line holding a 64 KiB key percent-encoded three times over, plus headers.
MAX_REQUEST_HEAD = 256 << 10


def _env_size(name: str, default: int, unset: str = "64 MiB") -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of bytes, not {raw!r}") from None
    if value < 1:
        raise ConfigurationError(
            f"{name} must be a number of bytes >= 1, not {value}: a limit of 0 would refuse every "
            f"value but the empty one, and every transaction (unset, it is {unset})"
        )
    return value


#: What KVB_HTTP_MAX_PENDING_BYTES is when unset (read as 0), as its errors say.
_PENDING_UNSET = "4 times the value limit"


def _env_sync() -> str | float:
    raw = os.environ.get("KVB_HTTP_SYNC", "").strip()
    if raw in ("", "never", "always"):
        return raw or "never"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0:  # (NaN too) refused here, so that the message names the variable
        raise ConfigurationError(
            f"KVB_HTTP_SYNC must be 'never', 'always' or a number of seconds >= 0, not {raw!r}"
        )
    return seconds


def _env_seconds(name: str, default: float) -> float:
    """A number of seconds > 0 from the variable ``name`` (KVB_HTTP_KEEP_ALIVE...), ``default`` if unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):  # (NaN too)
        raise ConfigurationError(f"{name} must be a number of seconds > 0, not {raw!r}")
    return seconds


def _env_keep_alive() -> float:
    return _env_seconds("KVB_HTTP_KEEP_ALIVE", DEFAULT_KEEP_ALIVE)


def _env_header_timeout() -> float:
    return _env_seconds("KVB_HTTP_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def app_from_env() -> Starlette:
    """Build the app from ``KVB_HTTP_DIR`` and the other ``KVB_HTTP_*`` variables (see docs/http.md).

    For ASGI servers that import a factory in each worker process, e.g.
    ``KVB_HTTP_DIR=/srv/kv uvicorn --factory kv_backend.http:app_from_env --workers 4``.
    """
    path = os.environ.get("KVB_HTTP_DIR")
    if not path:
        raise ConfigurationError("set KVB_HTTP_DIR to the store directory")
    token = os.environ.get("KVB_HTTP_TOKEN") or None
    app = create_app(
        path,
        token=token,
        max_value_size=_env_size("KVB_HTTP_MAX_VALUE_SIZE", DEFAULT_MAX_VALUE_SIZE),
        sync=_env_sync(),
        lock_timeout=_env_seconds("KVB_HTTP_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT),
        max_pending_bytes=_env_size("KVB_HTTP_MAX_PENDING_BYTES", 0, _PENDING_UNSET) or None,
    )
    if token is None:
        # As kvb http on a loopback address: keep rebound web pages out. The address uvicorn or
        # gunicorn listens on is theirs to know, so each request's connection says whether it applies.
        app.add_middleware(LocalHostOnly, loopback_connections_only=True)
    return app


def serve(
    path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8380,
    token: str | None = None,
    *,
    max_value_size: int | None = None,
    sync: str | float | None = None,
    log_level: str = "info",
    keep_alive: float | None = None,
    lock_timeout: float | None = None,
    max_pending_bytes: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    header_timeout: float | None = None,
    access_log: bool = True,
    workers: int | None = None,
    load_ssl_context: Callable[[], ssl.SSLContext | None] | None = None,
    reload_timeout: float | None = None,
) -> None:
    """Serve the store at ``path`` over HTTP with uvicorn until SIGINT/SIGTERM (blocking).

    The store is opened once, while the server listens: requests get ``503 loading`` until it is
    open (see :class:`~kv_backend.http.loading.OpenWhileListening`); a store that cannot be opened
    stops the server and its error is raised here. ``token``
    defaults to ``$KVB_HTTP_TOKEN`` (which keeps it out of ``ps`` output) and
    ``max_value_size`` to ``$KVB_HTTP_MAX_VALUE_SIZE`` or 64 MiB, ``sync`` (the
    store's fsync policy) to ``$KVB_HTTP_SYNC`` or ``"never"``, ``keep_alive`` (seconds an idle
    connection stays open) to ``$KVB_HTTP_KEEP_ALIVE`` or 5, ``lock_timeout`` (seconds a write, or a read
    catching up with another process's merge, waits for the store's write lock before it is answered
    503) to ``$KVB_HTTP_LOCK_TIMEOUT`` or 5,
    ``max_pending_bytes`` (the bytes of request bodies held at once) to ``$KVB_HTTP_MAX_PENDING_BYTES``
    or 4 times ``max_value_size``, ``header_timeout`` (seconds a request's head may take to arrive
    before the connection is closed, answered ``408 request_timeout`` if part of it came) to
    ``$KVB_HTTP_HEADER_TIMEOUT`` or 20. With ``ssl_context`` (a server context, as
    :func:`kv_backend.http.tls.server_context` loads it from the files of ``kvb http --ssl-certfile``
    and the rest), it serves HTTPS: a connection has :data:`~kv_backend.http.tls.HANDSHAKE_TIMEOUT`
    seconds to complete its TLS handshake. ``log_level`` and ``access_log`` are uvicorn's: the
    access log writes a line to stdout for each request. ``workers`` (default ``$KVB_HTTP_WORKERS``
    or 1) above 1 binds the address here, then serves it from that many forked worker processes, each
    as one server of its own (see :mod:`kv_backend.http.workers`); fork it only from a process
    without other threads. With workers, SIGHUP reloads them gracefully: new workers start, serving
    with ``load_ssl_context()`` if given (the TLS files read again; it raises ConfigurationError for
    files that cannot serve, and the workers serving go on), and the others stop once they are ready;
    ``reload_timeout`` (default ``$KVB_HTTP_RELOAD_TIMEOUT`` or 300) is how many seconds a reload waits
    for ``load_ssl_context()`` (called in a thread: a file on a mount that no longer answers), then for
    all its new workers to have the store open, before it gives up (the workers serving go on). A
    worker asked to stop (at the server's stop, or by a reload) that is still there 5 seconds after its
    requests' graceful period is killed (SIGKILL), so a stuck worker cannot keep the server from stopping;
    a worker closing its store ignores a second SIGTERM or SIGINT, its close finished, not cut short.
    In one process, a close of the store at the stop still running 5 seconds (workers.STOP_MARGIN) after
    it began raises :class:`StoreNotClosedError`, the close left running in its thread.
    """
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        if exc.name != "uvicorn":
            raise
        raise ModuleNotFoundError(
            "serving kv_backend.http (kvb http) needs the uvicorn package: pip install 'kv-backend[server]'",
            name="uvicorn",
        ) from None

    if token is None:
        token = os.environ.get("KVB_HTTP_TOKEN") or None
    if max_value_size is None:
        max_value_size = _env_size("KVB_HTTP_MAX_VALUE_SIZE", DEFAULT_MAX_VALUE_SIZE)
    if sync is None:
        sync = _env_sync()
    if keep_alive is None:
        keep_alive = _env_keep_alive()
    elif not 0 < keep_alive < float("inf"):
        raise ConfigurationError(f"keep_alive must be a number of seconds > 0, not {keep_alive!r}")
    if header_timeout is None:
        header_timeout = _env_header_timeout()
    elif not 0 < header_timeout < float("inf"):
        raise ConfigurationError(f"header_timeout must be a number of seconds > 0, not {header_timeout!r}")
    if lock_timeout is None:
        lock_timeout = _env_seconds("KVB_HTTP_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)
    if reload_timeout is None:
        reload_timeout = _env_seconds("KVB_HTTP_RELOAD_TIMEOUT", workers_module.RELOAD_TIMEOUT)
    elif not 0 < reload_timeout < float("inf"):
        raise ConfigurationError(f"reload_timeout must be a number of seconds > 0, not {reload_timeout!r}")
    if max_pending_bytes is None:
        max_pending_bytes = _env_size("KVB_HTTP_MAX_PENDING_BYTES", 0, _PENDING_UNSET) or None
    if workers is None:
        workers = _env_workers()
    else:
        try:
            workers = worker_count(workers, text=False)
        except ValueError as exc:
            raise ConfigurationError(f"workers {exc}") from None
    # (refused before the server starts)
    check_app_options(token, max_value_size, lock_timeout, max_pending_bytes)
    _check_ssl_context(ssl_context)
    if token is None and not _is_loopback(host):
        log.warning(
            "serving %s on %s without a token: anyone who can reach it can read and change the store; "
            "pass --token or set KVB_HTTP_TOKEN",
            path,
            host,
        )
    config = uvicorn.Config(
        None,  # type: ignore[arg-type]  # (each process that serves sets its own app: _run)
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        # h11 always: uvicorn would take httptools wherever it is installed (uvicorn[standard]),
        # whose parser has none of the request-head limit and answers below (a plain-text 400 for a
        # request h11 frames as docs/http.md says), so the server would behave by what else is installed.
        http="h11",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]  # annotated int, any number of seconds works
    )
    build = partial(
        create_app,
        token=token,
        max_value_size=max_value_size,
        lock_timeout=lock_timeout,
        max_pending_bytes=max_pending_bytes,
    )
    # On a loopback address without a token, the Host check is what keeps web pages out (DNS rebinding).
    host_check = token is None and _is_loopback(host)
    open_db = partial(DB, path, sync=sync)  # type: ignore[arg-type]  # (a wrong sync: the project's error)
    run = partial(_run, uvicorn, config, open_db, build, host_check, ssl_context, header_timeout)
    if workers == 1:
        run()
        return
    sockets = [_bind(host, port, "http" if ssl_context is None else "https")]  # every worker accepts on it

    def reload() -> Callable[[Callable[[], None]], None]:
        context = ssl_context if load_ssl_context is None else load_ssl_context()
        _check_ssl_context(context)

        def run_reloaded(ready: Callable[[], None]) -> None:
            # The store opened before the worker accepts: the old workers serve meanwhile, where a
            # new one would answer 503 loading (one kvb http listens first: nothing else serves).
            db = open_db()
            _run(uvicorn, config, lambda: db, build, host_check, context, header_timeout, sockets, ready)

        return run_reloaded

    try:
        supervise(
            workers,
            partial(run, sockets),
            os.fspath(path),
            reload,
            graceful=SHUTDOWN_GRACE + FIRST_REQUEST_GRACE,
            reload_timeout=reload_timeout,
        )
    finally:
        for sock in sockets:
            sock.close()


def _env_workers() -> int:
    raw = os.environ.get("KVB_HTTP_WORKERS", "").strip()
    if not raw:
        return 1
    try:
        return worker_count(raw)
    except ValueError as exc:
        raise ConfigurationError(f"KVB_HTTP_WORKERS {exc}") from None


def _bind(host: str, port: int, scheme: str) -> socket.socket:
    """The listening socket of ``kvb http --workers``, bound as uvicorn binds its own (an error: one
    line), and uvicorn's line saying where it listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # (uvicorn's backlog): connections wait while the workers start
    except OSError as exc:
        sock.close()
        raise listen_error(host, port, exc) from None
    where = f"[{host.strip('[]')}]" if ":" in host else host
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.info(
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", scheme, where, sock.getsockname()[1]
    )
    return sock


def _run(
    uvicorn: Any,
    config: Any,
    open_db: Callable[[], DB],
    build: Callable[[DB], ASGIApp],
    host_check: bool,
    ssl_context: ssl.SSLContext | None,
    header_timeout: float,
    sockets: list[socket.socket] | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve in this process (on ``sockets`` if given, else binding config's address itself) until
    stopped; ``ready`` is called once the store is open."""
    max_connections = connlimit.start_limit()  # (the descriptors the store needs stay its own)
    server: Any = None

    def failed() -> None:  # the store cannot be opened: stop (the error is raised below)
        server.should_exit = True

    def build_ready(db: DB) -> ASGIApp:
        app = build(db)
        if ready is not None:
            ready()
        return app

    app = OpenWhileListening(open_db, build_ready, failed)
    # One process: a second stop signal coming between uvicorn's return and the close's wait is kept
    # for the close (a worker's close is bounded by the main process instead).
    stops = _StopSignals() if sockets is None else None
    host, port = config.host, config.port
    config.app = LocalHostOnly(app) if host_check else app
    # A worker's close is not cut short by a second stop signal (see workers.hold_stops).
    shut_down = workers_module.hold_stops if sockets is not None else None
    server = _server_class(uvicorn, max_connections, ssl_context, header_timeout, shut_down)(config)
    bind_errors = _BindErrors()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(bind_errors)
    uvicorn_log.addFilter(_cancelled_at_shutdown)
    if stops is not None:
        stops.install()
    try:
        server.run() if sockets is None else server.run(sockets)
    except SystemExit:
        # uvicorn logs why it cannot listen, then exits with its own status (3): say it as kvb serve
        # does, as one line with kvb's exit status for an error (2).
        if server.started or bind_errors.error is None:
            raise
        raise listen_error(host, port, bind_errors.error) from None
    finally:
        if stops is not None:
            stops.stopping = True  # (ended without a signal: one coming now is a second one too)
        uvicorn_log.removeFilter(_cancelled_at_shutdown)
        uvicorn_log.removeHandler(bind_errors)
        if stops is not None:  # (one process: a worker's stop is bounded by the main process, which kills it)
            try:
                _close_within(app, workers_module.STOP_MARGIN, stops)
            finally:
                stops.restore()
        else:
            with workers_module.closing():  # (a second SIGTERM or SIGINT does not cut it short)
                app.close()
    if app.error is not None:
        raise app.error


class _StopSignals:
    """SIGTERM's and SIGINT's handlers (the Python ones in place: ``kvb http``'s, Python's for Ctrl-C)
    in one ``kvb http`` process, wrapped so that no stop signal after the first is lost: the first
    (before uvicorn takes them over, or raised again by uvicorn once it has shut down) runs its handler,
    which raises the stop; one after it, up to the close's wait (uvicorn's return, asyncio's own end,
    the close's start), is kept, then raised in that wait (:meth:`arm`) as one during the wait is. It
    was raised where it came, which skipped the close and exited with status 0, the close not begun."""

    def __init__(self) -> None:
        self.previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
        self.stopping = False  # (a stop signal came, or the server ended)
        self.armed = False  # (the close's wait: a signal raises its stop at once)
        self.kept: tuple[int, FrameType | None] | None = None

    def install(self) -> None:
        """Wrap the handlers in place (in the main thread: only there can they be set)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            handler = signal.getsignal(signum)
            if callable(handler):  # (SIG_DFL and SIG_IGN stay as they are)
                self.previous[signum] = handler
                signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def arm(self) -> None:
        """From now on a stop signal raises its stop; one kept before is raised now."""
        self.armed = True
        if self.kept is not None:
            signum, frame = self.kept
            self.previous[signum](signum, frame)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping and not self.armed:
            if self.kept is None:
                self.kept = (signum, frame)
            return
        self.stopping = True
        self.previous[signum](signum, frame)


def _close_within(app: OpenWhileListening, seconds: float, stops: _StopSignals | None = None) -> None:
    """``app.close()`` (the store's fsync and close) in a thread of its own, waited for ``seconds`` at
    most: one that does not finish by then, or by a second SIGTERM or SIGINT (or one ``stops`` kept
    since the stop began), raises :class:`StoreNotClosedError` saying where it is stuck, the close left
    running."""
    done = threading.Event()
    failed: list[BaseException] = []

    def close() -> None:
        try:
            app.close()
        except BaseException as exc:  # (raised here, in the caller's thread)
            failed.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=close, name="kvb-http-close", daemon=True)
    interrupted: BaseException | None = None
    try:
        thread.start()  # (in the try: a second signal coming while the close begins is one during it)
        if stops is not None:
            stops.arm()  # (a second signal kept since the stop began is raised here)
        done.wait(seconds)
    except BaseException as exc:  # (a second SIGTERM or SIGINT, raised by its handler: no more waiting)
        interrupted = exc
    if done.is_set():
        if failed:
            raise failed[0]
        if interrupted is not None:
            raise interrupted
        return
    db = app.db
    if db is not None and db.sync_mode == "always":
        kept = "every write the server acknowledged was fsynced first"
    else:
        kept = (
            "every write the server acknowledged is in the store's files, the last ones maybe not on "
            "stable storage yet (no fsync at each write): sync the disk before the machine goes off"
        )
    when = "at a second SIGTERM or SIGINT" if interrupted is not None else f"within {seconds:g} s"
    raise StoreNotClosedError(
        f"the store's close did not finish {when} ({_where(thread)}): exiting with status "
        f"{CLOSE_NOT_FINISHED_STATUS} without it; {kept}"
    ) from None


def _check_ssl_context(ssl_context: object) -> None:
    """Refuse what cannot serve TLS as ``serve``'s ``ssl_context``: every handshake would fail, and
    uvicorn would only say so once a client connects (or not at all)."""
    if ssl_context is None:
        return
    load = "kv_backend.http.tls.server_context loads one from the certificate and key files"
    if not isinstance(ssl_context, ssl.SSLContext):
        raise InvalidArgumentError(
            f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__} ({load})"
        )
    if ssl_context.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ConfigurationError(
            "ssl_context is a client context (PROTOCOL_TLS_CLIENT), which cannot serve: give a server "
            f"context ({load})"
        )


def _server_class(
    uvicorn: Any,
    max_connections: int,
    ssl_context: ssl.SSLContext | None = None,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    shut_down: Callable[[], None] | None = None,
) -> type:
    """uvicorn's Server, keeping at most ``max_connections`` connections open (see
    :mod:`kv_backend.http.connlimit`), giving a request's head ``header_timeout`` seconds to arrive
    (:mod:`kv_backend.http.headtimer`), serving TLS with ``ssl_context`` if given (loaded before, so
    uvicorn does not load the files again; the protocol does the handshake, with a timeout of
    :data:`~kv_backend.http.tls.HANDSHAKE_TIMEOUT` where uvicorn leaves asyncio's 60 s, and the
    connection counts against the limit from its accept on), and where a
    forced exit (a second Ctrl-C during the shutdown)
    still ends as the grace period's end does: the unfinished requests are cancelled and the app shut
    down (the store closed). uvicorn skips both, and asyncio then cancelled the app's lifespan task on
    the way out, which Starlette reported as an "Exception in 'lifespan' protocol" traceback.
    ``shut_down`` is called once the shutdown is over (a worker's: see workers.hold_stops)."""

    class Server(uvicorn.Server):  # type: ignore[misc]
        async def startup(self, sockets: Any = None) -> None:
            config = self.config  # (loaded by now: its protocol class is h11's, as config.http says)
            timed = headtimer.head_timed(config.http_protocol_class, header_timeout)
            protocol = connlimit.limited(timed, max_connections, ssl_context)
            self.handshakes = protocol.handshakes  # type: ignore[attr-defined]
            config.http_protocol_class = protocol
            if ssl_context is None:
                await super().startup(sockets)
                return
            # The protocol does the TLS handshake (so that a connection counts against the limit
            # from its accept on, not once its handshake is done): the server listens without TLS.
            # config.ssl still says it serves TLS (uvicorn's "running on https://" line); the loop's
            # create_server is told not to, for the time of the startup (the loop's own attribute,
            # which asyncio's and uvloop's loops take: uvicorn has no option for it).
            config.ssl = ssl_context
            loop = asyncio.get_running_loop()
            create_server = loop.create_server

            async def without_tls(*args: Any, **kwargs: Any) -> Any:
                kwargs["ssl"] = None
                return await create_server(*args, **kwargs)

            vars(loop)["create_server"] = without_tls
            try:
                await super().startup(sockets)
            finally:
                del vars(loop)["create_server"]

        async def shutdown(self, sockets: Any = None) -> None:
            try:
                for server in self.servers:  # (stop accepting, as uvicorn's shutdown does first)
                    server.close()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + FIRST_REQUEST_GRACE
                while self._unasked() and loop.time() < deadline and not self.force_exit:
                    await asyncio.sleep(0.01)
                for connection in list(getattr(self, "handshakes", ())):  # (still in their TLS handshake)
                    connection.transport.abort()
                await super().shutdown(sockets)
                if self.force_exit:
                    for task in self.server_state.tasks:
                        task.cancel()
                    await self.lifespan.shutdown()
            finally:
                if shut_down is not None:
                    shut_down()

        def _unasked(self) -> bool:
            """Whether a connection is in its TLS handshake or has not sent its first request yet."""
            if getattr(self, "handshakes", ()):
                return True
            for connection in self.server_state.connections:
                h11_connection = getattr(connection, "conn", None)
                if getattr(connection, "cycle", None) is None and (
                    h11_connection is not None and h11_connection.their_http_version is None
                ):
                    return True
            return False

    return Server


def _cancelled_at_shutdown(record: logging.LogRecord) -> bool:
    """Log a request that the shutdown cancelled after :data:`SHUTDOWN_GRACE` as one line, not as
    uvicorn's "Exception in ASGI application" traceback: nothing went wrong in it.

    (A request still receiving its body answers 503 itself and is not logged here; one waiting for
    the engine, say a merge, is cancelled without an answer of its own, and uvicorn answers it 500.)
    """
    if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
        record.msg = (
            "a request still unfinished %s s into the shutdown was cancelled (uvicorn answers it 500)"
        )
        record.args = (SHUTDOWN_GRACE,)
        record.exc_info = record.exc_text = None
    return True


class _BindErrors(logging.Handler):
    """Keeps the OSError uvicorn logs (``logger.error(exc)``) when it cannot open its listening socket."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.error: OSError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, OSError):
            self.error = record.msg
