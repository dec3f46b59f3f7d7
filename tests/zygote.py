"""Children forked from a process that has already imported the project.

A fresh interpreter spends most of its start importing the project (about 0.3 s, several seconds
on a loaded machine); a test that kills a child at a random moment and starts another, many
times over, spent most of its time there. A :class:`Zygote` is one such interpreter, started once:
it imports the project, then forks a child for each :meth:`Zygote.start`, which runs the test's
script as ``python -c`` would, with stdout and stderr pipes of its own. The zygote never opens a
store, so each child starts as a fresh process would, the project imported and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from typing import IO

from helpers import spawn_python

#: The zygote: commands arrive on a SOCK_SEQPACKET (or datagram) socket, one per message: ``start`` (with the
#: child's stdout and stderr passed along) answers the new child's pid, ``wait PID`` its exit code
#: once it has ended (negative: the signal that killed it), ``poll PID`` that or ``-`` at once.
ZYGOTE = """
import importlib, os, socket, sys, traceback

sock = socket.socket(fileno=int(sys.argv[1]))
code = compile(sys.argv[2], "<forked child>", "exec")
for name in sys.argv[3:]:
    importlib.import_module(name)  # what every forked child would otherwise import first

def run_child(args, fds):
    sock.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in (null, *fds):
        os.close(fd)
    # Streams of their own, as a new interpreter has: the zygote's knew another file (seekable...).
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
    sys.argv = ["-c", *args]
    status = 0
    try:
        exec(code, {"__name__": "__main__"})
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (exc.code is not None)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

while True:
    msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
    if not msg:
        break  # the test closed its end, or sent an empty message (see Zygote.close)
    kind, *args = msg.decode().split("\\0")
    if kind == "start":
        pid = os.fork()
        if pid == 0:
            run_child(args, fds)
        for fd in fds:
            os.close(fd)
        sock.send(b"%d" % pid)
    else:
        pid, status = os.waitpid(int(args[0]), os.WNOHANG if kind == "poll" else 0)
        sock.send(b"%d" % os.waitstatus_to_exitcode(status) if pid else b"-")
"""


#: A zygote's code that runs the ``kvb`` command line (``python -m kv_backend ARGS``).
KVB_COMMAND = """
import runpy
runpy.run_module("kv_backend", run_name="__main__", alter_sys=True)
"""


class ForkedChild:
    """A child of the zygote, read, waited for and killed as a :class:`subprocess.Popen` with text
    pipes is (``stdout`` and ``stderr`` are None where its output went to a file)."""

    def __init__(self, zygote: Zygote, pid: int, stdout: IO[str] | None, stderr: IO[str] | None) -> None:
        self.zygote = zygote
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def poll(self) -> int | None:
        if self.returncode is None:
            answer = self.zygote.ask(f"poll\0{self.pid}")
            self.returncode = None if answer == "-" else int(answer)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None:
            deadline = time.monotonic() + timeout
            while self.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout)
                time.sleep(0.01)
        elif self.returncode is None:
            self.returncode = int(self.zygote.ask(f"wait\0{self.pid}"))
        return self.returncode


def _message_socketpair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of unix sockets that keep each message whole, and pass descriptors."""
    try:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:  # (macOS has no SOCK_SEQPACKET unix sockets: datagrams keep messages whole too)
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


class Zygote:
    """One interpreter that has imported the project and forks a child running ``code`` per
    :meth:`start`; a context manager: on exit, children still running are killed."""

    def __init__(self, code: str, preload: tuple[str, ...] = ("kv_backend",)) -> None:
        self.sock, theirs = _message_socketpair()
        self.sock.settimeout(60)
        try:
            fd = theirs.fileno()
            self.proc = spawn_python(ZYGOTE, str(fd), textwrap.dedent(code), *preload, pass_fds=[fd])
        finally:
            theirs.close()
        self.children: list[ForkedChild] = []

    def ask(self, message: str, fds: list[int] | None = None) -> str:
        socket.send_fds(self.sock, [message.encode()], fds or [])
        return self.sock.recv(64).decode()

    def start(self, *args: str, output: int | None = None) -> ForkedChild:
        """Fork a child that runs the code with ``sys.argv[1:] == args``: its stdout and stderr are
        pipes, or both go to the file open as ``output``."""
        if output is not None:
            pid = int(self.ask("\0".join(("start", *args)), [output, output]))
            child = ForkedChild(self, pid, None, None)
        else:
            (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
            try:
                pid = int(self.ask("\0".join(("start", *args)), [out_w, err_w]))
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                raise
            finally:
                os.close(out_w)
                os.close(err_w)
            stdout = open(out_r, encoding="utf-8")  # noqa: SIM115 - closed by close()
            stderr = open(err_r, encoding="utf-8")  # noqa: SIM115 - closed by close()
            child = ForkedChild(self, pid, stdout, stderr)
        self.children.append(child)
        return child

    def kill_when_ready(self, *args: str, delay: float) -> None:
        """Fork a child (which prints "ready" once it has started its work) and SIGKILL it ``delay`` s
        after it says so; fail if it did not get there, or failed before the kill (it may have
        finished its work)."""
        child = self.start(*args)
        ready = child.stdout.readline().strip() == "ready"
        if ready:
            time.sleep(delay)
        child.kill()
        code = child.wait()
        assert ready and code in (0, -signal.SIGKILL), f"the child failed ({code}):\n{child.stderr.read()}"

    def run(self, *args: str) -> str:
        """Fork a child, wait for it to end and return its output; fail, with what it wrote, unless
        it exited 0."""
        child = self.start(*args)
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.append(child.stderr.read()))
        reader.start()
        out = child.stdout.read()
        code = child.wait()
        reader.join()
        assert code == 0, f"child failed ({code}):\n{out}\n{errors[0]}"
        return out

    def close(self) -> None:
        try:
            for child in self.children:
                if child.returncode is None:
                    child.kill()
                    child.wait()
                for stream in (child.stdout, child.stderr):
                    if stream is not None:
                        stream.close()
        finally:
            with contextlib.suppress(OSError):
                self.sock.send(b"")  # an empty message: the zygote exits (a datagram socket has no end)
            self.sock.close()
            self.proc.wait(60)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
