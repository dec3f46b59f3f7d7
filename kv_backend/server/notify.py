"""Keyspace notifications (``notify-keyspace-events``): the pub/sub messages Redis sends about keys.

With notifications on, a command that changes a key publishes
``__keyspace@0__:<key>`` -> ``<event>`` (class ``K``) and ``__keyevent@0__:<event>``
-> ``<key>`` (class ``E``) to this server's subscribers, with the event names
redis-server 7 uses for the same command (``set``, ``del``, ``lpush``, ``rename_from``...).
The events are worked out around each command from its arguments, its reply and
what it changed (:class:`Notifier`), so the command handlers and the in-process API
know nothing of them, and with notifications off (the default) a command costs one
attribute test. Only this server's own commands are seen: another process writing
the same directory changes keys without events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kv_backend.server.protocol import OK
from kv_backend.structures.bits import parse_bitfield
from kv_backend.structures.groups import _consumer_prefix
from kv_backend.structures.parsing import keyword

if TYPE_CHECKING:
    from kv_backend.server.resp import Server

# The event classes, as Redis numbers them.
KEYSPACE = 1 << 0
KEYEVENT = 1 << 1
GENERIC = 1 << 2
STRING = 1 << 3
LIST = 1 << 4
SET = 1 << 5
HASH = 1 << 6
ZSET = 1 << 7
EXPIRED = 1 << 8
EVICTED = 1 << 9
STREAM = 1 << 10
KEY_MISS = 1 << 11
MODULE = 1 << 12
NEW = 1 << 13
#: ``A``: every class of key event except ``m`` (key misses) and ``n`` (new keys).
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE

_CLASSES = {
    ord("g"): GENERIC,
    ord("$"): STRING,
    ord("l"): LIST,
    ord("s"): SET,
    ord("h"): HASH,
    ord("z"): ZSET,
    ord("x"): EXPIRED,
    ord("e"): EVICTED,
    ord("t"): STREAM,
    ord("d"): MODULE,
    ord("n"): NEW,
    ord("K"): KEYSPACE,
    ord("E"): KEYEVENT,
    ord("m"): KEY_MISS,
    ord("A"): ALL,
}
#: What CONFIG SET answers for a character that names no class (Redis's text).
BAD_CLASS = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."


def parse_flags(value: bytes) -> int | None:
    """The classes a ``notify-keyspace-events`` value names (None: a character that is no class)."""
    flags = 0
    for c in value:
        bit = _CLASSES.get(c)
        if bit is None:
            return None
        flags |= bit
    return flags


def format_flags(flags: int) -> bytes:
    """The value CONFIG GET shows, written as redis-server 7.0 writes it (``A`` hides ``n``, as there)."""
    out = ""
    if flags & ALL == ALL:
        out = "A"
    else:
        for char, bit in (("g", GENERIC), ("$", STRING), ("l", LIST), ("s", SET), ("h", HASH), ("z", ZSET)):
            if flags & bit:
                out += char
        for char, bit in (("x", EXPIRED), ("e", EVICTED), ("t", STREAM), ("d", MODULE), ("n", NEW)):
            if flags & bit:
                out += char
    for char, bit in (("K", KEYSPACE), ("E", KEYEVENT), ("m", KEY_MISS)):
        if flags & bit:
            out += char
    return out.encode()


Event = tuple[int, bytes, bytes]  # (class, event name, key)


class Before:
    """What a write command's events depend on, taken before it runs."""

    __slots__ = ("existed", "extra", "token")

    def __init__(self, token: int, existed: set[bytes], extra: Any) -> None:
        #: The store's change token: a command that left it alone changed nothing.
        self.token = token
        #: The keys among those it writes that existed (for ``n`` and per-key ``del``).
        self.existed = existed
        #: Per-command state (SMOVE: whether the destination had the member...).
        self.extra = extra


class Notifier:
    """Publishes the keyspace events of the commands of one server."""

    def __init__(self, server: Server) -> None:
        self.server = server

    # ------------------------------------------------------------ publishing

    def emit(self, events: list[Event]) -> None:
        """Publish ``events`` to the subscribers of their channels (as the classes switched on allow)."""
        server = self.server
        flags = server.notify_flags
        for cls, event, key in events:
            if not flags & cls:
                continue
            if flags & KEYSPACE:
                server.publish(b"__keyspace@0__:" + key, event)
            if flags & KEYEVENT:
                server.publish(b"__keyevent@0__:" + event, key)

    # ------------------------------------------------------------ around a command

    def before(self, name: bytes, args: list[bytes], keys: list[bytes] | None, writes: bool) -> Before | None:
        """Run before a command: report keys it names that have expired, and take what its events need."""
        server = self.server
        st = server.st
        flags = server.notify_flags
        if flags & (EXPIRED | KEY_MISS):
            named = _named_keys(args)
            if flags & EXPIRED:
                self.remove_expired(dict.fromkeys(named))
            if flags & KEY_MISS:
                self.emit([(KEY_MISS, b"keymiss", k) for k in _read_keys(name, args) if not st.exists(k)])
        if not writes:
            return None
        existed: set[bytes] = set()
        if keys and (name in _PER_KEY_DEL or flags & NEW):
            existed = {k for k in keys if st.exists(k)}
        prepare = _PREPARE.get(name)
        extra = prepare(st, args) if prepare is not None else None
        return Before(server.db.change_token(), existed, extra)

    def after(
        self, name: bytes, args: list[bytes], reply: Any, before: Before, keys: list[bytes] | None
    ) -> None:
        """Publish the events of a command that ran (``reply``: what it answered)."""
        server = self.server
        changed = server.db.change_token() != before.token
        rule = _RULES.get(name)
        events = rule(_Call(server, args, reply, changed, before)) if rule is not None else []
        if server.notify_flags & NEW and keys and events:
            # A key the command created, as Redis reports it: RENAME, COPY and RESTORE replace
            # their destination by a new key; SET ... EXAT (a past time) makes one that is gone at once.
            st = server.st
            made = {key for _, event, key in events if event not in _NOT_MADE}
            replaced = made & {args[_REPLACES[name]]} if name in _REPLACES else set()
            fresh = [
                k
                for k in made
                if k in replaced or (k not in before.existed and (st.exists(k) or name == b"set"))
            ]
            events = [(NEW, b"new", k) for k in dict.fromkeys(fresh)] + events
        if events:
            self.emit(events)

    def served(self, args: list[bytes], reply: Any) -> None:
        """Publish the events of a blocked command (BLPOP...) served when data came."""
        rule = _RULES.get(args[0].lower())
        if rule is not None:
            self.emit(rule(_Call(self.server, args, reply, True, Before(0, set(), None))))

    # ------------------------------------------------------------ active expiry

    def sweep(self, limit: int = 200) -> int:
        """Delete up to ``limit`` keys found expired and report each (Redis's active expiry); how many."""
        return len(self.remove_expired(self.server.st.expired_names(limit)))

    def remove_expired(self, keys: Iterable[bytes]) -> list[bytes]:
        """Delete those of ``keys`` that expired, publish their ``expired`` events, return them.

        Each deletion takes the store's write lock on its own: when another process takes it between
        two of them (WouldWait in the event loop), the keys already deleted are reported before the
        WouldWait goes on, since nothing would report them later."""
        st = self.server.st
        found: list[bytes] = []
        try:
            for key in keys:
                if st.remove_expired(key):
                    found.append(key)
        finally:
            if found:
                self.emit([(EXPIRED, b"expired", k) for k in found])
        return found


class _Call:
    """One command's call as a rule sees it."""

    __slots__ = ("args", "before", "changed", "reply", "server")

    def __init__(self, server: Server, args: list[bytes], reply: Any, changed: bool, before: Before) -> None:
        self.server = server
        self.args = args
        self.reply = reply
        self.changed = changed
        self.before = before

    def gone(self, key: bytes) -> bool:
        return not self.server.st.exists(key)


# ------------------------------------------------------------------ which keys


def _named_keys(args: list[bytes]) -> list[bytes]:
    """Every key a call names (its key specifications), or none if it has none or does not fit them."""
    from kv_backend.server.commands import metadata

    try:
        return [k for k, _ in metadata.keys_of(args)]
    except Exception:
        return []


def _read_keys(name: bytes, args: list[bytes]) -> list[bytes]:
    """The keys a command looks up to read (those Redis reports ``keymiss`` for)."""
    from kv_backend.server.commands import metadata

    if name in _NO_MISS:
        return []
    try:
        found = metadata.keys_of(args)
    except Exception:
        return []
    keys = [k for k, flags in found if "RO" in flags or name in _MISS_ANY]
    if name == b"xread":  # Redis looks each stream up twice (its IDs, then its entries)
        keys = [k for k in keys for _ in (0, 1)]
    return keys


#: Commands that look up a key they may change as Redis looks up one it reads (reporting a miss).
_MISS_ANY = frozenset({b"getdel", b"getex", b"pfcount"})
#: Read commands that report no miss.
_NO_MISS = frozenset({b"object", b"randomkey", b"scan", b"keys", b"dbsize"})
#: Events that do not make a key (for ``new``).
_NOT_MADE = frozenset({b"del", b"expired", b"rename_from", b"srem", b"lpop", b"rpop", b"zpopmin", b"zpopmax"})
#: Commands whose destination (``args[i]``) is a new key even when one of that name existed.
_REPLACES = {b"rename": 2, b"renamenx": 2, b"copy": 2, b"restore": 1}
#: Commands that report ``del`` for each key they named that existed.
_PER_KEY_DEL = frozenset({b"del", b"unlink"})


# ------------------------------------------------------------------ rules


def _opts(args: list[bytes], start: int) -> set[bytes]:
    return {keyword(a) for a in args[start:]}


def _simple(cls: int, event: bytes, always: bool = False) -> Callable[[_Call], list[Event]]:
    """``event`` on the first key when the command changed something (``always``: whenever it succeeded)."""

    def rule(c: _Call) -> list[Event]:
        return [(cls, event, c.args[1])] if always or c.changed else []

    return rule


def _removing(cls: int, event: bytes) -> Callable[[_Call], list[Event]]:
    """``event`` on the first key, then ``del`` if that emptied it."""

    def rule(c: _Call) -> list[Event]:
        if not c.changed:
            return []
        key = c.args[1]
        return [(cls, event, key), *([(GENERIC, b"del", key)] if c.gone(key) else [])]

    return rule


def _storing(cls: int, event: bytes, dest: int = 1) -> Callable[[_Call], list[Event]]:
    """A ...STORE command: ``event`` on its destination, or ``del`` when an empty result deleted it."""

    def rule(c: _Call) -> list[Event]:
        if not c.changed:
            return []
        key = c.args[dest]
        return [(GENERIC, b"del", key)] if c.gone(key) else [(cls, event, key)]

    return rule


def _set(c: _Call) -> list[Event]:
    if not c.changed and c.reply != OK:
        return []
    key = c.args[1]
    events: list[Event] = [(STRING, b"set", key)]
    if _opts(c.args, 3) & {b"EX", b"PX", b"EXAT", b"PXAT"}:
        events.append((GENERIC, b"expire", key))
        if c.gone(key):  # EXAT/PXAT in the past: Redis reports it expired when it next sees it
            events.append((EXPIRED, b"expired", key))
    return events


def _setex(c: _Call) -> list[Event]:
    return [(STRING, b"set", c.args[1]), (GENERIC, b"expire", c.args[1])]


def _mset(c: _Call) -> list[Event]:
    if not c.changed and c.args[0].lower() == b"msetnx":
        return []
    return [(STRING, b"set", k) for k in c.args[1::2]]


def _getex(c: _Call) -> list[Event]:
    if not c.changed:
        return []
    key = c.args[1]
    if b"PERSIST" in _opts(c.args, 2):
        return [(GENERIC, b"persist", key)]
    return [(GENERIC, b"del" if c.gone(key) else b"expire", key)]


def _expire(c: _Call) -> list[Event]:
    if not c.changed:
        return []
    key = c.args[1]
    return [(GENERIC, b"del" if c.gone(key) else b"expire", key)]


def _del(c: _Call) -> list[Event]:
    existed = c.before.existed
    return [(GENERIC, b"del", k) for k in dict.fromkeys(c.args[1:]) if k in existed]


def _rename(c: _Call) -> list[Event]:
    if not c.changed or c.args[1] == c.args[2]:
        return []
    return [(GENERIC, b"rename_from", c.args[1]), (GENERIC, b"rename_to", c.args[2])]


def _copy(c: _Call) -> list[Event]:
    return [(GENERIC, b"copy_to", c.args[2])] if c.reply == 1 else []


def _bitop(c: _Call) -> list[Event]:
    if not c.changed:
        return []
    key = c.args[2]
    return [(GENERIC, b"del", key)] if c.gone(key) else [(STRING, b"set", key)]


def _bitfield(c: _Call) -> list[Event]:
    """``setbit`` when a write changed the string, as Redis: the growth of a BITFIELD whose every write
    ``OVERFLOW FAIL`` refused (a nil reply each) is no event there."""
    if not c.changed or not isinstance(c.reply, list):
        return []
    writes = sum(op[0] != b"GET" for op in parse_bitfield(c.args[2:]))
    refused = sum(r is None for r in c.reply)  # only a refused write answers nil
    return [(STRING, b"setbit", c.args[1])] if writes > refused else []


def _ltrim(c: _Call) -> list[Event]:
    key = c.args[1]
    if c.gone(key):
        return [(LIST, b"ltrim", key), (GENERIC, b"del", key)] if c.changed else []
    return [(LIST, b"ltrim", key)]


def _linsert(c: _Call) -> list[Event]:
    return [(LIST, b"linsert", c.args[1])] if isinstance(c.reply, int) and c.reply > 0 else []


def _pop(cls: int, event: bytes, key: bytes, c: _Call) -> list[Event]:
    return [(cls, event, key), *([(GENERIC, b"del", key)] if c.gone(key) else [])]


def _bpop(event: bytes, cls: int = LIST) -> Callable[[_Call], list[Event]]:
    """BLPOP/BRPOP/BZPOPMIN/BZPOPMAX: the key is the reply's first element."""

    def rule(c: _Call) -> list[Event]:
        if not c.changed or not isinstance(c.reply, list) or not c.reply:
            return []
        return _pop(cls, event, c.reply[0], c)

    return rule


def _move(c: _Call) -> list[Event]:
    """RPOPLPUSH, LMOVE, BRPOPLPUSH, BLMOVE: the push on the destination, then the pop."""
    if not c.changed or c.reply is None:
        return []
    name = c.args[0].lower()
    if name in (b"rpoplpush", b"brpoplpush"):
        pop, push = b"rpop", b"lpush"
    else:
        pop = b"lpop" if keyword(c.args[3]) == b"LEFT" else b"rpop"
        push = b"lpush" if keyword(c.args[4]) == b"LEFT" else b"rpush"
    return [(LIST, push, c.args[2]), *_pop(LIST, pop, c.args[1], c)]


def _mpop(offset: int, cls: int) -> Callable[[_Call], list[Event]]:
    """LMPOP/BLMPOP/ZMPOP/BZMPOP: ``[key, items]`` tells the key; LEFT/RIGHT, MIN/MAX the event."""

    def rule(c: _Call) -> list[Event]:
        if not c.changed or not isinstance(c.reply, list) or not c.reply:
            return []
        where = keyword(c.args[offset + 1 + int(c.args[offset])])
        if cls == LIST:
            event = b"lpop" if where == b"LEFT" else b"rpop"
        else:
            event = b"zpopmin" if where == b"MIN" else b"zpopmax"
        return _pop(cls, event, c.reply[0], c)

    return rule


def _smove(c: _Call) -> list[Event]:
    if not c.changed or c.reply != 1 or c.args[1] == c.args[2]:
        return []
    events = _pop(SET, b"srem", c.args[1], c)
    if not c.before.extra:  # the member was not in the destination already
        events.append((SET, b"sadd", c.args[2]))
    return events


def _zadd(c: _Call) -> list[Event]:
    if not c.changed:
        return []
    incr = b"INCR" in _opts(c.args[:-2], 2)
    return [(ZSET, b"zincr" if incr else b"zadd", c.args[1])]


def _georadius_store(c: _Call) -> list[Event]:
    """GEORADIUS[BYMEMBER] ... STORE|STOREDIST: ``georadiusstore`` on the key, or ``del`` if emptied."""
    from kv_backend.server.commands.geo import store_key

    keys = store_key(c.args)
    if not keys or not c.changed:
        return []
    return [(GENERIC, b"del", keys[0])] if c.gone(keys[0]) else [(ZSET, b"georadiusstore", keys[0])]


def _sort_store(c: _Call) -> list[Event]:
    """SORT ... STORE: ``sortstore`` on the key, or ``del`` if an empty result removed it."""
    from kv_backend.server.commands.metadata import sort_keys

    keys = [key for key, _ in sort_keys(c.args)[1:]]
    if not keys or type(c.reply) is not int:
        return []
    if c.reply > 0:
        return [(LIST, b"sortstore", keys[0])]
    return [(GENERIC, b"del", keys[0])] if c.changed and c.gone(keys[0]) else []


def _xadd(c: _Call) -> list[Event]:
    if not c.changed:
        return []
    key = c.args[1]
    events: list[Event] = [(STREAM, b"xadd", key)]
    if c.before.extra is not None and c.server.st.xlen(key) < c.before.extra + 1:
        events.append((STREAM, b"xtrim", key))
    return events


def _xgroup(c: _Call) -> list[Event]:
    sub = c.args[1].upper()
    if sub in (b"CREATE", b"SETID"):
        return [(STREAM, b"xgroup-" + sub.lower(), c.args[2])]
    if sub in (b"CREATECONSUMER", b"DESTROY") and c.reply == 1:
        return [(STREAM, b"xgroup-" + sub.lower(), c.args[2])]
    if sub == b"DELCONSUMER" and c.before.extra:
        return [(STREAM, b"xgroup-delconsumer", c.args[2])]
    return []


def _consumers_made(c: _Call) -> list[Event]:
    """XREADGROUP, XCLAIM, XAUTOCLAIM: ``xgroup-createconsumer`` where the consumer is new."""
    if not c.changed or not c.before.extra:
        return []
    db = c.server.db
    return [(STREAM, b"xgroup-createconsumer", key) for key, ck in c.before.extra if ck in db]


# Things to look at before a command runs.


def _prepare_smove(st: Any, args: list[bytes]) -> bool:
    try:
        return bool(st.sismember(args[2], args[3]))
    except Exception:
        return False


def _prepare_xadd(st: Any, args: list[bytes]) -> int | None:
    if not _opts(args, 2) & {b"MAXLEN", b"MINID"}:
        return None
    try:
        return int(st.xlen(args[1]))
    except Exception:
        return None


def _prepare_delconsumer(st: Any, args: list[bytes]) -> bool:
    if len(args) != 5 or args[1].upper() != b"DELCONSUMER":
        return False
    return (_consumer_prefix(args[2], args[3]) + args[4]) in st.db


def _prepare_consumers(st: Any, args: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The (stream, consumer record) pairs whose consumer does not exist yet."""
    name = args[0].lower()
    if name == b"xreadgroup":
        words = [keyword(a) for a in args]
        if b"GROUP" not in words or b"STREAMS" not in words:
            return []
        g = words.index(b"GROUP")
        group, consumer = args[g + 1], args[g + 2]
        rest = args[words.index(b"STREAMS") + 1 :]
        keys = rest[: len(rest) // 2]
    else:
        keys, group, consumer = args[1:2], args[2], args[3]
    out = []
    for key in dict.fromkeys(keys):
        ck = _consumer_prefix(key, group) + consumer
        if ck not in st.db:
            out.append((key, ck))
    return out


def _restore(c: _Call) -> list[Event]:
    """A new key, or (an expiry time already past) the deletion of the key it replaced."""
    if not c.changed:
        return []
    key = c.args[1]
    return [(GENERIC, b"del", key)] if c.gone(key) else [(GENERIC, b"restore", key)]


_PREPARE: dict[bytes, Callable[[Any, list[bytes]], Any]] = {
    b"smove": _prepare_smove,
    b"xadd": _prepare_xadd,
    b"xgroup": _prepare_delconsumer,
    b"xreadgroup": _prepare_consumers,
    b"xclaim": _prepare_consumers,
    b"xautoclaim": _prepare_consumers,
}

_RULES: dict[bytes, Callable[[_Call], list[Event]]] = {
    # strings
    b"set": _set,
    b"setnx": _simple(STRING, b"set"),
    b"setex": _setex,
    b"psetex": _setex,
    b"getset": _simple(STRING, b"set", always=True),
    b"mset": _mset,
    b"msetnx": _mset,
    b"getdel": _simple(GENERIC, b"del"),
    b"getex": _getex,
    b"append": _simple(STRING, b"append", always=True),
    b"setrange": _simple(STRING, b"setrange"),
    b"incr": _simple(STRING, b"incrby", always=True),
    b"incrby": _simple(STRING, b"incrby", always=True),
    b"decr": _simple(STRING, b"incrby", always=True),
    b"decrby": _simple(STRING, b"incrby", always=True),
    b"incrbyfloat": _simple(STRING, b"incrbyfloat", always=True),
    b"setbit": _simple(STRING, b"setbit"),
    b"bitfield": _bitfield,
    b"bitop": _bitop,
    b"pfadd": _simple(STRING, b"pfadd"),
    b"pfmerge": _simple(STRING, b"pfadd", always=True),
    # keys
    b"del": _del,
    b"unlink": _del,
    b"expire": _expire,
    b"pexpire": _expire,
    b"expireat": _expire,
    b"pexpireat": _expire,
    b"persist": _simple(GENERIC, b"persist"),
    b"rename": _rename,
    b"renamenx": _rename,
    b"copy": _copy,
    b"restore": _restore,
    # hashes
    b"hset": _simple(HASH, b"hset", always=True),
    b"hmset": _simple(HASH, b"hset", always=True),
    b"hsetnx": _simple(HASH, b"hset"),
    b"hincrby": _simple(HASH, b"hincrby", always=True),
    b"hincrbyfloat": _simple(HASH, b"hincrbyfloat", always=True),
    b"hdel": _removing(HASH, b"hdel"),
    # lists
    b"lpush": _simple(LIST, b"lpush"),
    b"lpushx": _simple(LIST, b"lpush"),
    b"rpush": _simple(LIST, b"rpush"),
    b"rpushx": _simple(LIST, b"rpush"),
    b"lpop": _removing(LIST, b"lpop"),
    b"rpop": _removing(LIST, b"rpop"),
    b"linsert": _linsert,
    b"lset": _simple(LIST, b"lset", always=True),
    b"lrem": _removing(LIST, b"lrem"),
    b"ltrim": _ltrim,
    b"rpoplpush": _move,
    b"lmove": _move,
    b"brpoplpush": _move,
    b"blmove": _move,
    b"lmpop": _mpop(1, LIST),
    b"blmpop": _mpop(2, LIST),
    b"blpop": _bpop(b"lpop"),
    b"brpop": _bpop(b"rpop"),
    # sets
    b"sadd": _simple(SET, b"sadd"),
    b"srem": _removing(SET, b"srem"),
    b"spop": _removing(SET, b"spop"),
    b"smove": _smove,
    b"sinterstore": _storing(SET, b"sinterstore"),
    b"sunionstore": _storing(SET, b"sunionstore"),
    b"sdiffstore": _storing(SET, b"sdiffstore"),
    # sorted sets
    b"zadd": _zadd,
    b"zincrby": _simple(ZSET, b"zincr"),  # not when the score stays (ZINCRBY k 0 m, inf + 1), as Redis
    b"zrem": _removing(ZSET, b"zrem"),
    b"zremrangebyscore": _removing(ZSET, b"zremrangebyscore"),
    b"zremrangebyrank": _removing(ZSET, b"zremrangebyrank"),
    b"zremrangebylex": _removing(ZSET, b"zremrangebylex"),
    b"zpopmin": _removing(ZSET, b"zpopmin"),
    b"zpopmax": _removing(ZSET, b"zpopmax"),
    b"zmpop": _mpop(1, ZSET),
    b"bzmpop": _mpop(2, ZSET),
    b"bzpopmin": _bpop(b"zpopmin", ZSET),
    b"bzpopmax": _bpop(b"zpopmax", ZSET),
    b"zunionstore": _storing(ZSET, b"zunionstore"),
    b"zinterstore": _storing(ZSET, b"zinterstore"),
    b"zdiffstore": _storing(ZSET, b"zdiffstore"),
    b"zrangestore": _storing(ZSET, b"zrangestore"),
    # geo (on sorted sets: GEOADD is ZADD to Redis)
    b"geoadd": _simple(ZSET, b"zadd"),
    b"geosearchstore": _storing(ZSET, b"geosearchstore"),
    b"georadius": _georadius_store,
    b"sort": _sort_store,
    b"georadiusbymember": _georadius_store,
    # streams
    b"xadd": _xadd,
    b"xdel": _simple(STREAM, b"xdel"),
    b"xtrim": _simple(STREAM, b"xtrim"),
    b"xsetid": _simple(STREAM, b"xsetid", always=True),
    b"xgroup": _xgroup,
    b"xreadgroup": _consumers_made,
    b"xclaim": _consumers_made,
    b"xautoclaim": _consumers_made,
}
