"""How Redis keys map to engine records: key prefixes, type tags and value encodings."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from kv_backend.errors import InvalidArgumentError, StorageError, UnencodableTextError
from kv_backend.lazy import load

Name = bytes | str | int | float


Value = bytes | str | int | float

#: The key type of a mapping argument (``mset({...})``, ``zadd(name, {...})``): a TypeVar bound to
#: Name rather than Name itself, because a Mapping is invariant in its key type, so a plain
#: ``dict[str, str]`` is no ``Mapping[Name, Value]`` and a type checker refused it.
NameT = TypeVar("NameT", bound=Name)
_T = TypeVar("_T")


META = b"\x00m"


HASH = b"\x00h"


LIST = b"\x00l"


SET = b"\x00s"


ZMEM = b"\x00z"


ZIDX = b"\x00Z"


STREAM = b"\x00x"
GROUP = b"\x00g"  # stream consumer groups
CONSUMER = b"\x00c"  # consumers of a group
PENDING = b"\x00p"  # entries delivered to a group and not yet acknowledged


ALL_PREFIXES = (META, HASH, LIST, SET, ZMEM, ZIDX, STREAM, GROUP, CONSUMER, PENDING)


#: The one record holding ``kvb serve``'s Redis function libraries (their code). It is not under
#: any key prefix above: SCAN/KEYS/DBSIZE do not see it and FLUSHDB/FLUSHALL leave it, as Redis
#: keeps functions across FLUSHALL (FUNCTION FLUSH deletes it).
FUNCTIONS = b"\x00F"

#: ``kvb serve``'s shared script cache, outside every key prefix as :data:`FUNCTIONS` is: the body of
#: each script SCRIPT LOAD cached, under this prefix and its SHA1 (40 lower-case hex digits), so that
#: every server on the directory runs it by EVALSHA; and, under the prefix alone, a mark that
#: SCRIPT FLUSH changes, which tells every server to forget the scripts it cached (EVAL's too).
SCRIPTS = b"\x00S"

#: The second byte of every engine key of this layout (each starts with a NUL byte).
_LAYOUT_BYTES = frozenset(prefix[1] for prefix in (*ALL_PREFIXES, FUNCTIONS, SCRIPTS))


def is_structures_key(key: bytes) -> bool:
    """Whether the engine key ``key`` is one of this layout's records (of a Redis key, of
    ``kvb serve``'s functions or scripts): a record other front ends on the directory must leave
    alone, as removing it alone leaves a Redis key damaged (a hash counting fields it no longer has)."""
    return key[:1] == b"\x00" and len(key) > 1 and key[1] in _LAYOUT_BYTES


def record_test(db: Any) -> Callable[[bytes], bool]:
    """A test of whether a key of the :class:`~kv_backend.DB` ``db`` is a record the server wrote, which
    other front ends leave alone: a metadata record whose value has this layout's form (not
    :func:`foreign_meta`), a member record of a Redis key that has such a metadata record of its type,
    the function libraries' record, the script cache's mark, or a cached script (its key the SHA1 of
    its value). Other keys of :func:`is_structures_key`'s form (a dbm's ``b"\\x00m"``, UTF-16-BE text)
    are another front end's, as they are to the server (to which a member record without its metadata
    record is a leftover to remove, and a metadata record of another front end's value no Redis key's).
    Metadata records are read once per test (it keeps what it read)."""
    metas: dict[bytes, bytes | None] = {}

    def live_meta(name: bytes) -> bytes | None:
        if name not in metas:
            meta = db.get(META + name)
            metas[name] = None if meta is None or foreign_meta(meta) else meta
        return metas[name]

    def is_record(key: bytes) -> bool:
        if not is_structures_key(key):
            return False
        prefix = key[:2]
        if prefix == META:
            return live_meta(key[2:]) is not None
        if prefix in (FUNCTIONS, SCRIPTS):
            return _server_record(key, db.get(key))
        name = member_name(key)
        meta = None if name is None else live_meta(name)
        return meta is not None and prefix in MEMBER_PREFIXES.get(meta[0], ())

    return is_record


def _server_record(key: bytes, value: bytes | None) -> bool:
    """Whether ``key`` (under :data:`FUNCTIONS` or :data:`SCRIPTS`) and ``value`` are a record the server
    writes there: its function libraries (length-prefixed codes), its script cache's mark (8 bytes) or a
    script under the SHA1 of its body."""
    if value is None:
        return False
    if key == FUNCTIONS:
        at = 0
        while at + 4 <= len(value):
            at += 4 + _LEN.unpack_from(value, at)[0]
        return at == len(value) > 0
    if key == SCRIPTS:
        return len(value) == 8
    sha = key[2:]
    return len(sha) == 40 and load("hashlib").sha1(value).hexdigest().encode() == sha  # (not at import)


def _past(key: bytes) -> bytes:
    """Where :func:`own_keys` looks next after ``key``, a member record: past every record of its Redis key
    under the same prefix (all of them start with ``prefix + len(name) + name``)."""
    name = member_name(key)
    assert name is not None  # (is_record accepted it)
    group = key[: 6 + len(name)]
    return group[:-1] + bytes((group[-1] + 1,)) if group[-1] < 0xFF else key + b"\x00"


def _formless_keys(db: Any) -> Iterator[bytes]:
    """The keys of ``db`` in byte order that have not the form of the server's records
    (:func:`is_structures_key`), each of whose prefixes is jumped over, not walked."""
    start = None
    while True:
        for key in db.keys(start=start):
            if is_structures_key(key):
                start = key[:1] + bytes((key[1] + 1,))
                break
            yield key
        else:
            return


def own_keys(db: Any) -> Iterator[bytes]:
    """The keys of the :class:`~kv_backend.DB` ``db`` in byte order but the records the server wrote
    (:func:`record_test`); the member records of a Redis key are jumped over, not walked."""
    is_record = record_test(db)
    start = None
    while True:
        for key in db.keys(start=start):
            if not is_record(key):
                yield key
            elif key[:2] not in (META, FUNCTIONS, SCRIPTS):  # (one record each: walked on)
                start = _past(key)
                break
        else:
            return


def pop_first(db: Any, take: Callable[[bytes], _T | None], what: str) -> _T:
    """``take(key)`` for the smallest key of ``db`` that has not the form of a record of a Redis key or,
    when only keys of that form are left, for the smallest of them that the server did not write (a
    front end's ``popitem()``: removing a record alone damages its Redis key, so they are left alone as
    the Django cache's culling leaves them; the keys of that form are read only then, so that a
    directory of many Redis keys does not cost every popitem() a read of each), again while another
    process takes it first (``take`` returns None); KeyError when none is left, saying so of the
    ``what`` (``"store"``...)."""
    while True:
        key = next(_formless_keys(db), None)
        if key is None:
            key = next(own_keys(db), None)
        if key is not None:
            found = take(key)
            if found is not None:
                return found
            # another thread or process took it meanwhile: look again
        else:
            if next(db.keys(), None) is None:
                raise KeyError(f"popitem(): the {what} is empty")
            raise KeyError(
                f"popitem(): the {what} holds only records of Redis keys (of kvb serve or "
                "kv_backend.structures), which popitem() leaves alone: removing one alone damages its Redis "
                "key; delete those keys through kvb serve"
            )


def clear_own(db: Any) -> None:
    """Remove every key of the :class:`~kv_backend.DB` ``db`` but the records the server wrote
    (:func:`record_test`), in one atomic batch under the write lock: the ``clear()`` of a front end
    (Store, dbm, shelf, the Django cache) on a directory ``kvb serve`` also uses leaves its Redis keys,
    functions and scripts whole, as its ``popitem()`` and the Django cache's culling leave them."""
    with db.locked():
        db.purge_expired()  # (expired keys, which no listing shows, leave the index as by DB.clear())
        is_record = record_test(db)
        doomed = [key for key in db.unordered_keys() if not is_record(key)]
        if doomed:
            try:
                with db.batch() as b:
                    for key in doomed:
                        b.delete(key)
            except StorageError as exc:
                raise db._no_room_to_clear(exc, doomed) from exc


#: What :func:`redis_record_advice` calls the records of ``kvb serve`` that are of no Redis key.
_SERVER_RECORDS = {
    FUNCTIONS: "kvb serve's record of its function libraries",
    SCRIPTS: "a record of kvb serve's script cache",
}


def redis_record_advice(
    key: bytes, front_end: str, cannot: str = "list a directory holding Redis keys"
) -> str:
    """What to say of a stored ``key`` that ``front_end`` cannot list (or do what ``cannot`` says with),
    if it is a record of a Redis key (of ``kvb serve`` or ``kv_backend.structures`` on the same
    directory); "" for any other key."""
    key = bytes(key)
    if not is_structures_key(key):
        return ""
    what = _SERVER_RECORDS.get(key[:2], "a record of a Redis key of kvb serve (or kv_backend.structures)")
    return (
        f"it is {what}; kvb serve keeps its keys (several records each), functions and scripts in the same "
        f"directory, and {front_end} cannot {cannot}; give it a directory "
        "of its own. To look at the records, open the directory with "
        "kv_backend.Store(path, key_type=bytes); change those whose key starts with a NUL byte only through "
        "kvb serve: removing one alone leaves its Redis key damaged"
    )


T_STRING = 0x73  # b"s"


T_HASH = 0x68  # b"h"


T_LIST = 0x6C  # b"l"


T_SET = 0x74  # b"t"


T_ZSET = 0x7A  # b"z"


T_STREAM = 0x78  # b"x"


TYPE_NAMES = {
    T_STRING: "string",
    T_HASH: "hash",
    T_LIST: "list",
    T_SET: "set",
    T_ZSET: "zset",
    T_STREAM: "stream",
}


MEMBER_PREFIXES = {
    T_HASH: (HASH,),
    T_LIST: (LIST,),
    T_SET: (SET,),
    T_ZSET: (ZMEM, ZIDX),
    T_STREAM: (STREAM, GROUP, CONSUMER, PENDING),
}


#: The sizes of a collection's metadata record (a string's holds its value: any size). A stream's
#: metadata written before consumer groups existed is the shorter one.
_META_SIZES = {T_HASH: (17,), T_SET: (17,), T_ZSET: (17,), T_LIST: (25,), T_STREAM: (33, 57)}

#: A bound that the numbers of a collection's metadata record never reach: its count (each member is a
#: record whose key every process holds in memory), its write counter (one a write: 2**48 writes take 89
#: years at 100,000 a second) and a list's head and tail indexes. Where another front end's value has the
#: size of such a record, its bytes read as numbers past it unless the first two bytes of each are zero:
#: the bytes of text (or of most binary values) never pass for one (see docs/redis.md, "Storage layout").
_BOUND = 1 << 48

#: Each type's tag as the first byte of its metadata record (a one-byte bytes).
TAG_OF = {tag: bytes((tag,)) for tag in TYPE_NAMES}

#: The size of each collection's metadata record by its tag (a stream's of today), for the commands
#: that read a collection's members without its count (:meth:`Keyspace._meta`): one ``len()``.
META_SIZE = {tag: sizes[-1] for tag, sizes in _META_SIZES.items()}
_SIZES_BY_TAG_BYTE = {TAG_OF[tag]: sizes for tag, sizes in _META_SIZES.items()}


def has_layout_form(meta: bytes) -> bool:
    """Whether ``meta``, the value of a metadata record, has the form of one this layout writes: a
    string's type tag (and any bytes), or a collection's tag and that collection's size. An empty
    value, a pickle, a JSON value or a dbm value starting with another byte has not, nor one starting
    with a collection's tag but of another size (JSON's ``true``: a set's tag, 4 bytes). A
    collection's numbers are not read here: see :func:`counts`."""
    tag = meta[:1]
    return tag == b"s" or len(meta) in _SIZES_BY_TAG_BYTE.get(tag, ())


def list_meta(meta: bytes) -> tuple[int, int, int] | None:
    """``(head, tail, version)`` of a list's metadata record ``meta``, or None if this layout cannot
    have written it (the wrong size, no element: a list's last pop deletes the record, or numbers no
    list reaches: see :data:`_BOUND`)."""
    if len(meta) != 25:
        return None
    head, tail, version = _LST.unpack_from(meta, 1)
    return (head, tail, version) if -_BOUND < head < tail < _BOUND and version < _BOUND else None


def counts(meta: bytes) -> tuple[int, int] | None:
    """``(count, version)`` of the metadata record ``meta`` of a hash, set, sorted set, list or
    stream, or None if this layout cannot have written it (no collection's tag, the wrong size, no
    member where the last one's removal deletes the record: all but a stream, or numbers no
    collection reaches: see :data:`_BOUND`): the one check of a metadata record every command that
    reads a collection's count goes through."""
    if not meta:
        return None
    if meta[0] == T_LIST:
        found = list_meta(meta)
        return None if found is None else (found[1] - found[0], found[2])
    sizes = _META_SIZES.get(meta[0])
    if sizes is None or len(meta) not in sizes:
        return None
    count, version = _CNT.unpack_from(meta, 1)
    if count >= _BOUND or version >= _BOUND or (count == 0 and meta[0] != T_STREAM):
        return None
    return count, version


def foreign_meta(meta: bytes) -> bool:
    """Whether ``meta``, the value of a metadata record, cannot have been written by this layout (but
    by another front end, as the engine key ``META + name``: a Store's ``"\\x00mname"``). A string's
    record is its type tag and any bytes: one of another front end's that starts with that tag
    cannot be told from one (see docs/redis.md, "Storage layout")."""
    return not meta or (meta[0] != T_STRING and counts(meta) is None)


_CNT = struct.Struct(">QQ")  # count, version
#: A hash's metadata record of its size (17 bytes) lies strictly between these two as bytes exactly when
#: it has a hash's tag and a count from 1 to _BOUND - 1; with its version's first two bytes zero, that is
#: when counts() accepts it. HSET's fast path checks it so, with no unpacking (see Hashes._hset).
HASH_META_ABOVE = bytes([T_HASH]) + bytes(8) + b"\xff" * 8
HASH_META_BELOW = bytes([T_HASH, 0, 1])
#: The same bounds for a set's and a sorted set's records (also 17 bytes), which SISMEMBER and ZSCORE
#: check so (see Sets.sismember).
SET_META_ABOVE = bytes([T_SET]) + bytes(8) + b"\xff" * 8
SET_META_BELOW = bytes([T_SET, 0, 1])
ZSET_META_ABOVE = bytes([T_ZSET]) + bytes(8) + b"\xff" * 8
ZSET_META_BELOW = bytes([T_ZSET, 0, 1])
#: Those bounds by tag (Keyspace._counted_meta).
LIVE_META_BOUNDS = {
    T_HASH: (HASH_META_ABOVE, HASH_META_BELOW),
    T_SET: (SET_META_ABOVE, SET_META_BELOW),
    T_ZSET: (ZSET_META_ABOVE, ZSET_META_BELOW),
}


_LST = struct.Struct(">qqQ")  # head (inclusive), tail (exclusive), version


_U64 = struct.Struct(">Q")


_LEN = struct.Struct(">I")


_BIAS = 1 << 63


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


_time = time.time


def _b(value: Value | bytearray | memoryview) -> bytes:
    """Encode a name, field or value as redis-py does: bytes as is, str as UTF-8, numbers as text.

    Anything else (None, a bool, a list...) is an :class:`~kv_backend.errors.InvalidArgumentError`;
    a str UTF-8 cannot encode (lone surrogates) an :class:`~kv_backend.errors.UnencodableTextError`
    (the ``UnicodeEncodeError`` redis-py raises, and a KVError).
    """
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UnencodableTextError(exc.encoding, exc.object, exc.start, exc.end, exc.reason) from None
    if isinstance(value, bool):
        raise InvalidArgumentError(
            "booleans are not accepted as keys or values; pass bytes, str, int or float"
        )
    if isinstance(value, int):
        try:
            return int.__repr__(value).encode()  # the number, whatever a subclass's str or repr says
        except ValueError:  # more digits than Python turns into text (sys.get_int_max_str_digits())
            raise InvalidArgumentError(
                "an int with this many digits cannot be written as text; pass it as a str "
                "(or raise sys.set_int_max_str_digits())"
            ) from None
    if isinstance(value, float):
        return float.__repr__(value).encode()  # numpy's float64 repr is "np.float64(1.5)"
    raise InvalidArgumentError(
        f"names, fields, members and values must be bytes, str, int or float, not {type(value).__name__}"
    )


def _pairs(arg: object, what: str) -> list[tuple[Any, Any]]:
    """The ``(key, value)`` pairs of an argument given as a mapping or as an iterable of pairs.

    Anything else (None, a str, an element that is not a pair, such as a 2-character str that
    would unpack as one) is an :class:`~kv_backend.errors.InvalidArgumentError` naming ``what``.
    """
    if isinstance(arg, Mapping):
        return list(arg.items())
    if isinstance(arg, (str, bytes, bytearray, memoryview)) or not isinstance(arg, Iterable):
        raise InvalidArgumentError(
            f"{what} must be a mapping or (key, value) pairs, not {type(arg).__name__}"
        )
    out = list(arg)
    for item in out:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidArgumentError(
                f"{what} must be a mapping or (key, value) pairs; one element is {item!r:.60}"
            )
    return out


def _list_or_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The names, fields or members a method takes as ``*args``, also as redis-py takes them
    (``mget(["a", "b"])``, ``hmget(name, ["f", "g"], "h")``): a first argument that is a list or
    another iterable (no str or bytes) stands for its items, followed by the rest."""
    if args and not isinstance(args[0], (bytes, str, bytearray, memoryview, int, float)):
        first = args[0]
        if isinstance(first, Iterable):
            return (*first, *args[1:])
    return args


def _lp(name: bytes) -> bytes:
    return _LEN.pack(len(name)) + name


def member_name(key: bytes) -> bytes | None:
    """The name of the Redis key whose member record is ``key`` (an engine key under one of the member
    prefixes: ``prefix + len(name) + name + ...``), or None where ``key`` cannot be one: shorter than
    the length it holds says, it is a key another front end wrote (``Store(path)["\\x00hello"]``)."""
    if len(key) < 6:
        return None
    end = 6 + _LEN.unpack_from(key, 2)[0]
    return key[6:end] if len(key) >= end else None


def encode_score(score: float) -> bytes:
    """8 bytes that sort (as unsigned bytes) in the same order as the doubles."""
    if score == 0.0:
        score = 0.0  # -0.0 and 0.0 are the same score
    (bits,) = _U64.unpack(struct.pack(">d", score))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits & _BIAS else bits | _BIAS
    return _U64.pack(bits)


def foreign_member(record: bytes) -> Exception:
    """The :class:`~kv_backend.structures.ForeignRecordError` for the member record ``record`` (the
    engine key of a score, a stream entry, a consumer group...) whose key or value this layout cannot
    have written: another front end on the directory wrote it (a Store's ``"\\x00z..."``)."""
    from kv_backend.structures.errors import ForeignRecordError  # (which imports this module)

    return ForeignRecordError(member_name(record) or b"", record)


def decode_score(data: bytes, record: bytes = b"") -> float:
    """Inverse of :func:`encode_score`; ForeignRecordError naming the engine key ``record`` (whose
    value or key bytes ``data`` is) if ``data`` is not 8 bytes, or is the bytes of a NaN, which no
    score is (8 zero bytes, say)."""
    try:
        (bits,) = _U64.unpack(data)
    except struct.error:
        raise foreign_member(record) from None
    bits = bits ^ _BIAS if bits & _BIAS else bits ^ 0xFFFFFFFFFFFFFFFF
    score: float = struct.unpack(">d", _U64.pack(bits))[0]
    if score != score:
        raise foreign_member(record)
    return score


def _idx(i: int) -> bytes:
    return _U64.pack(i + _BIAS)
