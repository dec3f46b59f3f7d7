"""BGSAVE in the background, as redis-server saves in a child process.

kvb serve's BGSAVE fsyncs the store (:meth:`kv_backend.DB.sync`): every write is in the store's log
before it is answered, and the fsync makes what was written so far survive a power loss. The fsync
runs in a daemon thread, one at a time, so that a stalled disk or a slow network file system holds
up no client: the reply (``Background saving started``) is sent at once, and LASTSAVE and INFO's
persistence fields change when the fsync ends, on the event loop, as redis-server's do when its
child exits. INFO's ``rdb_changes_since_last_save`` counts the changes this server's write commands
made since the last SAVE or BGSAVE that succeeded, as redis-server counts its ``dirty`` changes
(:func:`changes_made`). ``DB.sync()`` is made to run beside the loop's own writes (a rotation meanwhile is
fsynced by the file's name) and a ``close()`` (a sync overtaken by it fails, and the close fsyncs
anyway): a server stopping meanwhile does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from kv_backend.server.protocol import NULL_ARRAY
from kv_backend.threads import start_daemon_thread

if TYPE_CHECKING:
    from kv_backend.server.resp import Server
    from kv_backend.structures import Structures


class BackgroundSaves:
    """The server's BGSAVEs: the one running, if any, one scheduled after it, and what INFO shows."""

    def __init__(self, server: Server) -> None:
        self.server = server
        #: When the running BGSAVE began (time.time()), None while none runs.
        self.started: float | None = None
        #: A BGSAVE (inside EXEC) to begin once the running one has ended (or at the loop's next turn).
        self.scheduled = False
        #: LASTSAVE: when the last SAVE or BGSAVE that succeeded ended (at first: the server's start).
        self.last_save_time = int(time.time())
        #: Whether the last BGSAVE (or SAVE) succeeded; the seconds the last BGSAVE took (-1: none yet).
        self.last_ok = True
        self.last_seconds = -1
        #: INFO's rdb_saves: SAVEs and BGSAVEs begun (CONFIG RESETSTAT zeroes it).
        self.saves = 0
        #: INFO's rdb_changes_since_last_save (redis-server's ``dirty``): the changes the write
        #: commands made since the last SAVE or BGSAVE that succeeded (:func:`changes_made`), and
        #: those counted when the running BGSAVE began (subtracted when it succeeds, as Redis does:
        #: the changes made while it runs are still to be saved).
        self.changes = 0
        self.changes_at_start = 0

    @property
    def running(self) -> bool:
        return self.started is not None

    def start(self) -> bool:
        """Begin a BGSAVE (none runs): fsync the store in a daemon thread; :meth:`_ended` on the loop.
        False if the thread cannot be started (Python's "can't start new thread": a limit on the
        process's tasks, no memory for its stack), as redis-server's fork fails: logged, and shown
        as ``rdb_last_bgsave_status:err``, nothing left in progress."""
        loop = asyncio.get_running_loop()
        db = self.server.db
        self.started = time.time()
        self.saves += 1
        self.changes_at_start = self.changes

        def run() -> None:
            error: Exception | None = None
            try:
                db.sync()
            except Exception as exc:  # (reported on the loop, as Redis reports a failed bgsave)
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped meanwhile
                loop.call_soon_threadsafe(self._ended, error)

        try:
            start_daemon_thread(run, "kvb-bgsave")
        except RuntimeError as exc:
            self.started = None
            self.last_ok = False
            self.server.log(f"background saving error: cannot start its thread: {exc}")
            return False
        self.server.log("background saving started (an fsync of the store)")
        return True

    def schedule(self) -> None:
        """BGSAVE inside EXEC: begin one once the loop runs again (after the running one, if any)."""
        if not self.scheduled:
            self.scheduled = True
            if not self.running:
                asyncio.get_running_loop().call_soon(self._start_scheduled)

    def _start_scheduled(self) -> None:
        if self.scheduled and not self.running and not self.server.stops:
            self.scheduled = False
            self.start()

    def _ended(self, error: Exception | None) -> None:
        """The BGSAVE's fsync ended (on the loop): LASTSAVE and INFO's fields say so."""
        now = time.time()
        started, self.started = self.started, None
        self.last_seconds = int(now) - int(started if started is not None else now)  # (as Redis: seconds)
        self.last_ok = error is None
        if error is None:
            self.last_save_time = int(now)
            self.changes = max(self.changes - self.changes_at_start, 0)
            self.server.log("background saving terminated with success")
        else:
            self.server.log(f"background saving error: cannot fsync the store {self.server.path}: {error}")
            commit = self.server.group_commit
            if commit is not None and isinstance(error, OSError):  # (--appendfsync always)
                commit.record_failure(error, "BGSAVE of")
        if self.scheduled:
            self._start_scheduled()

    def saved(self) -> None:
        """SAVE succeeded (its fsync ran on the loop)."""
        self.saves += 1
        self.last_ok = True
        self.last_save_time = int(time.time())
        self.changes = 0

    def info_lines(self) -> list[str]:
        """INFO persistence's rdb_* fields, as redis-server 7.0 writes them (kvb's store changes are
        all in its log when answered, but ``rdb_changes_since_last_save`` counts them as Redis does:
        monitoring reads it as the writes since the last save)."""
        started = self.started
        return [
            f"rdb_changes_since_last_save:{self.changes}",
            f"rdb_bgsave_in_progress:{int(started is not None)}",
            f"rdb_last_save_time:{self.last_save_time}",
            f"rdb_last_bgsave_status:{'ok' if self.last_ok else 'err'}",
            f"rdb_last_bgsave_time_sec:{self.last_seconds}",
            f"rdb_current_bgsave_time_sec:{-1 if started is None else int(time.time()) - int(started)}",
            f"rdb_saves:{self.saves}",
        ]


#: Write commands that redis-server 7.0 counts as one change per key, field or element they name:
#: the first argument of those counted (``args[first::step]``).
_PER_ARGUMENT: dict[bytes, tuple[int, int]] = {
    b"mset": (1, 2),
    b"msetnx": (1, 2),
    b"hset": (2, 2),
    b"hmset": (2, 2),
    b"lpush": (2, 1),
    b"rpush": (2, 1),
    b"lpushx": (2, 1),
    b"rpushx": (2, 1),
}
#: Those counted on the write's path (Command.counted_args; MSETNX, counted by its reply, apart).
PER_ARGUMENT = {name: where for name, where in _PER_ARGUMENT.items() if name != b"msetnx"}
#: Write commands counted as many changes as their reply's number says (keys deleted, members
#: added or removed, elements removed), as redis-server 7.0 counts them.
_PER_REPLY = frozenset(
    {b"del", b"unlink", b"sadd", b"srem", b"hdel", b"zadd", b"zrem", b"lrem", b"zremrangebyscore"}
    | {b"zremrangebyrank", b"zremrangebylex", b"xdel", b"xack", b"xtrim", b"geoadd"}
    # (with STORE: the elements or members stored; an empty result deletes the key, counted one)
    | {b"sort", b"geosearchstore", b"georadius", b"georadiusbymember"}
)
#: Write commands redis-server 7.0 counts as one change whether or not they changed anything.
_ALWAYS_ONE = frozenset({b"swapdb", b"xsetid"})
#: Commands that run other commands (each counted on its own, as in Redis), never counted themselves.
RUNNERS = frozenset({b"exec", b"eval", b"evalsha", b"eval_ro", b"evalsha_ro", b"fcall", b"fcall_ro"})


#: Write commands counted as the keys (FLUSHALL, FLUSHDB) or elements (LTRIM) they remove: their
#: :func:`size` before and after them.
REMOVING = frozenset({b"flushall", b"flushdb", b"ltrim"})
#: Write commands that may make their group's consumer, which redis-server 7.0 counts (where it makes
#: it: where they deliver or claim something): :attr:`Structures.consumers_made` before and after them.
MAKING_CONSUMERS = frozenset({b"xreadgroup", b"xclaim", b"xautoclaim"})
#: The commands :func:`size` measures before and after them.
MEASURED = REMOVING | MAKING_CONSUMERS


def size(st: Structures, name: bytes, args: list[bytes]) -> int:
    """What a :data:`MEASURED` command removes from: the keys, or the list's elements (0: no list);
    for one of :data:`MAKING_CONSUMERS`, the consumers ``st`` made so far, negated (what it made
    then counts as the others' removed)."""
    if name in MAKING_CONSUMERS:
        return -st.consumers_made
    if name == b"ltrim":
        try:
            return st.llen(args[1])
        except Exception:  # (another type: LTRIM answers its error)
            return 0
    return st.dbsize()


def count(server: Server, name: bytes, args: list[bytes], reply: Any, before: int, size_before: int) -> None:
    """Add to INFO's rdb_changes_since_last_save what the write command ``args`` (``name`` in lower
    case), answered ``reply`` (not an error), changed (:func:`changes_made`): ``before``, the store's
    change token before it ran; ``size_before``, a :data:`MEASURED` one's :func:`size` then.

    Never raises: the command has run, and its reply is sent whatever happens here. Where the count
    cannot be made (the store closed meanwhile, a size that cannot be read), the command is left
    uncounted and the log says so."""
    try:
        changed = server.db.change_token() != before
        removed = measured(server, name, args, size_before)
        server.bgsaves.changes += changes_made(name, args, reply, changed, removed)
    except Exception as exc:
        not_counted(server, name, exc)


def measured(server: Server, name: bytes, args: list[bytes], size_before: int) -> int:
    """What the command ``name`` removed (a :data:`REMOVING` one) or made (consumers, one of
    :data:`MAKING_CONSUMERS`), from its :func:`size` before it ran (``size_before``) and now; 0 for
    the others."""
    return max(size_before - size(server.st, name, args), 0) if name in MEASURED else 0


def count_served(server: Server, name: bytes, reply: Any, made: int) -> None:
    """Add to INFO's rdb_changes_since_last_save what the blocked write command ``name`` (lower case)
    popped once served with ``reply``, as redis-server 7.0 counts it: one for BZPOPMIN and BZPOPMAX,
    the elements popped for BZMPOP and BLMPOP; nothing for BLPOP, BRPOP, BLMOVE and BRPOPLPUSH, which
    Redis serves without counting, nor for XREADGROUP but the consumer it ``made`` when it blocked
    (Redis makes it when it serves it). Never raises (see :func:`count`)."""
    try:
        if name == b"xreadgroup" and made and reply is not NULL_ARRAY and reply is not None:
            server.bgsaves.changes += made
        elif name in (b"bzpopmin", b"bzpopmax"):
            server.bgsaves.changes += 1
        elif name in (b"bzmpop", b"blmpop") and isinstance(reply, list) and len(reply) == 2:
            server.bgsaves.changes += len(reply[1])
    except Exception as exc:
        not_counted(server, name, exc)


def not_counted(server: Server, name: bytes, exc: Exception) -> None:
    """Log that the write command ``name`` could not be counted (``exc``: why); its reply is sent."""
    shown = name.decode("ascii", "replace").upper()
    server.log(f"{shown} not counted in INFO's rdb_changes_since_last_save: {type(exc).__name__}: {exc}")


def changes_made(name: bytes, args: list[bytes], reply: Any, changed: bool, removed: int) -> int:
    """How much redis-server 7.0 adds to its ``dirty`` count for the write command ``args`` (``name``
    in lower case) that answered ``reply`` (not an error). ``changed``: whether it changed the store;
    ``removed``: for a :data:`REMOVING` one, the keys or elements it removed, for one of
    :data:`MAKING_CONSUMERS`, the consumers it made (counted where it delivered or claimed something).

    Those that name several keys, fields or elements count each (MSET, HSET, LPUSH...), those
    whose reply counts what they changed count that (DEL, SADD, ZADD, XTRIM, SORT ... STORE...),
    pops with a count the elements popped, XCLAIM and XAUTOCLAIM the entries claimed (and the
    deleted IDs dropped), FLUSHALL the keys and LTRIM the elements removed, SMOVE two; SWAPDB,
    XSETID and XGROUP SETID one even where they change nothing, XREADGROUP one where it answers;
    every other write counts one where it changed the store (SET, INCR, EXPIRE, the PFCOUNT that
    stores its count...), none where it did not (DEL of a missing key, SET ... NX of an existing
    one)."""
    if name in REMOVING:
        return removed
    if name in _ALWAYS_ONE or (name == b"xgroup" and len(args) > 1 and args[1].upper() == b"SETID"):
        return 1
    if name == b"xreadgroup":  # one where it answers (its consumer's history too, even empty)
        return 0 if reply is NULL_ARRAY or reply is None else 1 + removed
    if not changed:
        return 0
    if name in _PER_ARGUMENT:
        if name == b"msetnx" and reply != 1:
            return 0
        first, step = _PER_ARGUMENT[name]
        return arguments_counted(args, first, step)
    if name in _PER_REPLY and type(reply) is int:
        return max(reply, 1)  # (ZADD of a score changed, without CH, answers 0: Redis counts it)
    if name in (b"lpop", b"rpop", b"spop") and len(args) > 2 and isinstance(reply, Collection):
        return len(reply)
    if name in (b"zpopmin", b"zpopmax") and len(args) > 2 and isinstance(reply, list):
        return len(reply) if reply and isinstance(reply[0], list) else len(reply) // 2  # (RESP2: flat)
    if name in (b"lmpop", b"zmpop") and isinstance(reply, list) and len(reply) == 2:
        return len(reply[1])
    if name == b"smove":
        return 2
    if name == b"xclaim" and isinstance(reply, list):
        return len(reply) + removed if reply else 0  # (each entry claimed)
    if name == b"xautoclaim" and isinstance(reply, list) and len(reply) == 3:
        claimed = len(reply[1]) + len(reply[2])  # (each entry claimed, each deleted one dropped)
        return claimed + removed if claimed else 0
    return 1


#: The writes :func:`changes_made` counts otherwise than one where they changed the store.
_COUNTED_APART = frozenset(
    MEASURED
    | _PER_ARGUMENT.keys()
    | _PER_REPLY
    | {b"lpop", b"rpop", b"spop", b"zpopmin", b"zpopmax", b"lmpop", b"zmpop", b"smove", b"xreadgroup"}
    | _ALWAYS_ONE
    | {b"xgroup", b"xclaim", b"xautoclaim", b"pfcount"}
)


#: :func:`counted_as`: a command INFO's rdb_changes_since_last_save does not count (a read, a runner),
#: a write counted one where it changed the store, one counted as the keys, fields or elements it
#: names where it changed the store (:data:`PER_ARGUMENT`), and one :func:`count` counts otherwise.
NOT_COUNTED, ONE_PER_CHANGE, ONE_PER_ARGUMENT, COUNTED_APART = 0, 1, 2, 3


def counted_as(name: bytes, flags: Collection[str]) -> int:
    """How the command ``name`` (lower case) with these flags is counted, worked out once for the
    command table so that a write's path tests one number (see resp.Connection.execute)."""
    if name == b"pfcount":  # (a read, but its count of one key stored in the value is a change)
        return COUNTED_APART
    if "write" not in flags or name in RUNNERS:
        return NOT_COUNTED
    if name in PER_ARGUMENT:
        return ONE_PER_ARGUMENT
    return COUNTED_APART if name in _COUNTED_APART else ONE_PER_CHANGE


def arguments_counted(args: list[bytes], first: int, step: int) -> int:
    """``len(args[first::step])`` without the slice: the keys, fields or elements a
    :data:`PER_ARGUMENT` write names."""
    return max(len(args) - first + step - 1, 0) // step
