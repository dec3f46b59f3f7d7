"""Scripts that run long (Redis's ``busy-reply-threshold``): the server keeps answering while one runs.

Scripts and functions run in the event loop's thread, so no other client's command runs in the
middle of one. A Lua count hook calls :meth:`ScriptRun.tick` every :data:`HOOK_COUNT` instructions;
once a script has run for longer than the threshold, each tick lets a :class:`Pump` serve the
network as Redis does meanwhile: it accepts connections and reads clients' commands, answering
each ``BUSY`` but the few Redis allows then (``SCRIPT KILL``, ``FUNCTION KILL``,
``SHUTDOWN NOSAVE``, ``AUTH``, ``HELLO``, ``MULTI``...). A short script never gets that far: it
costs one Python call per :data:`HOOK_COUNT` Lua instructions.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from typing import TYPE_CHECKING, Any

from kv_backend.server import groupcommit
from kv_backend.server.listen import AcceptedTransport, accept

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection, Server

#: Lua instructions between two calls of the hook (Redis's count).
HOOK_COUNT = 100_000
#: How long a library's code may run when it is loaded (Redis's FUNCTION LOAD timeout).
LOAD_TIMEOUT = 0.5
#: A client whose unsent replies grow past this is no longer read from while the script runs (the
#: event loop's transports pause it sooner; those of connections accepted meanwhile do not).
MAX_UNSENT = 4 * 1024 * 1024

BUSY_SCRIPT = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
UNKILLABLE = (
    "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either "
    "wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."
)
NOTBUSY = "NOTBUSY No scripts in execution right now."
#: The error a killed script raises (its caller gets it with where the script was).
KILLED = b"ERR Script killed by user with SCRIPT KILL..."
LOAD_TIMED_OUT = b"ERR FUNCTION LOAD timeout"


class Halted(BaseException):
    """The server stops in the middle of a script (``SHUTDOWN NOSAVE``, a second SIGINT): raised
    once the script has ended, through the transaction it ran in (which keeps none of its writes)
    up to :meth:`Server.flush`, so that no other command runs."""


class ScriptRun:
    """One run of a script (``EVAL``...) or function (``FCALL``...), or a library's load."""

    __slots__ = (
        "caller",
        "command",
        "halted",
        "is_eval",
        "loading",
        "name",
        "pump",
        "server",
        "started",
        "stop",
        "wrote",
    )

    def __init__(
        self, server: Server, caller: Connection | None, command: list[bytes], name: str, is_eval: bool
    ) -> None:
        self.started = time.monotonic()
        self.server = server
        self.caller = caller
        self.command = command
        self.name = name
        self.is_eval = is_eval  # EVAL... (else FCALL...)
        self.loading = caller is None  # a library's code, run by FUNCTION LOAD
        self.wrote = False  # it called a command that writes: SCRIPT KILL cannot stop it
        #: Set to stop the script: the error its Lua code then raises wherever it is.
        self.stop: bytes | None = None
        self.halted = False  # the server stops in the middle of it (see halt)
        self.pump: Pump | None = None

    @property
    def busy_error(self) -> str:
        return BUSY_SCRIPT if self.is_eval else BUSY_FUNCTION

    def tick(self) -> bytes | None:
        """Called by the Lua hook: the error to stop the script with, else None (it goes on)."""
        if self.stop is not None:
            return self.stop
        elapsed = time.monotonic() - self.started
        if self.loading:
            return LOAD_TIMED_OUT if elapsed > LOAD_TIMEOUT else None
        if self.pump is None:
            if elapsed * 1000 < self.server.busy_reply_threshold:
                return None
            kill = "SCRIPT KILL" if self.is_eval else "FUNCTION KILL"
            self.server.log(
                f"slow script detected: still running after {int(elapsed * 1000)} ms; other clients are "
                f"answered BUSY until it ends. {kill} stops it if it has not written, SHUTDOWN NOSAVE "
                f"stops the server. Script name is: {self.name}"
            )
            self.server.busy = self.busy_error  # (first: the pump answers what waits BUSY)
            if self.server.group_commit is not None:  # (--appendfsync always: see groupcommit)
                self.server.group_commit.script_runs_long(True)
            self.pump = Pump(self.server, self.caller)
        self.pump.poll()
        return self.stop

    def kill(self, is_eval: bool) -> str | None:
        """SCRIPT KILL (``is_eval``) or FUNCTION KILL: None if it stops the script, else the error."""
        if self.wrote:
            return UNKILLABLE
        if is_eval != self.is_eval:
            return self.busy_error
        if self.stop is None:
            self.stop = KILLED
            self.server.log("script killed by user with SCRIPT KILL")
        return None

    def halt(self) -> None:
        """Stop the script and then the server (SHUTDOWN NOSAVE, a second SIGINT)."""
        self.halted = True
        self.stop = KILLED

    def stats(self) -> dict[bytes, Any]:
        """FUNCTION STATS's ``running_script``."""
        return {
            b"name": self.name.encode("utf-8", "surrogateescape"),
            b"command": self.command,
            b"duration_ms": int((time.monotonic() - self.started) * 1000),
        }

    def end(self) -> None:
        if self.pump is not None:
            self.server.busy = None
            self.pump.close()
            self.pump = None
            if self.server.group_commit is not None:
                self.server.group_commit.script_runs_long(False)


class Pump:
    """Serve the network while a script runs long, in place of the event loop (which waits for the
    script): accept connections, read what clients send and run it (``BUSY`` for most commands).
    The script's caller is not read from, as Redis leaves it until its reply."""

    def __init__(self, server: Server, caller: Connection | None) -> None:
        self.server = server
        self.caller = caller
        self.selector = selectors.DefaultSelector()
        self.listeners: list[socket.socket] = []
        for fd, family, kind in server.listening:
            if kind == "tls":  # (its handshakes need the event loop: they wait in the backlog)
                continue
            sock = socket.socket(family, socket.SOCK_STREAM, fileno=os.dup(fd))
            sock.setblocking(False)
            self.listeners.append(sock)
            self.selector.register(sock, selectors.EVENT_READ, kind)
        for conn in list(server.clients.values()):
            self._watch(conn)
            if conn.pending and conn is not caller and conn.blocked is None:
                conn.run_pending()  # read before the script started: answered now, as what follows

    def _watch(self, conn: Connection) -> None:
        transport = conn.transport
        if conn is self.caller or transport is None or conn.blocked is not None or conn._paused:
            return
        if conn.tls:  # (what it sends is encrypted: the event loop reads it once the script ends)
            return
        if conn.protocol_error is not None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.selector.register(sock.fileno(), selectors.EVENT_READ, conn)

    def forget(self, fd: int) -> None:
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def poll(self) -> None:
        """Handle what is ready now (without waiting)."""
        for key, _ in self.selector.select(0):
            if isinstance(key.data, str):
                self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
            else:
                self._read(key.data, key.fd)

    def _accept(self, listener: socket.socket, kind: str) -> None:
        try:
            conn = accept(self.server, listener, kind)
        except OSError:  # out of file descriptors...: the client waits in the backlog
            return
        if conn is not None:
            self._watch(conn)

    def _read(self, conn: Connection, fd: int) -> None:
        transport = conn.transport
        if transport is None or conn.blocked is not None or conn._paused or conn.protocol_error is not None:
            self.forget(fd)
            return
        if transport.get_write_buffer_size() > MAX_UNSENT:  # it does not read its replies: wait
            self.forget(fd)
            return
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset: the event loop finds it out once the script ends
            data = b""
        if not data:
            self.forget(fd)
            if isinstance(groupcommit.inner(transport), AcceptedTransport):
                transport.close()
            return
        conn.data_received(data)  # (it queues the connection for the loop too: nothing is left then)
        conn.run_pending()
        if conn.parser.held:
            conn.run_held()
        if conn.transport is None or conn.blocked is not None or conn.protocol_error is not None:
            self.forget(fd)

    def close(self) -> None:
        """The script ended: the event loop serves the clients again, those accepted here too (see
        :func:`kv_backend.server.listen.accept`)."""
        for key in list(self.selector.get_map().values()):
            self.forget(key.fd)
        self.selector.close()
        for sock in self.listeners:
            sock.close()
