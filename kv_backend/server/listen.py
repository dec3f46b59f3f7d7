"""The listening sockets of ``kvb serve``, and the connections accepted from them.

asyncio's and uvloop's servers accept a connection in one turn of the event loop and set it up (its
protocol, reading from it) in a later one: a script that started to run long in between (a command
read in the same turn) kept a client the loop had accepted out of sight until the script's end,
where Redis answers it BUSY. Here the loop's own callback accepts each connection and makes its
:class:`~kv_backend.server.resp.Connection` at once, on an :class:`AcceptedTransport` that sends on
the socket itself, then hands the socket over to the event loop (``connect_accepted_socket``). A
script that runs long meanwhile serves it as it serves the others (see :mod:`kv_backend.server.busy`),
and so are the connections it accepts itself.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import sys
from typing import TYPE_CHECKING, Any, cast

from kv_backend.server import clientlimit, protected
from kv_backend.server.tlsclose import EndingTLS, drive

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection, Server

#: The listening sockets' backlog, as redis-server's (and the most accepted in one turn of the loop).
BACKLOG = 511
#: How long accepting pauses when the process is out of file descriptors (as asyncio's servers).
ACCEPT_RETRY_DELAY = 1.0
#: Out of file descriptors or memory: the connections wait in the backlog meanwhile.
_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

#: Seconds the TLS layer waits for a client's close_notify after the server's, where it closes a
#: connection itself (a connection the server closes is ended as soon as its close_notify is sent:
#: see :class:`~kv_backend.server.tlsclose.EndingTLS`).
TLS_SHUTDOWN_TIMEOUT = 5.0

#: The tasks handing accepted connections over to the event loop.
_HANDING_OVER: set[Any] = set()


async def listen_tcp(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` names (all interfaces if empty), as asyncio's
    ``create_server`` makes them: the address reused at once, an IPv6 socket for IPv6 only."""
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(
        host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    return _bind_all(found)


def addresses(socks: list[socket.socket]) -> list[tuple[Any, ...]]:
    """What :func:`listen_tcp_again` needs of the listening sockets ``socks``: their addresses."""
    return [(sock.family, sock.type, sock.proto, "", sock.getsockname()) for sock in socks]


def listen_tcp_again(found: list[tuple[Any, ...]], port: int) -> list[socket.socket]:
    """Listening sockets on the :func:`addresses` ``found``, at ``port`` (for a command, CONFIG SET
    tls-port: the addresses the server's host named at start, which nobody looks up again on the event
    loop, where a slow resolver would hold every client up)."""
    return _bind_all([(*entry[:4], (entry[4][0], port, *entry[4][2:])) for entry in found])


def _bind_all(found: list[Any]) -> list[socket.socket]:
    """A listening socket on each address ``getaddrinfo`` ``found`` (all closed if one cannot listen)."""
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            _listen(sock)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def listen_unix(path: str) -> socket.socket:
    """A listening socket at ``path`` (see :func:`kv_backend.server.unixsock.claim` first)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        _listen(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def _listen(sock: socket.socket) -> None:
    sock.listen(BACKLOG)
    sock.setblocking(False)


def _accept_one(server: Server, listener: socket.socket) -> socket.socket | None:
    """The next connection waiting on ``listener``; None if none does (nothing waits, a signal came,
    or the client gave up before it was accepted). An OSError is the process's lack of file
    descriptors or memory, or the listener's: logged, and raised."""
    try:
        return listener.accept()[0]
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return None
    except OSError as exc:
        server.log(f"cannot accept a connection: {exc}")
        raise


def accept(server: Server, listener: socket.socket, kind: str) -> Connection | None:
    """Accept one connection and make its Connection, on an :class:`AcceptedTransport` until the event
    loop takes it over; None if none waits. Connections past maxclients, and those protected mode
    refuses, are answered and closed meanwhile (see :mod:`kv_backend.server.clientlimit` and
    :mod:`kv_backend.server.protected`). An OSError is the process's lack of file descriptors or
    memory (logged), or the listener's."""
    from kv_backend.server.resp import Connection

    for _ in range(BACKLOG):
        sock = _accept_one(server, listener)
        if sock is None:
            return None
        if len(server.clients) >= server.maxclients:
            clientlimit.refuse(server, sock)  # (as Redis: told so, and closed)
        elif not protected.denied(server, sock, kind):
            break
    else:
        return None  # (a backlog's worth refused: the loop has others to serve)
    sock.setblocking(False)
    if kind == "tcp":
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if server.tcp_keepalive > 0:
            keep_alive(sock, server.tcp_keepalive)
    conn = Connection(server, kind)
    transport = AcceptedTransport(sock, conn)
    conn.connection_made(transport)
    task = asyncio.get_running_loop().create_task(transport.hand_over())
    _HANDING_OVER.add(task)  # (a task nothing refers to may be collected before its end)
    task.add_done_callback(_HANDING_OVER.discard)
    return conn


def keep_alive(sock: socket.socket, seconds: int) -> None:
    """TCP keepalive on a client's connection, as redis-server's ``tcp-keepalive`` sets it: probes after
    ``seconds`` of silence, then every third of that, and the connection closed after 3 unanswered.
    So the connection of a client whose host died, or that a network cut off, is closed (and, were it
    waiting in BLPOP, no longer served the next element pushed) rather than kept for good. Options the
    system refuses (an interval above its maximum) are left at its defaults, as Redis leaves them."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    idle = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))  # (macOS: KEEPALIVE)
    if idle is not None:
        options.append((socket.IPPROTO_TCP, idle, seconds))
    if hasattr(socket, "TCP_KEEPINTVL"):
        options.append((socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, seconds // 3)))
    if hasattr(socket, "TCP_KEEPCNT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            pass


def accept_tls(server: Server, listener: socket.socket, context: ssl.SSLContext) -> bool:
    """Accept one connection on a TLS listener and start its handshake (the event loop's, with its
    timeout): its Connection is made once the handshake is done; False if none waits. A connection
    past maxclients is closed at once, before any handshake (its client sees the connection
    closed), and counted in rejected_connections; one protected mode refuses is told so over TLS."""
    sock = _accept_one(server, listener)
    if sock is None:
        return False
    if len(server.clients) + server.tls_handshakes >= server.maxclients:
        sock.close()
        server.rejected_connections += 1
        return True
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if server.tcp_keepalive > 0:
        keep_alive(sock, server.tcp_keepalive)
    refusal = protected.DENIAL if protected.refuses(server, sock, "tcp") else None
    task = asyncio.get_running_loop().create_task(_handshake(server, sock, context, refusal))
    _HANDING_OVER.add(task)
    task.add_done_callback(_HANDING_OVER.discard)
    return True


async def _handshake(
    server: Server, sock: socket.socket, context: ssl.SSLContext, refusal: bytes | None
) -> None:
    """Hand ``sock`` to the event loop, then do its TLS handshake (within the server's handshake
    timeout) and make its Connection (or, given ``refusal``, send it and close): see
    :class:`_TLSStart`. A handshake that fails (plaintext, a client certificate missing or not
    trusted, silence) closes the connection, is logged at debug and counted."""
    from kv_backend.server.resp import Connection

    def made() -> asyncio.Protocol:
        if refusal is not None:
            return _Refusal(refusal)
        conn = Connection(server, "tcp")
        conn.tls = True
        return conn

    assert server.tls is not None
    loop = asyncio.get_running_loop()
    options: dict[str, Any] = {"ssl_handshake_timeout": server.tls.handshake_timeout}
    if sys.version_info >= (3, 11) or type(loop).__module__.startswith("uvloop"):
        options["ssl_shutdown_timeout"] = TLS_SHUTDOWN_TIMEOUT
    start = _TLSStart(server, _peer(sock), made, context, options)
    server.tls_handshakes += 1
    try:
        await loop.connect_accepted_socket(lambda: start, sock)
    except Exception as exc:  # (the socket went bad before the event loop took it)
        sock.close()
        start.ended(exc)


class _TLSStart(asyncio.Protocol):
    """A connection accepted on the TLS port, from its accept to the end of its TLS handshake: the
    event loop's ``start_tls`` on its TCP transport, started as soon as the loop has set that up
    (before it reads: the client's first bytes go to the TLS layer). Once the handshake is done, the
    protocol ``made()`` gives (a Connection) takes over, on an :class:`~kv_backend.server.tlsclose.
    EndingTLS` (the TLS transport and the TCP one under it: a connection the server closes is ended
    once all it was given is sent, and its close_notify, not when the client answers that), and gets
    what came meanwhile (the data that came with the end of the handshake). A handshake that fails
    is counted and logged as it ends (the TLS layer has closed the connection then)."""

    def __init__(
        self, server: Server, peer: str, made: Any, context: ssl.SSLContext, options: dict[str, Any]
    ) -> None:
        self.server = server
        self.peer = peer
        self.made = made
        self.context = context
        self.options = options
        self.tcp: Any = None
        self.early: list[tuple[str, tuple[Any, ...]]] = []
        #: ``made()``'s, once the handshake is done.
        self.protocol: asyncio.Protocol | None = None
        self.handshaking = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp = transport
        start = asyncio.get_running_loop().start_tls(
            transport,
            self,
            self.context,
            server_side=True,
            **self.options,
        )
        drive(start, self._done)

    def ended(self, exc: BaseException | None) -> None:
        """The handshake is over: no longer counted among those under way; ``exc``: it failed
        (counted, and logged at debug)."""
        if not self.handshaking:
            return
        self.handshaking = False
        server = self.server
        server.tls_handshakes -= 1
        if exc is not None:
            server.tls_handshake_failures += 1
            server.debug(f"TLS handshake with {self.peer} failed: {_reason(exc)}")

    def _done(self, tls_transport: Any, exc: BaseException | None) -> None:
        self.ended(exc)
        if exc is not None:  # (the TLS layer has closed the connection)
            self.tcp.abort()
            return
        if tls_transport is None or self.tcp.is_closing():
            # Closed as its handshake ended (the client's close came with its Finished, or a
            # shutdown): nothing to serve, no failed handshake either.
            self.tcp.abort()
            return
        protocol = self.protocol = self.made()
        tls_transport.set_protocol(protocol)
        protocol.connection_made(cast(asyncio.Transport, EndingTLS(tls_transport, self.tcp)))
        early, self.early = self.early, []
        for method, arguments in early:
            getattr(protocol, method)(*arguments)

    # What the TLS layer hands on before the handshake's end is seen here (kept for ``made()``'s
    # protocol), or in a call it had scheduled before (passed on).

    def _event(self, method: str, *arguments: Any) -> None:
        if self.protocol is not None:
            getattr(self.protocol, method)(*arguments)
        else:
            self.early.append((method, arguments))

    def data_received(self, data: bytes) -> None:
        self._event("data_received", data)

    def eof_received(self) -> bool | None:
        self._event("eof_received")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._event("connection_lost", exc)

    def pause_writing(self) -> None:
        self._event("pause_writing")

    def resume_writing(self) -> None:
        self._event("resume_writing")


def _peer(sock: socket.socket) -> str:
    try:
        peer = sock.getpeername()
    except OSError:
        return "a client"
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc) or type(exc).__name__


class _Refusal(asyncio.Protocol):
    """A TLS client protected mode refuses: told so over TLS once the handshake is done, and closed."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.reply)  # type: ignore[attr-defined]
        transport.close()


class Listeners:
    """The server's listening sockets, each accepted from by the event loop's own callback."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.socks: list[tuple[socket.socket, str]] = []

    def add(self, socks: list[socket.socket], kind: str) -> None:
        """Listen on ``socks`` (``kind``: "tcp", "unix", or "tls": TCP with the server's TLS
        context), and note them for the script pump (which accepts no TLS connection: those wait in
        the backlog while a script runs long)."""
        for sock in socks:
            self.socks.append((sock, kind))
            self.server.listening.append((sock.fileno(), sock.family, kind))
            asyncio.get_running_loop().add_reader(sock.fileno(), self._ready, sock, kind)

    def _ready(self, listener: socket.socket, kind: str) -> None:
        """Accept what waits (at most one backlog's worth: the loop has others to serve)."""
        context = self.server.tls_context
        for _ in range(BACKLOG):
            try:
                if kind == "tls":
                    assert context is not None
                    if not accept_tls(self.server, listener, context):
                        return
                elif accept(self.server, listener, kind) is None:
                    return
            except OSError as exc:
                loop = asyncio.get_running_loop()
                loop.remove_reader(listener.fileno())
                if exc.errno in _RESOURCES:  # (else the listener is broken: no more accepting)
                    loop.call_later(ACCEPT_RETRY_DELAY, self._resume, listener, kind)
                return

    def _resume(self, listener: socket.socket, kind: str) -> None:
        if any(sock is listener for sock, _ in self.socks):
            asyncio.get_running_loop().add_reader(listener.fileno(), self._ready, listener, kind)

    def remove(self, kind: str) -> None:
        """Stop listening on the sockets of ``kind`` (the connections made stay)."""
        loop = asyncio.get_running_loop()
        for sock, _ in [entry for entry in self.socks if entry[1] == kind]:
            loop.remove_reader(sock.fileno())
            sock.close()
        self.socks = [entry for entry in self.socks if entry[1] != kind]
        self.server.listening[:] = [entry for entry in self.server.listening if entry[2] != kind]

    def close(self) -> None:
        """Stop listening (the connections made stay)."""
        loop = asyncio.get_running_loop()
        for sock, _ in self.socks:
            loop.remove_reader(sock.fileno())
            sock.close()
        self.socks.clear()
        self.server.listening.clear()


class AcceptedTransport(asyncio.Transport):
    """The transport of a connection just accepted (by the event loop's callback, or while a script
    runs long), until the event loop takes the socket over (:meth:`hand_over`; what could not be sent
    yet goes first)."""

    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        super().__init__()
        self.sock = sock
        self.conn = conn
        self.unsent = bytearray()
        #: Closed here (the socket then with it unless the event loop has it), or taken over.
        self.closed = False
        #: The event loop has the socket (its transport calls connection_made once set up).
        self.handed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if self.closed:
            return
        if not self.unsent:
            try:
                data = data[self.sock.send(data) :]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                data = b""
        self.unsent += data

    def get_write_buffer_size(self) -> int:
        return len(self.unsent)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        try:
            if name == "peername":
                return self.sock.getpeername()
            if name == "sockname":
                return self.sock.getsockname()
        except OSError:
            return default
        return self.sock if name == "socket" else default

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        """Close the connection (CLIENT KILL, QUIT, the client gone while a script runs, the server
        stopping). Once the event loop has the socket, its transport is closed as soon as it is set
        up (see Connection.connection_made)."""
        if self.closed:
            return
        self.closed = True
        run = self.conn.server.scripts.running
        if run is not None and run.pump is not None:
            run.pump.forget(self.sock.fileno())
        if not self.handed:
            self.sock.close()
        self.conn.connection_lost(None)

    def abort(self) -> None:
        self.close()

    def take_over(self, transport: asyncio.Transport) -> bool:
        """The event loop's transport is set up: send what waits on it; False if this connection
        was closed meanwhile (the loop's transport is then closed too)."""
        if self.closed:
            transport.close()
            return False
        self.closed = True
        if self.unsent:
            transport.write(bytes(self.unsent))
        return True

    async def hand_over(self) -> None:
        if self.closed:
            return
        self.handed = True
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: self.conn, self.sock)
        except Exception as exc:  # the socket went bad meanwhile
            self.conn.server.log(f"cannot serve an accepted connection: {exc!r}")
            self.handed = False
            self.close()
