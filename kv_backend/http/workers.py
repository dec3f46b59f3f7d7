"""``kvb http --workers N``: N forked worker processes serving one listening socket, supervised.

The parent binds the socket and opens no store; each worker is a whole ``kvb http`` (its connection
limit, head timeout, TLS, its own store opened while it listens, fsynced and closed at its stop). The
parent replaces a worker that a signal killed (SIGKILL, the OOM killer): at once, or after a delay
doubling from RESTART_DELAY_FIRST to RESTART_DELAY_MAX while workers keep dying within HEALTHY_AFTER
seconds of their start (a crash loop); a replacement whose fork fails (EAGAIN, ENOMEM) is put off
likewise, never stopping the server. It stops every worker gracefully on SIGTERM or SIGINT (a second
SIGTERM or SIGINT forces them; a worker already closing its store ignores them and finishes the close,
see hold_stops), and stops them all where one fails (its store cannot be opened): that
error is raised, not retried in a loop. A worker asked to stop that is still there ``graceful`` +
STOP_MARGIN seconds later (stuck) is killed (SIGKILL), as one forced still there FORCE_MARGIN seconds
later. The parent never waits on a worker's pipe: it reads each worker's reports (ready, its error)
without blocking and puts them together itself, so a worker stopped in the middle of one holds up nothing.
SIGHUP reloads: N new workers start (running what ``reload`` returns: the TLS files read again, in a
thread, so that a file on a mount that no longer answers holds up nothing: a read not done within
``reload_timeout`` refuses the reload; one such read at most runs, a SIGHUP during it deferred until it
returns, then the files read again), and the old ones stop gracefully once all the new ones are ready;
where they cannot start, or are not all ready within ``reload_timeout`` (RELOAD_TIMEOUT), the old ones
serve on, and a SIGHUP during a reload starts it over. The workers ignore SIGHUP, since a closed
terminal sends it to all of them at once.
Under systemd, the parent sends ``READY=1`` once every worker has its store open, ``STOPPING=1`` at
the stop; the workers send nothing.

uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``) does not fit: it starts its workers by
``spawn``, pickling a config whose app and TLS context cannot be pickled, and runs uvicorn's Server
class in them, not ``kvb http``'s.
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kv_backend.errors import ConfigurationError, KVError
from kv_backend.http import tls
from kv_backend.server import systemd

__all__ = ["supervise"]

log = logging.getLogger("uvicorn.error")  # (in uvicorn's log, as its own supervisor's lines)

#: What a worker runs: serve until stopped, calling its argument once the store is open; raise if it fails.
RunWorker = Callable[[Callable[[], None]], None]

#: What a reload (SIGHUP) calls in the parent before it starts the new workers: what they run (what a
#: worker reads at its start read again, e.g. the TLS files); raises (KVError) where they cannot start.
Reload = Callable[[], RunWorker]

_READY = "ready"

#: A worker's report to the parent (_READY, or its error) on its pipe: this header, the length of what
#: follows, then that many bytes (a pickle). The parent reads the pipe without blocking and puts each
#: report together itself: a worker stopped (or stuck) in the middle of writing one never holds it up.
_HEADER = struct.Struct("!I")

#: The longest report the parent takes (an error's pickle, its message at most a few KiB as a rule): a
#: longer length is no report of this module's, and the parent stops reading that worker's pipe.
MAX_REPORT = 16 << 20

#: The signals the parent sends its workers, blocked while one is forked (see _Supervisor._start).
_FORWARDED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

#: A worker that dies within this many seconds of its start counts as one more in a row to die young
#: (a crash loop); one that lived longer ends the row: it, and the next to die young, are replaced at once.
HEALTHY_AFTER = 5.0

#: Seconds a reload (SIGHUP) waits for all its new workers to have their store open: then it gives up, as
#: where one of them fails (the workers serving go on). Far longer than a store takes to open: a worker
#: not ready by then is stuck.
RELOAD_TIMEOUT = 300.0

#: Seconds between two looks of the parent at a reload's read of the files its workers need (see _Reading),
#: while one is under way.
READ_POLL = 0.02

#: Seconds a worker asked to stop (SIGTERM) has beyond the graceful period its requests get before it is
#: killed (SIGKILL): its store's close (an fsync) and its exit. One still there then is stuck (stopped,
#: in a call that never returns) and would keep the server's stop, or a reload, from ever ending.
STOP_MARGIN = 5.0

#: Seconds a worker forced to stop (a second SIGTERM or SIGINT: SIGINT, uvicorn's forced exit, which
#: cancels its requests and closes its store) has before it is killed (SIGKILL).
FORCE_MARGIN = 1.0

#: Seconds before the second worker in a row that died young is replaced, doubled for each after it,
#: up to RESTART_DELAY_MAX: a worker that keeps dying does not take the machine's CPU forking.
RESTART_DELAY_FIRST = 0.1
RESTART_DELAY_MAX = 10.0


class _Stop(BaseException):
    """SIGTERM in a worker before uvicorn handles it (none is raised once uvicorn has shut down)."""


#: Seconds after which a worker's SIGTERM whose _Stop Python dropped is delivered again (see _dropped).
STOP_AGAIN_AFTER = 0.001

#: A worker's SIGTERM came while _stop raised _Stop: kept, so that a _Stop that something swallowed
#: (an ``except BaseException`` on the way) still stops the worker once its store is open (_ready).
_stop_asked = False


#: A worker's server has shut down (see hold_stops): a SIGTERM or SIGINT now is ignored, not raised.
_held = False

#: A worker is closing its store (see closing): the stop signals ignored meanwhile, for its log.
_closing = False
_ignored: list[int] = []


def _stop(signum: int, frame: object) -> None:
    global _stop_asked
    if _held:
        _ignore(signum)
        return
    _stop_asked = True
    raise _Stop


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT in a worker: KeyboardInterrupt, as Python's own handler raises, until its server has shut
    down (see hold_stops)."""
    if _held:
        _ignore(signum)
        return
    raise KeyboardInterrupt


def _ignore(signum: int) -> None:
    if _closing and signum not in _ignored:
        _ignored.append(signum)


def hold_stops() -> None:
    """In a worker, once its server has shut down: from now on SIGTERM and SIGINT (a second stop: the
    main process forcing its workers, a second Ctrl-C, a SIGTERM sent to the worker again) are ignored,
    so that they cannot cut its close of the store short (its fsync, or the store's files left unclosed,
    as after a crash): the worker is ending anyway, and the main process kills (SIGKILL) one still there
    at its stop's deadline (STOP_MARGIN after the graceful period, FORCE_MARGIN once forced). The first
    stop signal, which uvicorn raises again once it has shut down, is ignored too: the worker's server
    returns, its store is closed, and it exits with status 0, as it would have."""
    global _held
    _held = True


@contextmanager
def closing() -> Iterator[None]:
    """A worker's close of its store (see hold_stops), a SIGTERM or SIGINT during it ignored, then
    logged once the close is done."""
    global _closing
    hold_stops()
    _closing = True
    try:
        yield
    finally:
        _closing = False
    for signum in _ignored:
        log.warning(
            "worker process [%d]: %s during the store's close: ignored, the close finished",
            os.getpid(),
            _name(signum),
        )
    _ignored.clear()


def _dropped(unraisable: sys.UnraisableHookArgs) -> None:
    """A worker's ``sys.unraisablehook``: a _Stop raised where Python drops exceptions (a ``__del__``,
    a weakref's callback, where _stop may run) is no error to print, but a stop asked of a worker that
    goes on: SIGTERM is sent again STOP_AGAIN_AFTER seconds later (SIGALRM, _stop_again), once out of
    that finalizer as a rule (else it is dropped and sent again once more). Anything else goes to
    Python's own hook (its "Exception ignored" lines)."""
    if unraisable.exc_type is not _Stop:
        sys.__unraisablehook__(unraisable)
        return
    try:
        signal.setitimer(signal.ITIMER_REAL, STOP_AGAIN_AFTER)
    except _Stop:  # (one more SIGTERM, handled during the call: the timer is set by then)
        pass


def _stop_again(signum: int, frame: object) -> None:
    """SIGALRM in a worker (set by _dropped): SIGTERM again, to the handler in place now: _stop, which
    raises _Stop here, before uvicorn's handlers are in place, else uvicorn's (a graceful shutdown)."""
    os.kill(os.getpid(), signal.SIGTERM)


def _ready(report: int) -> None:
    """Tell the parent this worker's store is open; a SIGTERM whose _Stop was swallowed is sent again,
    to uvicorn's handler now (this runs on its loop): a graceful shutdown, not a worker serving on."""
    _report(report, _READY)
    if _stop_asked:
        os.kill(os.getpid(), signal.SIGTERM)


class _Reports:
    """The parent's end of a worker's report pipe, read without ever blocking (see _HEADER)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.received = bytearray()  # (read, not yet a whole report)

    def fileno(self) -> int:
        return self.fd

    def read(self) -> tuple[list[object], bool]:
        """The reports that arrived whole since the last call, and whether the pipe ended (the worker
        closed it, or it sent what is no report: then unread, and the reports before it are returned)."""
        ended = False
        for _ in range(16):  # (1 MiB at most, the rest next time: a worker writing on holds up nothing)
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError:
                ended = True
                break
            if not data:
                ended = True
                break
            self.received += data
        reports: list[object] = []
        while len(self.received) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self.received)
            if length > MAX_REPORT:
                log.warning("a worker process sent a report of %d bytes: not read", length)
                return reports, True
            end = _HEADER.size + length
            if len(self.received) < end:
                break
            try:
                reports.append(pickle.loads(self.received[_HEADER.size : end]))
            except Exception as exc:  # (unpickling a report from the worker's code: any error)
                reports.append(
                    ConfigurationError(f"a worker process sent a report that cannot be read: {exc}")
                )
            del self.received[:end]
        return reports, ended

    def close(self) -> None:
        os.close(self.fd)


class _Reading:
    """A reload's call of ``reload`` (the TLS files read again), in a thread of its own: a file on a
    mount that no longer answers would otherwise hold the parent there for ever, heeding no SIGTERM.
    Nothing can stop the thread: one still running at ``deadline`` is given up on (its reload refused),
    and the supervisor starts no other while it runs (see _Supervisor._reload)."""

    def __init__(self, reload: Reload, deadline: float) -> None:
        self.started = time.monotonic()
        self.asked = time.time()  # (the SIGHUP's, for the log: the operator's clock)
        self.deadline = deadline
        self.given_up = False  # not returned by its deadline: its reload was refused
        self.done = threading.Event()
        self.run_worker: RunWorker | None = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._call, args=(reload,), name="kvb-http-reload", daemon=True)
        self.thread.start()

    def _call(self, reload: Reload) -> None:
        try:
            self.run_worker = reload()
        except Exception as exc:  # (reported by the parent: a reload never stops the server)
            self.error = exc
        finally:
            self.done.set()

    def when(self) -> str:
        """The SIGHUP's time of day (``22:14:03``)."""
        return time.strftime("%H:%M:%S", time.localtime(self.asked))

    def what(self) -> str:
        """What the read waits for now: the file it reads (``reading /etc/kv/cert.pem (--ssl-certfile)``),
        else where its thread is (``stuck in FILE:LINE FUNCTION, from kv_backend/FILE:LINE FUNCTION``)."""
        now = tls.reading_now(self.thread.ident)
        return f"reading {now}" if now is not None else where(self.thread)


@dataclass
class _Worker:
    pid: int
    reports: _Reports | None
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    error: BaseException | None = field(default=None)
    generation: int = 0  # the reload that started it (0: none)
    retiring: bool = False  # asked to stop by a reload: not replaced
    kill_at: float | None = None  # asked to stop: when it is killed if still there (time.monotonic())
    killed: bool = False  # killed (SIGKILL) by the parent


def supervise(
    count: int,
    run_worker: RunWorker,
    name: str,
    reload: Reload | None = None,
    *,
    graceful: float = 10.0,
    reload_timeout: float | None = None,
) -> None:
    """Run ``count`` workers, each ``run_worker`` in a forked process, until SIGTERM or SIGINT (then
    return) or until one fails (then raise its error). ``name`` (the store) is for systemd's status.
    SIGHUP starts ``count`` new workers, each running what ``reload`` returns (``run_worker`` again
    without it), and stops the others gracefully once all the new ones are ready; where ``reload``
    raises or has not returned within ``reload_timeout`` seconds (default RELOAD_TIMEOUT: it runs in a
    thread of its own, left to itself then; a SIGHUP while that thread runs starts no other, and is
    carried out once it returns), a new worker fails to start, or they are not all ready within
    ``reload_timeout`` seconds of their start, the others serve on (why is logged). ``graceful``: the
    seconds a worker asked to stop gives its requests; one still there STOP_MARGIN seconds after that is
    killed."""
    return _Supervisor(
        count, run_worker, name, reload, graceful=graceful, reload_timeout=reload_timeout
    ).run()


class _Supervisor:
    def __init__(
        self,
        count: int,
        run_worker: RunWorker,
        name: str,
        reload: Reload | None = None,
        *,
        graceful: float = 10.0,
        reload_timeout: float | None = None,
    ) -> None:
        self.count = count
        self.run_worker = run_worker
        self.name = name
        self.reload = reload
        self.graceful = graceful
        self.reload_timeout = RELOAD_TIMEOUT if reload_timeout is None else reload_timeout
        self.forced = False  # a second SIGTERM or SIGINT came: the workers were forced
        self.generation = 0  # the workers' that serve (the last reload done)
        self.reloading: tuple[int, RunWorker] | None = None  # the generation started, what it runs
        self.reloads = 0  # the reloads started (each one's workers have its own generation)
        self.reload_deadline = 0.0  # when the reload under way gives up (time.monotonic())
        self.reading: _Reading | None = None  # a SIGHUP's read of the TLS files (one at most)
        self.deferred: float | None = None  # the first SIGHUP that came while it ran (time.monotonic())
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.error: BaseException | None = None
        self.announced = False
        self.due: list[float] = []  # when the replacements put off (see _replace) are started
        self.died_young = 0  # the workers in a row that died within HEALTHY_AFTER of their start
        self.fork_failures = 0  # the replacements in a row whose fork failed (see _start_replacement)

    def run(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.lifeline_r, self.lifeline_w = os.pipe()  # the workers see its end when the parent is gone
        self.own_fds = (wake_r, wake_w, self.lifeline_w)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in handled}
        previous_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            for _ in range(self.count):
                self._start()
            while self.workers or self.due:
                self._wait(wake_r)
        finally:
            for worker in self.workers.values():  # (an exception here: none left behind)
                _kill(worker.pid, signal.SIGKILL)
                if worker.reports is not None:
                    worker.reports.close()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (wake_r, wake_w, self.lifeline_r, self.lifeline_w):
                os.close(fd)
        systemd.notify("STOPPING=1")
        if self.error is not None:
            raise self.error

    def _start(self, run_worker: RunWorker | None = None, generation: int | None = None) -> None:
        run_worker = run_worker or self.run_worker
        reports, report = os.pipe()
        # Blocked until the child has its own handlers: a SIGTERM forwarded to a child just forked
        # ran the parent's handler there (nothing) and the worker then served on, never stopping.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover  (the child: measured by the tests' processes, not here)
                os.close(reports)
                _child(run_worker, report, self.lifeline_r, self._parent_fds(), mask)
        except BaseException:  # (the fork failed: EAGAIN, ENOMEM)
            os.close(reports)
            os.close(report)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(report)
        self.workers[pid] = _Worker(
            pid, _Reports(reports), generation=self.generation if generation is None else generation
        )
        log.info("Started worker process [%d]", pid)

    def _parent_fds(self) -> list[int]:
        fds = list(self.own_fds)
        fds += [w.reports.fileno() for w in self.workers.values() if w.reports is not None]
        return fds

    def _wait(self, wake_r: int) -> None:
        watched = {w.reports.fileno(): w for w in self.workers.values() if w.reports is not None}
        timeout = 1.0 if not self.due else min(1.0, max(0.0, self.due[0] - time.monotonic()))
        if self.reloading is not None:
            timeout = min(timeout, max(0.0, self.reload_deadline - time.monotonic()))
        if self.reading is not None and not self.reading.given_up:  # (one given up on: once a second)
            timeout = min(timeout, READ_POLL)
        kills = [w.kill_at for w in self.workers.values() if w.kill_at is not None and not w.killed]
        if kills:
            timeout = min(timeout, max(0.0, min(kills) - time.monotonic()))
        readable, _, _ = select.select([wake_r, *watched], [], [], timeout)
        for fd in readable:
            if fd == wake_r:
                continue
            self._read(watched[fd])
        for signum in _drained(wake_r):
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop_all(signum)
            elif signum == signal.SIGHUP:
                self._reload()
        self._reap()
        if self.reading is not None:
            self._read_done()
        if self.reloading is not None and time.monotonic() >= self.reload_deadline and not self.stopping:
            self._reload_timed_out()
        self._kill_stuck()
        while self.due and self.due[0] <= time.monotonic():
            del self.due[0]
            self._start_replacement()

    def _read(self, worker: _Worker) -> None:
        """Take what ``worker`` reported since the last read (never waiting for the rest of a report:
        see _HEADER); once its pipe ended, it is closed."""
        assert worker.reports is not None
        messages, ended = worker.reports.read()
        if ended:
            worker.reports.close()
            worker.reports = None
        for message in messages:
            if message == _READY:
                worker.ready = True
                if self.reloading is not None and worker.generation == self.reloading[0]:
                    self._reloaded()
                elif not self.announced and sum(w.ready for w in self.workers.values()) >= self.count:
                    self.announced = True
                    systemd.notify("READY=1", f"STATUS=serving {self.name} with {self.count} workers")
            elif isinstance(message, BaseException):
                worker.error = message

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if worker.reports is not None:  # what it said before it ended (a report left half: dropped)
                self._read(worker)
            if worker.reports is not None:
                worker.reports.close()
            if self.stopping:
                continue
            if worker.retiring:
                log.info("worker process [%d] stopped (%s)", pid, _ended(status))
                continue
            if self.reloading is not None and worker.generation == self.reloading[0]:
                self._reload_failed(worker, _ended(status))
                continue
            if os.WIFSIGNALED(status):
                self._replace(worker, f"was killed ({signal.Signals(os.WTERMSIG(status)).name})")
                continue
            code = os.waitstatus_to_exitcode(status)
            if code == 0 and worker.error is None:  # stopped alone (a SIGTERM of its own): replaced
                self._replace(worker, "stopped (status 0)")
                continue
            self.error = worker.error or ConfigurationError(
                f"worker process [{pid}] exited with status {code}: stopping the server"
            )
            self._stop_all(signal.SIGTERM)

    def _reload(self) -> None:
        """SIGHUP: read the files the new workers need again (``reload``, in a thread, bounded by the
        reload's timeout), then start ``count`` new workers (see :func:`supervise`). At most one read
        runs: a SIGHUP while one does (given up on or not: nothing can stop its thread, and a SIGHUP
        retried again and again would leave one more waiting each time) is deferred until it returns."""
        if self.stopping:
            return
        if self.reload is None:
            self._start_reload(self.run_worker)
            return
        reading = self.reading
        if reading is not None:
            self._read_done()  # (one that returned meanwhile: its workers start, this one starts over)
        if self.reading is not None and self.reading is not reading:
            return  # (it returned and SIGHUPs came during it: the read started now is this one's too)
        if self.reading is not None:  # still running, stuck maybe: no second read; this reload follows it
            if self.deferred is None:
                self.deferred = time.monotonic()
            log.warning(
                "SIGHUP while the TLS files of the reload asked at %s are still being read (for %.1f s%s; "
                "%s): no second read is started: this reload follows once it returns",
                self.reading.when(),
                time.monotonic() - self.reading.started,
                ", given up on" if self.reading.given_up else "",
                self.reading.what(),
            )
            return
        self._read_again()

    def _read_again(self) -> None:
        assert self.reload is not None
        try:
            self.reading = _Reading(self.reload, time.monotonic() + self.reload_timeout)
        except RuntimeError as exc:  # (no thread: the process's limit of tasks; the server serves on)
            log.error(
                "SIGHUP: cannot reload, the workers serving go on: no thread could be started to read the "
                "TLS files (%s); the next SIGHUP tries again",
                exc,
            )
            return
        self._read_done()

    def _read_done(self) -> None:
        """Once the read of a reload (SIGHUP) returned, start its new workers; where it failed, or has
        not returned by its deadline (stuck), the reload is refused and the workers serving go on. A read
        that SIGHUPs came during (deferred) is followed by another, its own result unused: it may predate
        what the operator changed before them."""
        reading = self.reading
        assert reading is not None
        if self.stopping:
            self.reading = self.deferred = None
            return
        if not reading.done.is_set():
            if reading.given_up or time.monotonic() < reading.deadline:
                return
            reading.given_up = True
            log.error(
                "SIGHUP: cannot reload, the workers serving go on: the TLS files were not read within %g s "
                "(%s: a file on a mount that no longer answers?); a SIGHUP waits for this read to return, "
                "then reads them again",
                self.reload_timeout,
                reading.what(),
            )
            return  # (a reload under way goes on)
        self.reading = None
        took = time.monotonic() - reading.started
        if self.deferred is not None:
            log.warning(
                "SIGHUP: the read of the TLS files of the reload asked at %s returned after %.1f s: reading "
                "them again for the SIGHUP that came %.1f s ago",
                reading.when(),
                took,
                time.monotonic() - self.deferred,
            )
            self.deferred = None
            self._read_again()
            return
        if reading.given_up:
            log.warning(
                "the read of the TLS files of the reload asked at %s, given up on, returned after %.1f s; "
                "not used (that reload was refused): SIGHUP to reload",
                reading.when(),
                took,
            )
            return
        if reading.error is not None:  # (a reload never stops the server: KVError says what to fix)
            exc = reading.error
            why = str(exc) if isinstance(exc, KVError) else f"{type(exc).__name__}: {exc}"
            log.error("SIGHUP: cannot reload, the workers serving go on: %s", why)
            return  # (a reload under way goes on)
        assert reading.run_worker is not None
        self._start_reload(reading.run_worker)

    def _start_reload(self, run_worker: RunWorker) -> None:
        """Start ``count`` new workers running ``run_worker``; a reload under way is started over."""
        if self.reloading is not None:  # started over: the operator asks for a reload now
            log.warning(
                "SIGHUP during a reload: starting it over (%.1f s after it started, not all ready); "
                "stopping its new worker processes %s",
                self.reload_timeout - (self.reload_deadline - time.monotonic()),
                _pids(self._drop_reload()),
            )
        systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        log.info("SIGHUP: starting %d new worker processes; the others stop once they are ready", self.count)
        self.reloads += 1
        self.reloading = (self.reloads, run_worker)
        self.reload_deadline = time.monotonic() + self.reload_timeout
        for _ in range(self.count):
            try:
                self._start(run_worker, self.reloading[0])
            except OSError as exc:  # (the fork failed: EAGAIN, ENOMEM; a reload never stops the server)
                log.error(
                    "SIGHUP: cannot reload, the workers serving go on: cannot start a new worker process: %s",
                    exc,
                )
                self._drop_reload()
                systemd.notify("READY=1", f"STATUS=serving {self.name} with {self.count} workers")
                return

    def _reloaded(self) -> None:
        """A new worker is ready: once all are, the others are stopped gracefully (SIGTERM)."""
        assert self.reloading is not None
        generation, run_worker = self.reloading
        new = [w for w in self.workers.values() if w.generation == generation]
        if len(new) < self.count or not all(w.ready for w in new):
            return
        old = [w for w in self.workers.values() if w.generation != generation and not w.retiring]
        self.generation, self.run_worker, self.reloading = generation, run_worker, None
        self.due.clear()  # (replacements of old workers put off: not needed any more)
        self.died_young = 0
        log.info(
            "reloaded: worker processes %s serve; stopping %s gracefully",
            _pids(new),
            _pids(old) or "none",
        )
        for w in old:
            w.retiring = True
            self._terminate(w)
        systemd.notify("READY=1", f"STATUS=serving {self.name} with {self.count} workers")

    def _reload_failed(self, worker: _Worker, why: str) -> None:
        """A new worker ended before all were ready: the others started by the reload are stopped,
        and the workers that served before it serve on."""
        reason = str(worker.error) if worker.error is not None else why
        log.error(
            "SIGHUP: cannot reload, the workers serving go on: new worker process [%d] %s", worker.pid, reason
        )
        self._drop_reload()
        systemd.notify("READY=1", f"STATUS=serving {self.name} with {self.count} workers")

    def _reload_timed_out(self) -> None:
        """The reload's new workers were not all ready within its timeout: it gives up, as where
        one fails, and the workers that served before it serve on."""
        assert self.reloading is not None
        generation = self.reloading[0]
        late = [w for w in self.workers.values() if w.generation == generation and not w.ready]
        log.error(
            "SIGHUP: cannot reload, the workers serving go on: new worker processes %s did not have the "
            "store open within %g s; stopping them",
            _pids(late),
            self.reload_timeout,
        )
        self._drop_reload()
        systemd.notify("READY=1", f"STATUS=serving {self.name} with {self.count} workers")

    def _drop_reload(self) -> list[_Worker]:
        """Stop the workers the reload under way started, which are not replaced: those with their store
        open gracefully (SIGTERM), the others at once (SIGKILL: they accepted no connection yet, and one
        stuck would not heed SIGTERM). Return them."""
        assert self.reloading is not None
        generation = self.reloading[0]
        self.reloading = None
        dropped = [w for w in self.workers.values() if w.generation == generation]
        for w in dropped:
            w.retiring = True
            if w.ready:
                self._terminate(w)
            else:
                w.killed = True
                _kill(w.pid, signal.SIGKILL)
        return dropped

    def _replace(self, worker: _Worker, why: str) -> None:
        """Start a worker in place of ``worker``, which died (``why``): at once, unless it is the
        second or later in a row to die within HEALTHY_AFTER of its start; then after a delay."""
        lived = time.monotonic() - worker.started
        if lived >= HEALTHY_AFTER:
            self.died_young = 0
        else:
            self.died_young += 1
        if self.died_young < 2:
            log.warning("worker process [%d] %s: starting another at once", worker.pid, why)
            self._start_replacement(worker.pid)
            return
        delay = min(RESTART_DELAY_FIRST * 2 ** (self.died_young - 2), RESTART_DELAY_MAX)
        log.warning(
            "worker process [%d] %s %.1f s after it started, the %s in a row to die within %g s: "
            "starting another in %g s",
            worker.pid,
            why,
            lived,
            _ordinal(self.died_young),
            HEALTHY_AFTER,
            delay,
        )
        bisect.insort(self.due, time.monotonic() + delay)

    def _start_replacement(self, dead: int | None = None) -> None:
        """Start a worker in place of one that died (``dead``: its pid; None: one put off). Where the fork
        fails (EAGAIN: the limit of the user's processes or of the service's tasks reached; ENOMEM), it
        is put off, after a delay doubling from RESTART_DELAY_FIRST to RESTART_DELAY_MAX while forks
        keep failing, instead of stopping the server: the other workers serve meanwhile."""
        try:
            self._start()
        except OSError as exc:
            self.fork_failures += 1
            delay = min(RESTART_DELAY_FIRST * 2 ** (self.fork_failures - 1), RESTART_DELAY_MAX)
            place = "" if dead is None else f" in place of [{dead}]"
            log.error("cannot start a worker process%s: %s: starting one in %g s", place, exc, delay)
            bisect.insort(self.due, time.monotonic() + delay)
            return
        self.fork_failures = 0

    def _stop_all(self, signum: int) -> None:
        """The first stop asks every worker to stop (SIGTERM: a graceful shutdown, each killed if still
        there STOP_MARGIN seconds after its graceful period); a second SIGTERM or SIGINT forces them
        (SIGINT: uvicorn's forced exit), each killed if still there FORCE_MARGIN seconds later; a third
        kills them at once."""
        if not self.stopping:
            self.stopping = True
            self.due.clear()  # (a replacement put off is not started)
            for w in self.workers.values():
                self._terminate(w)
            return
        now = time.monotonic()
        left = [w for w in self.workers.values() if not w.killed]
        if self.forced:
            if left:
                log.warning("%s again: killing worker processes %s (SIGKILL)", _name(signum), _pids(left))
            for w in left:
                w.kill_at = now
            return
        self.forced = True
        for w in left:
            w.kill_at = min(w.kill_at or now + FORCE_MARGIN, now + FORCE_MARGIN)
            _kill(w.pid, signal.SIGINT)

    def _terminate(self, worker: _Worker) -> None:
        """Ask ``worker`` to stop gracefully (SIGTERM); it is killed if still there STOP_MARGIN seconds
        after the graceful period."""
        if worker.kill_at is None:
            worker.kill_at = time.monotonic() + self.graceful + STOP_MARGIN
        _kill(worker.pid, signal.SIGTERM)

    def _kill_stuck(self) -> None:
        """Kill (SIGKILL) the workers asked to stop that are still there at their deadline (stuck)."""
        now = time.monotonic()
        for w in self.workers.values():
            if w.kill_at is None or w.killed or now < w.kill_at:
                continue
            w.killed = True
            if self.forced:
                why = "was forced to stop and is still running"
            else:
                why = f"did not stop within {self.graceful + STOP_MARGIN:g} s of SIGTERM (stuck)"
            log.warning("worker process [%d] %s: killing it (SIGKILL)", w.pid, why)
            _kill(w.pid, signal.SIGKILL)


def _ended(status: int) -> str:
    """How a worker ended, from its wait status: ``killed (SIGKILL)``, ``status 0``."""
    if os.WIFSIGNALED(status):
        return f"killed ({signal.Signals(os.WTERMSIG(status)).name})"
    return f"status {os.waitstatus_to_exitcode(status)}"


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def _pids(workers: list[_Worker]) -> str:
    return ", ".join(f"[{w.pid}]" for w in workers)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def where(thread: threading.Thread) -> str:
    """Where ``thread`` runs: its innermost Python frame, and the innermost of kv_backend's if another
    (``stuck in threading.py:359 wait, from kv_backend/db.py:286 close``)."""
    if thread.ident is None:
        return "it had not begun"
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return "stuck in a call that never returns"
    places = [f"stuck in {_place(frame)}"]
    own: Any = frame
    while own is not None and f"{os.sep}kv_backend{os.sep}" not in own.f_code.co_filename:
        own = own.f_back
    if own is not None and own is not frame:
        places.append(f"from {_place(own)}")
    return ", ".join(places)


def _place(frame: Any) -> str:
    """``file:line function`` of ``frame``, the file as from the kv_backend package's directory."""
    path = frame.f_code.co_filename
    marker = f"{os.sep}kv_backend{os.sep}"
    name = "kv_backend/" + path.rsplit(marker, 1)[1] if marker in path else os.path.basename(path)
    return f"{name}:{frame.f_lineno} {frame.f_code.co_name}"


def _drained(fd: int) -> bytes:
    try:
        return os.read(fd, 512)
    except BlockingIOError:
        return b""


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _child(
    run_worker: RunWorker, report: int, lifeline: int, parent_fds: list[int], mask: set[int]
) -> None:  # pragma: no cover
    """A worker's life, in the forked process: never returns. ``mask``: the signal mask to restore
    once the worker's handlers are in place (the signals sent before are delivered then)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, _stop)  # (uvicorn raises it again once it has shut down: ignored then)
    signal.signal(signal.SIGALRM, _stop_again)
    sys.unraisablehook = _dropped
    signal.signal(signal.SIGINT, _interrupt)  # (KeyboardInterrupt, as Python's own handler raises)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = 0
    try:  # (from here on, a _Stop ends in os._exit below, never in the parent's code this is a copy of)
        for fd in parent_fds:
            os.close(fd)
        os.environ.pop("NOTIFY_SOCKET", None)  # (the parent speaks to systemd for all of them)
        # Started while the signals are still blocked (the thread keeps them blocked: they are the main
        # thread's): a _Stop raised inside Thread.start's wait left its lock released twice, and the
        # worker failed with "release unlocked lock" (the server exiting with status 2).
        threading.Thread(target=_watch_parent, args=(lifeline,), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        run_worker(lambda: _ready(report))
    except (_Stop, KeyboardInterrupt):
        pass
    except BaseException as exc:  # (every failure is the parent's to report)
        code = 2
        _send_error(report, exc)
    finally:
        try:  # (a _Stop raised here, by a SIGTERM sent again, still ends in os._exit)
            signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
        finally:
            os._exit(code)


def _send_error(report: int, exc: BaseException) -> None:
    """Send ``exc`` to the parent as it is where it survives pickling, else as its one line of text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = ConfigurationError(str(exc) or type(exc).__name__)
    if isinstance(exc, SystemExit):
        exc = ConfigurationError(f"a worker process could not start (status {exc.code})")
    try:
        _report(report, exc)
    except OSError as error:
        if error.errno != errno.EPIPE:
            raise


def _report(report: int, message: object) -> None:
    """Send ``message`` (_READY, an error) to the parent on the pipe ``report``, framed (see _HEADER)."""
    data = pickle.dumps(message)
    _write_report(report, _HEADER.pack(len(data)) + data)


def _write_report(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a blocking pipe: the parent reads it as it arrives)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _watch_parent(lifeline: int) -> None:  # pragma: no cover
    """Stop this worker as SIGTERM does once the parent is gone (its end of the pipe closed)."""
    while True:
        try:
            if os.read(lifeline, 1) == b"":
                break
        except InterruptedError:
            continue
    os.kill(os.getpid(), signal.SIGTERM)
