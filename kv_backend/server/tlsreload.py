"""CONFIG SET of ``kvb serve``'s TLS settings at run time, as redis-server 7.0 takes them.

A CONFIG SET that names a certificate, key, passphrase, CA, ``tls-auth-clients``, protocols,
ciphers or ``tls-prefer-server-ciphers`` builds a new SSL context with :func:`~kv_backend.server.tls.
configure` (the checks made at start), also when the files' paths are those in force (a certificate
replaced in place is read again); ``tls-port`` opens, moves or closes the TLS listener. All is built
and bound by :func:`prepare` before anything changes, so that a value that cannot be put in force
fails the whole CONFIG SET with Redis's reply (why is logged) and leaves the settings in force;
:func:`commit` then puts it in force: the connections made after it get the new context, those
made before keep theirs. While no TLS port is open, the values are kept unchecked (as Redis keeps
them), and checked when one opens.

The files are read, and the context built, in a thread (:func:`build`, run by :class:`Changes`, one
CONFIG SET after the other): a slow file holds up the client that asked, never the event loop; one
that does not return within :data:`BUILD_TIMEOUT` seconds (a dead network mount) fails its CONFIG
SET, and the next one is served; one whose thread cannot be started fails its CONFIG SET likewise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from kv_backend.errors import ConfigurationError
from kv_backend.server.loading import open_in_background
from kv_backend.server.ports import Refused, bind, move, release
from kv_backend.server.tls import TLSSettings, configure

if TYPE_CHECKING:
    from kv_backend.server.resp import Server

#: The parameters CONFIG SET changes at run time, and the field of TLSSettings each sets.
FIELDS = {
    b"tls-port": "port",
    b"tls-cert-file": "cert_file",
    b"tls-key-file": "key_file",
    b"tls-key-file-pass": "key_file_pass",
    b"tls-ca-cert-file": "ca_cert_file",
    b"tls-ca-cert-dir": "ca_cert_dir",
    b"tls-auth-clients": "auth_clients",
    b"tls-protocols": "protocols",
    b"tls-ciphers": "ciphers",
    b"tls-prefer-server-ciphers": "prefer_server_ciphers",
}
#: Redis's reason for a CONFIG SET whose TLS settings cannot be put in force.
CONFIG_FAILED = "Unable to update TLS configuration. Check server logs."
#: Seconds a CONFIG SET's files may take to be read, and its context built, in their thread: past it
#: the CONFIG SET is answered CONFIG_FAILED (the log names the file being read), the settings in force
#: stay, and the CONFIG SETs waiting behind it are served. The thread cannot be stopped: what it
#: builds, if it ever returns, is dropped.
BUILD_TIMEOUT = 30.0
#: The TLS settings of a server started without ``--tls-port``, as CONFIG GET shows them (Redis's
#: defaults: no files, client certificates asked for).
NO_TLS = TLSSettings(port=0, cert_file="", key_file="", auth_clients="yes")


@dataclasses.dataclass
class Change:
    """TLS settings built and bound, not yet in force (:func:`commit`)."""

    settings: TLSSettings
    context: ssl.SSLContext | None
    #: The new TLS port's listening sockets (None: the listener stays as it is).
    socks: list[socket.socket] | None
    names: list[bytes]

    def abandon(self) -> None:
        """Give the change up: its port's sockets closed."""
        release(self.socks)


def _field(name: bytes, value: Any) -> Any:
    """A checked CONFIG SET value as TLSSettings holds it (an empty file or list: none given)."""
    if name == b"tls-port":
        return value
    if name == b"tls-prefer-server-ciphers":
        return value == b"yes"
    text = os.fsdecode(value.split(b"\0", 1)[0])  # (Redis passes OpenSSL a C string)
    if name == b"tls-auth-clients":
        return text
    return text or (None if name not in (b"tls-cert-file", b"tls-key-file") else "")


def _target(server: Server, ours: list[tuple[bytes, Any]]) -> tuple[TLSSettings, TLSSettings]:
    """The TLS settings in force (``tls-auth-clients`` as CONFIG GET shows it) and those ``ours`` make."""
    current = server.tls or NO_TLS
    # (tls-auth-clients stays what CONFIG GET shows, whatever CA is given or taken away)
    current = dataclasses.replace(current, auth_clients=current.client_auth)
    new = dataclasses.replace(current, **{FIELDS[name]: _field(name, value) for name, value in ours})
    return current, new


def to_build(server: Server, given: list[tuple[bytes, Any]]) -> TLSSettings | None:
    """The settings whose SSL context :func:`prepare` would build for CONFIG SET's checked values
    ``given``, were the settings in force what they are now (None: it builds none)."""
    ours = [(name, value) for name, value in given if name in FIELDS]
    if not ours:
        return None
    _, new = _target(server, ours)
    changed = any(name != b"tls-port" for name, _ in ours)
    context = None if changed else server.tls_context
    return new if new.port and context is None else None


@dataclasses.dataclass
class Built:
    """A context built (or refused: ``error``) off the event loop for ``settings`` (see :class:`Changes`)."""

    settings: TLSSettings
    context: ssl.SSLContext | None = None
    error: Exception | None = None


def build(
    settings: TLSSettings, log: Callable[[str], None], reading: Callable[[str], None] | None = None
) -> Built:
    """Read ``settings``' files and build their context (:func:`~kv_backend.server.tls.configure`,
    which tells ``reading`` each file it reads): run in a thread of its own, never on the event loop."""
    try:
        return Built(settings, configure(settings, log=log, reading=reading))
    except (ConfigurationError, ssl.SSLError, OSError) as exc:
        return Built(settings, error=exc)


def prepare(server: Server, given: list[tuple[bytes, Any]], built: Built | None = None) -> Change | None:
    """The TLS change CONFIG SET's checked values ``given`` (in order) make, its context built and its
    port bound (None if they name no TLS parameter); :class:`~kv_backend.server.ports.Refused` if it
    cannot be made. ``built``: the context :func:`build` made for the settings they make (else it is
    built here, on the calling thread)."""
    ours = [(name, value) for name, value in given if name in FIELDS]
    if not ours:
        return None
    current, new = _target(server, ours)
    opening = new.port not in (0, current.port)
    changed = any(name != b"tls-port" for name, _ in ours)
    context = None if changed else server.tls_context  # (a TLS port open has its context)
    if new.port and context is None:
        # (Redis names the first parameter whose change needed the new context)
        blamed = next((name for name, _ in ours if name != b"tls-port" or opening), b"tls-port")
        try:
            if built is None or built.settings != new:
                built = build(new, server.log)
            if built.error is not None:
                raise built.error
            context = built.context
        except (ConfigurationError, ssl.SSLError, OSError) as exc:
            server.log(f"CONFIG SET {blamed.decode()} refused: {exc}; the TLS settings in force stay")
            raise Refused(blamed, CONFIG_FAILED) from None
    socks = bind(server, b"tls-port", new.port) if opening else None
    context = context if new.port else None
    if new == current and context is server.tls_context:
        return None  # (as they are: nothing read again, nothing to say)
    return Change(new, context, socks, [name for name, _ in ours])


def commit(server: Server, change: Change) -> None:
    """Put ``change`` in force: the TLS connections made from now on get its context, and its port
    (the old one's listener closed, the connections made through it kept)."""
    old_port = (server.tls or NO_TLS).port
    server.tls, server.tls_context = change.settings, change.context
    port = change.settings.port
    if port != old_port:
        move(server, "tls", change.socks)
    names = ", ".join(name.decode() for name in change.names)
    if port:
        server.log(f"CONFIG SET {names}: the TLS connections made from now on (port {port}) use them")
    else:
        server.log(f"CONFIG SET {names}: no TLS port is open (they are checked when one opens)")


@dataclasses.dataclass
class _Job:
    given: list[tuple[bytes, Any]]
    finish: Callable[[Built | None], None]
    #: The settings whose context is being built for it.
    settings: TLSSettings | None = None
    #: The file its build reads at the moment (``--tls-cert-file PATH``: set by the build's thread).
    reading: str | None = None
    #: Its build's bound (:data:`BUILD_TIMEOUT`), cancelled when the build returns in time.
    timer: asyncio.TimerHandle | None = None


class Changes:
    """The CONFIG SETs of TLS settings of one server, run one after the other, in arrival order; each
    reads its files and builds its context in a thread of its own (:func:`build`), while the event
    loop serves the other clients, then is finished on the loop (``finish``: :func:`prepare` given
    what was built, and :func:`commit`). One that names a TLS parameter waits for those before it,
    so that each is built from the settings the one before it put in force.

    A CONFIG SET inside EXEC cannot wait (EXEC answers all its commands at once): it builds its
    context on the loop, at once. One built meanwhile from the settings it replaced is built again.
    One whose thread cannot be started (a limit on the process's tasks) fails as one whose files
    cannot be read (CONFIG_FAILED, the log saying no thread could be started), its files unread: read
    on the loop, with no bound, a slow file would hold up every client; the next one is started as
    usual. One whose build has
    not returned after :data:`BUILD_TIMEOUT` seconds is answered CONFIG_FAILED and the next is
    started: its thread is left to end on its own (a daemon thread: nothing waits for it at the
    stop), and what it builds then is dropped.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.waiting: deque[_Job] = deque()
        self.running: _Job | None = None

    def busy(self) -> bool:
        """Whether a change is under way or waits (a new one waits behind it)."""
        return self.running is not None or bool(self.waiting)

    def submit(self, given: list[tuple[bytes, Any]], finish: Callable[[Built | None], None]) -> None:
        """Queue CONFIG SET's checked values ``given``: ``finish`` is called on the event loop, in their
        turn, with the context built for them (None: they need none), never before this returns."""
        self.waiting.append(_Job(given, finish))
        if self.running is None:
            asyncio.get_running_loop().call_soon(self._next)

    def _next(self) -> None:
        while self.running is None and self.waiting and not self.server.stops:
            self._start(self.waiting.popleft())

    def _start(self, job: _Job) -> None:
        settings = to_build(self.server, job.given)
        if settings is None:  # (nothing to read: tls-port alone, or no TLS port open)
            self._finish(job, None)
            return
        job.settings, job.reading = settings, None

        def note(what: str) -> None:  # (a build given up, still running, no longer says)
            if job.settings is settings:
                job.reading = what

        try:
            reader = partial(build, settings, self.server.log, note)
            built = open_in_background(reader, _drop, "kvb-tls-settings")
        except RuntimeError as exc:  # no thread (a limit on the process's tasks): refused, not read here
            error = ConfigurationError(
                f"no thread could be started to read the TLS files ({exc}: a limit on the process's "
                "tasks?); not read on the event loop, where a slow file would hold up every client"
            )
            self._finish(job, Built(settings, error=error))
            return
        self.running = job
        job.timer = asyncio.get_running_loop().call_later(BUILD_TIMEOUT, self._timed_out, job, built)
        built.add_done_callback(partial(self._built, job))

    def _timed_out(self, job: _Job, future: asyncio.Future[Built]) -> None:
        """``job``'s build has not returned in :data:`BUILD_TIMEOUT` seconds: its CONFIG SET fails (the
        settings in force stay), what the build makes if it ever returns is dropped (the future
        cancelled: :func:`_drop`), and the next CONFIG SET starts."""
        if self.running is not job or future.done():
            return
        self.running = None
        future.cancel()
        server = self.server
        names = ", ".join(name.decode() for name, _ in job.given)
        what = job.reading or "the TLS files"
        server.log(
            f"CONFIG SET {names}: reading {what} did not return within {BUILD_TIMEOUT:g} s (a network "
            "mount that does not answer?): given up, its thread left to end on its own"
        )
        if not server.halting:  # (else nothing changes any more)
            if to_build(server, job.given) != job.settings:
                self._start(job)  # the settings in force changed meanwhile (a CONFIG SET inside EXEC)
            else:
                error = ConfigurationError(f"reading {what} did not return within {BUILD_TIMEOUT:g} s")
                self._finish(job, Built(job.settings or NO_TLS, error=error))
        self._next()

    def _built(self, job: _Job, future: asyncio.Future[Built]) -> None:
        if self.running is not job or future.cancelled():
            return  # (given up: _timed_out answered it)
        self.running = None
        if job.timer is not None:
            job.timer.cancel()
        server = self.server
        if server.halting:  # (the server stops: nothing changes any more)
            names = ", ".join(name.decode() for name, _ in job.given)
            server.log(f"CONFIG SET {names}: not put in force, the server stops")
            return
        try:
            built = future.result()
        except Exception as exc:  # (not one of configure's: a bug, which prepare lets CONFIG SET answer)
            built = Built(job.settings or NO_TLS, error=exc)
        if to_build(server, job.given) != built.settings:
            self._start(job)  # the settings in force changed meanwhile (a CONFIG SET inside EXEC)
        else:
            self._finish(job, built)
        self._next()

    def _finish(self, job: _Job, built: Built | None) -> None:
        try:
            job.finish(built)
        except Exception as exc:  # (a bug must cost one reply, never the loop's next changes)
            self.server.log(f"error in CONFIG SET: {exc!r}")


def _drop(built: Built) -> None:
    """A context built for a server that stopped meanwhile, or by a build given up (:data:`BUILD_TIMEOUT`):
    nothing to do (nobody holds it)."""
