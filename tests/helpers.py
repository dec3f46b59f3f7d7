"""Helpers for tests that run code in other processes."""

from __future__ import annotations

import errno
import logging
import os
import pickle
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

R = TypeVar("R")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pyproject() -> dict[str, Any]:
    """The project's pyproject.toml, parsed (by tomli before Python 3.11, which has no tomllib: the dev
    extra installs it there)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def child_env() -> dict[str, str]:
    """Environment for child Python processes: the project importable from this checkout."""
    env = dict(os.environ)
    paths = [ROOT, os.path.join(ROOT, "integrations")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_kvb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m kv_backend ARGS`` (the kvb command) in a child process, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "kv_backend", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_quick_soak(script: str, tmp_path: object) -> str:
    """Run ``benchmarks/<script> run --quick --seed 1`` and return its output; assert it passed."""
    soak = os.path.join(ROOT, "benchmarks", script)
    workdir = os.path.join(str(tmp_path), "soak")
    proc = subprocess.run(
        [sys.executable, soak, "run", "--quick", "--seed", "1", "--dir", workdir],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checked:" in proc.stdout and "unexpected exits 0" in proc.stdout, proc.stdout
    return proc.stdout


def run_python(
    code: str, *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter and return the completed process."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter without waiting for it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=child_env(),
        **kwargs,
    )


def fork_child(fn: Callable[[], object]) -> int:
    """Fork; run ``fn`` in the child, which exits 0 if it returned (1, with its traceback, if not)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def exit_code(pid: int) -> int:
    """Wait for the child ``pid`` and return its exit code (negative: the signal that killed it)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def reap(pid: int, timeout: float = 10.0) -> int:
    """The exit code of the child ``pid`` (as ``exit_code``), which should end by itself: killed with
    SIGKILL where it has not within ``timeout`` seconds (then ``-SIGKILL``), so that a stuck child fails
    its test rather than hang it."""
    import select

    pidfd = os.pidfd_open(pid)
    try:
        ended, _, _ = select.select([pidfd], [], [], timeout)  # (readable once the child has exited)
    finally:
        os.close(pidfd)
    if not ended:
        os.kill(pid, signal.SIGKILL)
    return exit_code(pid)


def process_cpu_seconds(pid: int) -> Callable[[], float]:
    """A function giving the CPU time (user + system, in seconds) process ``pid`` has used so far:
    what a process spent, which a busy machine does not stretch as it does the wall clock (Linux)."""
    if not os.path.exists(f"/proc/{pid}/stat"):
        import pytest

        pytest.skip("needs /proc/PID/stat (Linux)")
    ticks = os.sysconf("SC_CLK_TCK")

    def seconds() -> float:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15

    return seconds


def wait_for(pred: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    """Return once ``pred()`` is true, checking every 5 ms; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(0.005)


def before_expiry(lifetimes: tuple[float, ...], attempt: Callable[[float], Any]) -> tuple[Any, float]:
    """Run ``attempt(life)``, which stores something to live ``life`` seconds and reads it back, with
    each of ``lifetimes`` in turn until a run ends within that life: a loaded machine may take longer
    than the shortest. Return the run's result and a time.time() by which what it stored has expired."""
    for life in lifetimes:
        started = time.time()
        result = attempt(life)
        ended = time.time()
        if ended < started + life:
            return result, ended + life
    raise AssertionError(f"no run of {attempt} ended within the life it gave ({lifetimes} s)")


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_http_response(sock: socket.socket, *, whole: bool = False) -> tuple[bytes, bytes]:
    """Read one HTTP response from ``sock``: its head (status line and headers) and its Content-Length
    body. A connection closed before the head ends is an AssertionError; one closed mid-body ends the
    body there, or, with ``whole``, is an AssertionError too."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            assert not whole, "connection closed mid-body"
            break
        body += chunk
    return head, body


def connect_when_listening(port: int, wait: float = 20) -> socket.socket:
    """Connect to 127.0.0.1:``port`` as soon as a server listens there (within ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def stalled_upload(port: int) -> socket.socket:
    """Start a PUT on the kvb http at ``port`` (once it listens) whose body never ends, and return its
    connection once the app is reading the body: uvicorn sends "100 Continue" when the app first asks
    for it. A shutdown signalled from then on finds the request in progress."""
    conn = connect_when_listening(port)
    conn.settimeout(10)
    conn.sendall(b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
    continued = conn.recv(4096)
    if not continued.startswith(b"HTTP/1.1 100 "):
        conn.close()
        raise AssertionError(f"not asked for the body: {continued!r}")
    conn.sendall(b"abc")
    return conn


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything ``sock`` receives until the peer closes it (a hang fails with the socket's timeout)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


class LogSays(logging.Handler):
    """A handler whose ``said`` event is set once a record's message starts with ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.said = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.text):
            self.said.set()


def note_waits(monkeypatch, db: Any) -> threading.Event:
    """An event set each time a thread starts waiting in ``db.wait_for_change`` (a blocking command
    waiting for a write): a test clears it, then acts once the waiter waits, not after a guessed sleep."""
    waiting = threading.Event()
    wait_for_change = db.wait_for_change

    def noted(*args: Any, **kwargs: Any) -> bool:
        waiting.set()
        return wait_for_change(*args, **kwargs)

    monkeypatch.setattr(db, "wait_for_change", noted)
    return waiting


def require_tool(name: str) -> str:
    """Return the path of an external program, or skip (fail under CI) if it is missing."""
    import pytest

    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian: redis-server / redis-tools; `make test` installs them)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires {name}: {message}")
    pytest.skip(message)


ENGINE_MODULES = (
    "kv_backend.db",
    "kv_backend.db_common",
    "kv_backend.db_open",
    "kv_backend.db_read",
    "kv_backend.db_write",
)


def patch_engine(monkeypatch, name: str, value: object) -> None:
    """Replace a module-level name of the engine (``_time``, ``_pwrite``...) in every part of DB using it.

    A fake ``_time`` also keeps the sync timer of ``sync=<seconds>`` out (a write that returns unsynced
    arms none): its thread waits in real seconds, and, started late on a busy machine, would find a
    clock moved on by hours and fsync in the middle of what the test counts."""
    import importlib

    for module_name in ENGINE_MODULES:
        module = importlib.import_module(module_name)
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)
    if name == "_time":
        from kv_backend.sync_timer import SyncTimer

        monkeypatch.setattr(SyncTimer, "arm", lambda self, db, since: True)


def data_files(store: str) -> list[str]:
    """The paths of a store's data files, oldest first."""
    from kv_backend.files import data_name, list_data_files

    return [os.path.join(store, data_name(f)) for f in list_data_files(store)]


def fingerprint(store: str) -> dict[str, str]:
    """sha256 of every file of a directory, by name: to check that something left it unchanged."""
    import hashlib

    out = {}
    for name in sorted(os.listdir(store)):
        with open(os.path.join(store, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


NOBODY = 65534


def become_nobody() -> None:
    """Become the ``nobody`` user where running as root, who may write any directory (a forked child
    only)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def reachable_dir(prefix: str) -> Iterator[str]:
    """A fixture's body: a new directory the nobody user can reach (pytest's own is root's alone), removed
    with what it holds at the end (its directories made reachable again first)."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    yield path
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    shutil.rmtree(path)


def waiting_for_flock(inode: int) -> bool:
    """Whether a process waits for a ``flock`` on the file of ``inode`` (Linux: ``/proc/locks``)."""
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[6].endswith(f":{inode}") for line in f)


def fork_talking(child: Callable[[int, int], object]) -> tuple[int, int, int]:
    """Fork a child that runs ``child(orders, answers)``: a pipe's end to read the test's orders from, and
    one to write its answers to; it exits 0 if that returned, 1 if not (its traceback printed, and written
    to the answers, first). Returns (pid, the end to write orders to, the end to read answers from)."""
    orders_r, orders_w = os.pipe()
    answers_r, answers_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(orders_w)
            os.close(answers_r)
            child(orders_r, answers_w)
            code = 0
        except BaseException:
            traceback.print_exc()
            os.write(answers_w, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(orders_r)
    os.close(answers_w)
    return pid, orders_w, answers_r


def run_as_nobody(fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` in a forked child, as the ``nobody`` user if the tests run as root; return what
    it returned (picklable). Raises AssertionError with the child's traceback if ``fn`` raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            become_nobody()
            out: Any = ("ok", fn())
        except BaseException:
            out = ("raised", traceback.format_exc())
        try:
            data = pickle.dumps(out)
            while data:
                data = data[os.write(w, data) :]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    status, value = pickle.loads(b"".join(chunks))
    assert status == "ok", value
    return value


def nobody_dir(base: str, name: str = "kv") -> str:
    """A directory ``base/name`` (0700) of the nobody user: a root file there is one nobody cannot write."""
    path = os.path.join(base, name)
    os.mkdir(path, 0o700)
    os.chown(path, NOBODY, NOBODY)
    return path


def nobody_store(base: str) -> str:
    """A store of the nobody user in :func:`nobody_dir`, of overwritten records (a merge has work)."""
    from kv_backend import DB

    path = nobody_dir(base)

    def fill() -> None:
        with DB(path) as db:
            for i in range(300):
                db.put(b"k%d" % (i % 30), b"v%d" % i)

    run_as_nobody(fill)
    return path


def file_owners(path: str) -> dict[str, tuple[int, int]]:
    """``{name: (uid, gid)}`` of the entries of the directory ``path``."""
    return {n: (st.st_uid, st.st_gid) for n in os.listdir(path) for st in [os.stat(os.path.join(path, n))]}


def nobody_writes_and_merges(path: str, key: bytes) -> bytes | None:
    """As nobody: open the store at ``path``, write (through a rotation), merge, and read ``key`` back."""
    from kv_backend import DB

    def work() -> bytes | None:
        with DB(path, max_file_size=4096) as db:
            for i in range(200):
                db.put(b"n%d" % (i % 10), b"x" * 100)
            db.merge()
            return db.get(key)

    return run_as_nobody(work)


def python_calls(fn: Callable[[], object]) -> list[str]:
    """The names of the Python functions ``fn()`` calls, in order, ``fn``'s own first (C functions left
    out): what a hot path runs, for tests that hold it to a few calls."""
    names: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            names.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return names


def thread_reporting(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """A daemon thread (not started) that runs ``fn()``, and the list that receives what it
    returned or the exception it raised, for tests that pause it at a chosen point."""
    got: list[object] = []

    def run() -> None:
        try:
            got.append(fn())
        except Exception as exc:  # reported to the test
            got.append(exc)

    return threading.Thread(target=run, daemon=True), got


def key_url(key: bytes, suffix: str = "") -> str:
    """The HTTP API's URL path of ``key`` (percent-encoded as clients must), plus ``suffix``."""
    from kv_backend.http import encode_key

    return "/v1/keys/" + encode_key(key) + suffix


def tree_modes(root: str) -> dict[str, int]:
    """The permission bits of every file and directory under ``root``, by path relative to it."""
    out = {}
    for where, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(where, n)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def store_of_mode(path: Any, file_mode: int, *, without: str | None = None, dir_mode: int = 0o700) -> str:
    """A store at ``path`` (one key) whose files are all ``file_mode``, in a directory of ``dir_mode``,
    with its file ``without`` (``"LOCK"``, ``"STATE"``) removed, as a store copied without it."""
    from kv_backend import DB

    store = str(path)
    os.mkdir(store, dir_mode)
    with DB(store) as db:
        db.put(b"k", b"v")
    for name in os.listdir(store):
        os.chmod(os.path.join(store, name), file_mode)
    if without is not None:
        os.unlink(os.path.join(store, without))
    return store


def mode_of(store: str, name: str) -> int:
    """The permission bits of the file ``name`` of ``store``."""
    return stat.S_IMODE(os.stat(os.path.join(store, name)).st_mode)


def kill_at_call(call: str, n: int) -> None:
    """In a forked child: make the ``n``-th call of ``os.<call>`` (``"replace"``, ``"unlink"``...) from
    now on kill this process with SIGKILL before it runs: a crash at that step of what follows."""
    real, calls = getattr(os, call), [0]

    def step(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(os, call, step)


class FsyncSpy:
    """Counts fdatasync/fsync calls and remembers what the file (or directory: ``paths``) was and held at
    each call."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[int] = []
        self.contents: list[bytes] = []
        self.paths: list[str] = []
        real_fdatasync, real_fsync = os.fdatasync, os.fsync

        def fdatasync(fd):
            self._seen(fd)
            real_fdatasync(fd)

        def fsync(fd):
            self._seen(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        monkeypatch.setattr(os, "fsync", fsync)

    def _seen(self, fd: int) -> None:
        self.calls.append(fd)
        self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        try:
            size = os.fstat(fd).st_size
            self.contents.append(os.pread(fd, size, 0) if size <= (16 << 20) else b"")
        except OSError:
            self.contents.append(b"")


def one_key_store(tmp_path: Any, format_bytes: bytes | None = None) -> str:
    """A store at ``tmp_path``/s holding ``k`` = ``v``, its format file (``KVB_FORMAT``) then replaced by
    ``format_bytes`` where given."""
    from kv_backend import DB
    from kv_backend.files import FORMAT_FILE

    store = os.path.join(str(tmp_path), "s")
    with DB(store) as db:
        db.put(b"k", b"v")
    if format_bytes is not None:
        with open(os.path.join(store, FORMAT_FILE), "wb") as f:
            f.write(format_bytes)
    return store


def fail_store_id_fsync(monkeypatch) -> None:
    """Make every fsync of a store's directory made to keep its id (``store_id.fsync_dir``) fail with
    EIO, as on a disk that no longer answers."""
    from kv_backend import store_id as store_id_module

    def fsync_dir(path: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store_id_module, "fsync_dir", fsync_dir)


def fail_a_creation_while_another_opens(
    monkeypatch, store: str, open_it: Callable[[], object], *, other_waits: bool = False
) -> None:
    """Create the store ``store`` in this thread with every fsync of its directory failing (the open
    raises StorageError and removes its format file again), while ``open_it`` runs in another thread,
    started once the format file is in place: that open's format check (``db.format_file_text``, made
    without the lock) reads the file before the creator removes it. With ``other_waits`` the other open
    goes on past its check only once the creation has failed. Returns once the creation failed and the
    other thread ended (every wait bounded: 30 s). The patches stay (``monkeypatch.undo()`` ends them)."""
    import pytest

    import kv_backend.db as db_module
    from kv_backend import DB
    from kv_backend.errors import StorageError

    creator = threading.current_thread()
    checked, creator_done = threading.Event(), threading.Event()
    real_fsync, real_check = os.fsync, db_module.format_file_text

    def fsync(fd: int) -> None:
        if threading.current_thread() is creator and os.path.samestat(os.fstat(fd), os.stat(store)):
            if not checked.is_set():
                other.start()  # (the format file is in place: the other open's check reads it)
                assert checked.wait(30)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    def check(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_check(*args, **kwargs)
        finally:
            if threading.current_thread() is other:
                checked.set()
                if other_waits:
                    assert creator_done.wait(30)  # (the rest of its open comes after the file's removal)

    other = threading.Thread(target=open_it, name="kvb-other-open", daemon=True)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(db_module, "format_file_text", check)
    try:
        with pytest.raises(StorageError, match="cannot create a store in"):
            DB(store)
    finally:
        checked.set()
        creator_done.set()
        if other.ident is not None:
            other.join(30)


def fail_fsync_of(monkeypatch, where: Any, code: int = errno.EIO) -> list[str]:
    """Make every later ``os.fsync`` of a directory fail with ``code`` (``OSError(code, strerror)``), and
    return the list of the real paths (as ``/proc/self/fd`` names them) it failed for, filled as it does.

    ``where`` is the directory (a path: it matches the directory there by ``os.path.samestat``, while one
    exists there), or a predicate on the real path of the directory being fsynced. Other fsyncs (of
    files, of other directories) run as usual."""
    real = os.fsync
    failed: list[str] = []
    matches: Callable[[int, str], bool]
    if callable(where):

        def matches(fd: int, path: str) -> bool:
            return os.path.isdir(path) and bool(where(path))

    else:

        def matches(fd: int, path: str) -> bool:
            try:
                return os.path.samestat(os.fstat(fd), os.stat(where))
            except FileNotFoundError:
                return False

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if matches(fd, path):
            failed.append(path)
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return failed


def on_event_loop() -> bool:
    """Whether the calling thread runs an asyncio event loop now (the server's, for a call made there
    rather than in a worker thread)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop ``proc`` with SIGTERM if it runs, SIGKILL if it has not exited ``timeout`` s later; reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def listens_on(pid: int, port: int) -> bool | None:
    """Whether the process ``pid`` holds a listening TCP socket on ``port`` (its descriptors against
    the kernel's listening sockets); None where Linux's /proc cannot tell (another system). A server's
    test helper asks it once the port answers: a free port may be given to a parallel test's server
    too, and where that one listens first, this one cannot, and the test would talk to that server."""
    try:
        listening = _listening_inodes(port)
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in listening:
            return True
    return False


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port``: asked of the kernel's sock_diag (netlink),
    which lists the listening sockets only, else read from /proc/net/tcp and tcp6. Those list every
    socket, the suite's thousands in TIME_WAIT too: 20-40 ms a read then, and servers' helpers poll
    this every 10 ms while a server starts, taking a core from the tests running beside them."""
    try:
        return {inode for local, _, inode in _diag_tcp(1 << _TCP_LISTEN, port) if local == port}
    except OSError:
        pass
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    listening.add(fields[9])
    return listening


def tcp_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of this system's TCP socket from ``local_port`` to ``remote_port`` (on loopback: the
    server end of a client's connection), None if there is none: as :func:`_listening_inodes`, asked
    of sock_diag (the sockets not in TIME_WAIT), else read from /proc/net/tcp."""
    try:
        sockets = _diag_tcp(_TCP_ALL & ~(1 << _TCP_TIME_WAIT), local_port)
    except OSError:
        sockets = []
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                ports = (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16))
                sockets.append((*ports, fields[9]))
    for local, remote, inode in sockets:
        if (local, remote) == (local_port, remote_port):
            return inode
    return None


def tcp_ends(port: int, states: set[int]) -> int:
    """How many of this system's TCP sockets on ``port`` (their local port: on loopback, a server's
    ends of its connections) are in one of ``states`` (linux/tcp_states.h: 1 ESTABLISHED, 8
    CLOSE_WAIT, 10 LISTEN...: /proc/net/tcp's st column): asked of sock_diag, else read from
    /proc/net/tcp (see :func:`_listening_inodes` for why)."""
    try:
        return sum(1 for local, _, _ in _diag_tcp(sum(1 << state for state in states), port) if local == port)
    except OSError:
        pass
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for row in rows if int(row[1].split(":")[1], 16) == port and int(row[3], 16) in states)


#: TCP states (linux/tcp_states.h), as bits of sock_diag's mask.
_TCP_TIME_WAIT, _TCP_LISTEN, _TCP_ALL = 6, 10, (1 << 12) - 2


def _diag_tcp(states: int, port: int) -> list[tuple[int, int, str]]:
    """(local port, remote port, inode) of this system's IPv4 and IPv6 TCP sockets in ``states`` (a
    mask of 1 << state) on the local ``port`` (0: any): a NETLINK_SOCK_DIAG dump (linux/inet_diag.h:
    an inet_diag_req_v2 asked, an inet_diag_msg for each socket), which the kernel filters by state
    and port; OSError where there is none (callers check the port too)."""
    netlink_sock_diag, sock_diag_by_family, nlmsg_done, nlmsg_error = 4, 20, 3, 2
    found: list[tuple[int, int, str]] = []
    if not hasattr(socket, "AF_NETLINK"):
        raise OSError("no netlink sockets here")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, netlink_sock_diag) as nl:
        nl.settimeout(5)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            # family, protocol, no extensions, padding, the states; the socket id: its local port
            # (big-endian), the rest zero (any)
            request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, states)
            request += struct.pack("!HH44x", port, 0)
            flags = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
            nl.send(struct.pack("=IHHII", 16 + len(request), sock_diag_by_family, flags, seq, 0) + request)
            done = False
            while not done:
                data, offset = nl.recv(1 << 16), 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == nlmsg_error:
                        raise OSError(f"sock_diag refused the dump: {data[offset + 16 : offset + 20]!r}")
                    if kind == nlmsg_done or length < 16:
                        done = True
                        break
                    # inet_diag_msg (after the 16 bytes of header): its socket id's ports at byte 4
                    # (big-endian), its inode at 68
                    local, remote = struct.unpack_from("!HH", data, offset + 20)
                    found.append((local, remote, str(struct.unpack_from("=I", data, offset + 84)[0])))
                    offset += (length + 3) & ~3
    return found


def trace_calls(
    monkeypatch: Any,
    obj: object,
    names: Sequence[str],
    item: Callable[[str, tuple[Any, ...], bool], Any] = lambda name, args, on_loop: (name, on_loop),
) -> list[Any]:
    """Wrap the methods ``names`` of ``obj`` (through ``monkeypatch``) so that each call is recorded, in the
    list returned, as ``item(name, args, made on an event loop)``: whether a server made the call on its
    event loop or handed it to a worker thread."""
    seen: list[Any] = []
    for name in names:
        real = getattr(obj, name)

        def wrapper(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            seen.append(item(_name, args, on_event_loop()))
            return _real(*args, **kwargs)

        monkeypatch.setattr(obj, name, wrapper)
    return seen


def start_own_server(
    launch: Callable[[], tuple[Any, Sequence[int]]],
    ready: Callable[[Any, list[int]], object] | None = None,
    tries: int = 5,
    timeout: float = 60,
) -> tuple[Any, list[int]]:
    """Start a server process with ``launch()``, which picks its ports anew on each call (free_port) and
    returns the process (a Popen) and its ports (a 0 among them: none), until that process is the one
    listening on all of them; then wait for ``ready(process, ports)`` (which raises if the server is not,
    and then the process is ended) and return both.

    The system may give a free port to a parallel test too, and where that test's server listens there
    first, this one cannot: it exits, and a test waiting for the port to answer would talk to that
    other server. So this waits until Linux's /proc shows the process holds listening sockets on all its
    ports (:func:`listens_on`; elsewhere, until the ports answer), without connecting to them; where the
    process exits first while another listens on one of its ports, or a socket of another holds one (a
    client connection's local end: :func:`_port_held`), it starts it again on other ports.
    One that exits on its own (a port of its own it could listen on) is ``ready``'s to report (its log,
    a skip), or, where ``ready`` returns, returned as it is (a test of a start that fails); without
    ``ready``, an AssertionError."""
    for _ in range(tries):
        proc, given = launch()
        ports = [p for p in given if p]
        ours = _listens_on_all(proc, ports, timeout)
        if not ours and any(_answers(p) or _port_held(p) for p in ports):
            _end(proc, close=True)  # (another process listens on its port, or holds it: it could not)
            continue
        if ready is not None:
            try:
                ready(proc, ports)
            except BaseException:
                _end(proc)
                raise
        elif not ours:
            raise AssertionError(f"the server exited (status {proc.returncode}) before listening on {ports}")
        return proc, ports
    raise AssertionError(f"{tries} times in a row another server took a port first, ports {ports} the last")


def move_to_free_ports(
    config_set: Callable[..., R], refused: Callable[[R], bool], count: int = 1, tries: int = 5
) -> tuple[list[int], R]:
    """Move a running server to ``count`` new ports: ``config_set(*ports)`` (a CONFIG SET of them) on
    ports :func:`free_port` hands out, and again on others while ``refused(reply)`` (the server's reply
    for a port it cannot listen on); the ports of the last call and its reply.

    The system may give a free port to a parallel test too, whose server may listen there before this
    one does: then the CONFIG SET fails, through no fault of the server's. A server that refuses every
    port still fails the test: its last reply is returned, for the test to check."""
    for _ in range(tries):
        ports = [free_port() for _ in range(count)]
        reply = config_set(*ports)
        if not refused(reply):
            break
    return ports, reply


def _listens_on_all(proc: Any, ports: Sequence[int], timeout: float) -> bool:
    """Wait until ``proc`` listens on all ``ports`` (True) or has exited (False)."""
    deadline = time.monotonic() + timeout
    while True:
        owned = [listens_on(proc.pid, p) for p in ports]
        if all(owned) or (None in owned and all(_answers(p) for p in ports)):  # (None: no /proc)
            return True
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            _end(proc)
            raise AssertionError(f"the server did not listen on {ports} in {timeout} s")
        time.sleep(0.01)


#: The TCP states of a socket whose local port a listener cannot be bound to (linux/tcp_states.h: all but
#: 6 TIME_WAIT, which SO_REUSEADDR lets a server bind over, and 7 CLOSE).
_HOLDING = set(range(1, 13)) - {6, 7}


def _port_held(port: int) -> bool:
    """Whether a TCP socket of this system has ``port`` as its local port and keeps a server from
    listening there: another test's client connection given it by the system (a connected socket's local
    port), or a server that listened there and was gone before :func:`_answers` asked."""
    try:
        return tcp_ends(port, _HOLDING) > 0
    except OSError:
        return False


def _answers(port: int) -> bool:
    """Whether a server listens on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return False
    return True


def _end(proc: Any, close: bool = False) -> None:
    """Kill ``proc`` if it runs and reap it; with ``close``, close its pipes (a start discarded)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for pipe in (getattr(proc, name, None) for name in ("stdin", "stdout", "stderr")) if close else ():
        if pipe is not None:
            pipe.close()


def serve_here_with_client(
    serve: Callable[[int], Any], client: Callable[[int], object], tries: int = 5
) -> tuple[Any, int, threading.Thread]:
    """Run ``serve(port)`` (a server in this process, returning when it stops) on a port free_port gives,
    and ``client(port)`` in a daemon thread once this process listens there; return what ``serve``
    returned, the port, and the client's thread (for the test to join).

    As for :func:`start_own_server`: where a parallel test's server took that port first, this one
    cannot listen, and a client waiting for the port to answer would talk to that server (and signal
    this process, as these tests' clients do, once this server had stopped). The client starts only
    once /proc shows this process listening there (elsewhere: once the port answers); where ``serve``
    ends without listening while another listens there, it runs again on another port."""
    for _ in range(tries):
        port = free_port()
        stopped, began = threading.Event(), threading.Event()
        thread = threading.Thread(target=_client_once_here, args=(client, port, stopped, began), daemon=True)
        thread.start()
        try:
            result = serve(port)
        except Exception:
            if began.is_set() or not _answers(port):
                raise
            continue  # (it could not listen: another process's port)
        finally:
            stopped.set()
        if began.is_set() or not _answers(port):
            return result, port, thread
    raise AssertionError(f"{tries} times in a row another server took a port first, port {port} the last")


def _client_once_here(
    client: Callable[[int], object], port: int, stopped: threading.Event, began: threading.Event
) -> None:
    """Run ``client(port)`` (setting ``began``) once this process listens on ``port``, unless ``stopped``
    is set first."""
    while not stopped.is_set():
        here = listens_on(os.getpid(), port)
        if here or (here is None and _answers(port)):
            began.set()
            client(port)
            return
        time.sleep(0.005)
