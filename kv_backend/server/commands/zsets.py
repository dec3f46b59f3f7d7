"""Sorted-set commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import (
    arg_int,
    arg_positive,
    block_timeout,
    command,
    limit_option,
    mpop_args,
    random_count_with,
    scan_options,
    syntax,
    try_or_block_pop,
    upper,
)
from kv_backend.server.protocol import NULL_ARRAY
from kv_backend.structures import CommandError, parse_cursor, parse_float

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


def _scored(conn: Connection, items: list[tuple[bytes, float]]) -> list[Any]:
    if conn.resp3:
        return [[m, s] for m, s in items]
    from kv_backend.structures import format_float

    flat: list[Any] = []
    for m, s in items:
        flat += [m, format_float(s)]
    return flat


@command("ZADD", -4, "write")
def cmd_zadd(conn: Connection, args: list[bytes]) -> Any:
    opts: set[bytes] = set()
    i = 2
    while i < len(args) and upper(args[i]) in (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"):
        opts.add(upper(args[i]))
        i += 1
    rest = args[i:]
    if not rest or len(rest) % 2:
        raise syntax()
    pairs = list(zip(rest[1::2], rest[::2], strict=True))  # scores are read after the options are checked
    result = conn.st.zadd(
        args[1],
        pairs,
        nx=b"NX" in opts,
        xx=b"XX" in opts,
        gt=b"GT" in opts,
        lt=b"LT" in opts,
        ch=b"CH" in opts,
        incr=b"INCR" in opts,
    )
    if b"INCR" in opts:
        return _score_reply(conn, result)
    return result


def _score_reply(conn: Connection, score: float | None) -> Any:
    if score is None or conn.resp3:
        return score
    from kv_backend.structures import format_float

    return format_float(score)


@command("ZINCRBY", 4, "write")
def cmd_zincrby(conn: Connection, args: list[bytes]) -> Any:
    return _score_reply(conn, conn.st.zincrby(args[1], parse_float(args[2]), args[3]))


@command("ZREM", -3, "write")
def cmd_zrem(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zrem(args[1], *args[2:])


@command("ZSCORE", 3)
def cmd_zscore(conn: Connection, args: list[bytes]) -> Any:
    return _score_reply(conn, conn.st.zscore(args[1], args[2]))


@command("ZMSCORE", -3)
def cmd_zmscore(conn: Connection, args: list[bytes]) -> Any:
    return [_score_reply(conn, s) for s in conn.st.zmscore(args[1], *args[2:])]


@command("ZCARD", 2)
def cmd_zcard(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zcard(args[1])


@command("ZCOUNT", 4)
def cmd_zcount(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zcount(args[1], args[2], args[3])


def _range_opts(args: list[bytes], start: int, allow_by: bool, withscores: bool = True) -> dict[str, Any]:
    opts: dict[str, Any] = {"withscores": False, "limit": None, "by": None, "rev": False}
    i = start
    while i < len(args):
        opt = upper(args[i])
        if opt == b"WITHSCORES" and withscores:
            opts["withscores"] = True
        elif opt == b"LIMIT" and i + 2 < len(args):
            opts["limit"] = (arg_int(args[i + 1]), arg_int(args[i + 2]))
            i += 2
        elif allow_by and opt in (b"BYSCORE", b"BYLEX") and opts["by"] is None:
            opts["by"] = "score" if opt == b"BYSCORE" else "lex"
        elif allow_by and opt == b"REV" and not opts["rev"]:
            opts["rev"] = True
        else:
            raise syntax()
        i += 1
    return opts


def _by_score(conn: Connection, key: bytes, lo: bytes, hi: bytes, opts: dict[str, Any], rev: bool) -> Any:
    start, num = opts["limit"] if opts["limit"] else (None, None)
    if rev:
        items = conn.st.zrevrangebyscore(key, hi, lo, start, num, withscores=True)
    else:
        items = conn.st.zrangebyscore(key, lo, hi, start, num, withscores=True)
    if opts["withscores"]:
        return _scored(conn, items)
    return [m for m, _ in items]


def _by_lex(conn: Connection, key: bytes, lo: bytes, hi: bytes, opts: dict[str, Any], rev: bool) -> Any:
    if opts["withscores"]:
        raise CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    start, num = opts["limit"] if opts["limit"] else (None, None)
    if rev:
        return conn.st.zrevrangebylex(key, hi, lo, start, num)
    return conn.st.zrangebylex(key, lo, hi, start, num)


@command("ZRANGE", -4)
def cmd_zrange(conn: Connection, args: list[bytes]) -> Any:
    opts = _range_opts(args, 4, allow_by=True)
    if opts["by"] == "lex":
        lo, hi = (args[3], args[2]) if opts["rev"] else (args[2], args[3])
        return _by_lex(conn, args[1], lo, hi, opts, opts["rev"])
    if opts["by"] == "score":
        lo, hi = (args[3], args[2]) if opts["rev"] else (args[2], args[3])
        return _by_score(conn, args[1], lo, hi, opts, opts["rev"])
    return _by_rank(conn, args, opts, opts["rev"])


def _by_rank(conn: Connection, args: list[bytes], opts: dict[str, Any], rev: bool) -> Any:
    """ZRANGE by rank and ZREVRANGE: LIMIT is refused (but ``LIMIT <offset> -1``, which Redis takes
    for no limit and ignores), then the ranks are read, then the key."""
    if opts["limit"] and opts["limit"][1] != -1:
        raise CommandError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    items = conn.st.zrange(args[1], arg_int(args[2]), arg_int(args[3]), desc=rev, withscores=True)
    return _scored(conn, items) if opts["withscores"] else [m for m, _ in items]


@command("ZREVRANGE", -4)
def cmd_zrevrange(conn: Connection, args: list[bytes]) -> Any:
    return _by_rank(conn, args, _range_opts(args, 4, allow_by=False), rev=True)


@command("ZRANGEBYSCORE", -4)
def cmd_zrangebyscore(conn: Connection, args: list[bytes]) -> Any:
    return _by_score(conn, args[1], args[2], args[3], _range_opts(args, 4, allow_by=False), rev=False)


@command("ZREVRANGEBYSCORE", -4)
def cmd_zrevrangebyscore(conn: Connection, args: list[bytes]) -> Any:
    return _by_score(conn, args[1], args[3], args[2], _range_opts(args, 4, allow_by=False), rev=True)


@command("ZRANGEBYLEX", -4)
def cmd_zrangebylex(conn: Connection, args: list[bytes]) -> Any:
    """Members between two lexicographical bounds ([m, (m, -, +), in byte order."""
    return _by_lex(conn, args[1], args[2], args[3], _range_opts(args, 4, allow_by=False), rev=False)


@command("ZREVRANGEBYLEX", -4)
def cmd_zrevrangebylex(conn: Connection, args: list[bytes]) -> Any:
    """Members between two lexicographical bounds (max first), in reverse byte order."""
    return _by_lex(conn, args[1], args[3], args[2], _range_opts(args, 4, allow_by=False), rev=True)


@command("ZLEXCOUNT", 4)
def cmd_zlexcount(conn: Connection, args: list[bytes]) -> Any:
    """Number of members between two lexicographical bounds."""
    return conn.st.zlexcount(args[1], args[2], args[3])


@command("ZREMRANGEBYLEX", 4, "write")
def cmd_zremrangebylex(conn: Connection, args: list[bytes]) -> Any:
    """Remove the members between two lexicographical bounds."""
    return conn.st.zremrangebylex(args[1], args[2], args[3])


@command("ZRANK", -3)
def cmd_zrank(conn: Connection, args: list[bytes]) -> Any:
    return _rank(conn, args, desc=False)


@command("ZREVRANK", -3)
def cmd_zrevrank(conn: Connection, args: list[bytes]) -> Any:
    return _rank(conn, args, desc=True)


def _rank(conn: Connection, args: list[bytes], desc: bool) -> Any:
    """ZRANK/ZREVRANK key member [WITHSCORE], as Redis 7.2 (the version kvb reports) answers them:
    with WITHSCORE, ``[rank, score]`` or a null array for a missing key or member."""
    if len(args) > 4:
        raise CommandError(
            f"ERR wrong number of arguments for '{args[0].decode(errors='replace').lower()}' command"
        )
    withscore = len(args) == 4
    if withscore and upper(args[3]) != b"WITHSCORE":
        raise CommandError("ERR syntax error")
    rank = conn.st.zrank(args[1], args[2], desc=desc)
    if not withscore:
        return rank
    if rank is None:
        return NULL_ARRAY
    return [rank, _score_reply(conn, conn.st.zscore(args[1], args[2]))]


@command("ZREMRANGEBYSCORE", 4, "write")
def cmd_zremrangebyscore(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zremrangebyscore(args[1], args[2], args[3])


@command("ZREMRANGEBYRANK", 4, "write")
def cmd_zremrangebyrank(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zremrangebyrank(args[1], arg_int(args[2]), arg_int(args[3]))


@command("ZSCAN", -3)
def cmd_zscan(conn: Connection, args: list[bytes]) -> Any:
    cursor = parse_cursor(args[2])
    if not conn.st.zcard(args[1]):  # as Redis: the cursor, the key (WRONGTYPE...), then the options
        return [b"0", []]
    match, count, _ = scan_options(args, 3)
    cursor, items = conn.st.zscan(args[1], cursor, match=match, count=count)
    from kv_backend.structures import format_float

    flat: list[bytes] = []
    for m, s in items:
        flat += [m, format_float(s)]
    return [str(cursor).encode(), flat]


def _pairs(conn: Connection, items: list[tuple[bytes, float]]) -> list[Any]:
    """``[[member, score], ...]`` in both protocols (ZMPOP's reply; RESP2 scores are bulk strings)."""
    return [[m, _score_reply(conn, s)] for m, s in items]


def _zpop(conn: Connection, args: list[bytes], highest: bool) -> Any:
    if len(args) > 3:
        raise syntax()
    count = arg_positive(args[2]) if len(args) == 3 else 1  # the count before the key's type, as Redis
    items = (conn.st.zpopmax if highest else conn.st.zpopmin)(args[1], count)
    if len(args) == 3 and conn.resp3:  # RESP3 nests the pairs when a count is given
        return _pairs(conn, items)
    return [x for m, s in items for x in (m, _score_reply(conn, s))]


@command("ZPOPMIN", -2, "write")
def cmd_zpopmin(conn: Connection, args: list[bytes]) -> Any:
    """Remove and return the members with the lowest scores (1, or count)."""
    return _zpop(conn, args, highest=False)


@command("ZPOPMAX", -2, "write")
def cmd_zpopmax(conn: Connection, args: list[bytes]) -> Any:
    """Remove and return the members with the highest scores (1, or count)."""
    return _zpop(conn, args, highest=True)


def _blocking_zpop(conn: Connection, args: list[bytes], where: str) -> Any:
    keys = args[1:-1]
    timeout = block_timeout(args[-1])
    zmpop = conn.st.zmpop

    def pop(names: list[bytes]) -> list[Any] | None:
        found = zmpop(names, where, 1)
        if found is None:
            return None
        name, [(member, score)] = found
        return [name, member, _score_reply(conn, score)]

    return try_or_block_pop(conn, keys, timeout, pop)


@command("BZPOPMIN", -3, "write")
def cmd_bzpopmin(conn: Connection, args: list[bytes]) -> Any:
    """Pop the lowest member of the first non-empty sorted set, waiting up to timeout seconds (0: ever)."""
    return _blocking_zpop(conn, args, "min")


@command("BZPOPMAX", -3, "write")
def cmd_bzpopmax(conn: Connection, args: list[bytes]) -> Any:
    """Pop the highest member of the first non-empty sorted set, waiting up to timeout seconds (0: ever)."""
    return _blocking_zpop(conn, args, "max")


def _mpop_args(args: list[bytes], first: int) -> tuple[list[bytes], str, int]:
    """ZMPOP's and BZMPOP's ``numkeys key... MIN|MAX [COUNT n]``: the keys, ``min`` or ``max``, the count."""
    keys, where, count = mpop_args(args, first, (b"MIN", b"MAX"))
    return keys, where.decode().lower(), count


def _mpop_reply(conn: Connection, found: tuple[bytes, list[tuple[bytes, float]]] | None) -> Any:
    return NULL_ARRAY if found is None else [found[0], _pairs(conn, found[1])]


@command("ZMPOP", -4, "write")
def cmd_zmpop(conn: Connection, args: list[bytes]) -> Any:
    """Pop up to COUNT members (default 1) from the first non-empty of the given sorted sets."""
    keys, where, count = _mpop_args(args, 1)
    return _mpop_reply(conn, conn.st.zmpop(keys, where, count))


@command("BZMPOP", -5, "write")
def cmd_bzmpop(conn: Connection, args: list[bytes]) -> Any:
    """ZMPOP that waits up to timeout seconds (0: for ever) for one of the sorted sets to have a member."""
    keys, where, count = _mpop_args(args, 2)
    timeout = block_timeout(args[1])  # after the other arguments, as Redis reads them
    zmpop = conn.st.zmpop

    def pop(names: list[bytes]) -> Any:
        found = zmpop(names, where, count)
        return None if found is None else _mpop_reply(conn, found)

    return try_or_block_pop(conn, keys, timeout, pop)


@command("ZRANDMEMBER", -2)
def cmd_zrandmember(conn: Connection, args: list[bytes]) -> Any:
    """Random members: one, COUNT distinct ones, or -COUNT that may repeat (WITHSCORES)."""
    if len(args) == 2:
        return conn.st.zrandmember(args[1])
    count, withscores = random_count_with(args, b"WITHSCORES")
    items = conn.st.zrandmember(args[1], count, withscores=True)
    return _pairs(conn, items) if withscores and conn.resp3 else _flat(conn, items, withscores)


def _flat(conn: Connection, items: list[tuple[bytes, float]], withscores: bool) -> list[Any]:
    if not withscores:
        return [m for m, _ in items]
    return [x for m, s in items for x in (m, _score_reply(conn, s))]


def _numkeys(args: list[bytes], at: int) -> list[bytes]:
    """The input keys of ``numkeys key...`` at ``args[at]``, checked as Redis checks them."""
    n = arg_int(args[at])
    if n < 1:
        raise CommandError(
            f"ERR at least 1 input key is needed for '{args[0].decode('utf-8', 'replace').lower()}' command"
        )
    if n > len(args) - at - 1:
        raise syntax()
    return args[at + 1 : at + 1 + n]


def _setop_options(
    args: list[bytes], start: int, nkeys: int, algebra: bool, withscores: bool
) -> tuple[list[float] | None, str, bool]:
    """WEIGHTS, AGGREGATE (ZUNION/ZINTER and their STORE forms) and WITHSCORES (the non-STORE forms)."""
    weights: list[float] | None = None
    aggregate = "sum"
    with_scores = False
    i = start
    while i < len(args):
        opt = upper(args[i])
        left = len(args) - i - 1
        if algebra and opt == b"WEIGHTS" and left >= nkeys:
            weights = [parse_float(w, "ERR weight value is not a float") for w in args[i + 1 : i + 1 + nkeys]]
            i += nkeys
        elif algebra and opt == b"AGGREGATE" and left >= 1 and upper(args[i + 1]) in (b"SUM", b"MIN", b"MAX"):
            aggregate = upper(args[i + 1]).decode().lower()
            i += 1
        elif withscores and opt == b"WITHSCORES":
            with_scores = True
        else:
            raise syntax()
        i += 1
    return weights, aggregate, with_scores


def _setop(conn: Connection, args: list[bytes], op: str, store: bool) -> Any:
    at = 2 if store else 1
    keys = _numkeys(args, at)
    st = conn.st
    with st.db.locked():
        for key in keys:  # every input's type before the options, as Redis
            st._zsource(key)
        weights, aggregate, withscores = _setop_options(
            args, at + 1 + len(keys), len(keys), algebra=op != "diff", withscores=not store
        )
        ws = weights if weights is not None else [1.0] * len(keys)
        result = st._zcombine(op, keys, ws, aggregate)
        if store:
            return st._zstore(args[1], result)
    items = st._zsorted(result, withscores=True)
    if not withscores:
        return [m for m, _ in items]
    return _scored(conn, items)


@command("ZUNIONSTORE", -4, "write")
def cmd_zunionstore(conn: Connection, args: list[bytes]) -> Any:
    """Store the union of sorted sets (WEIGHTS, AGGREGATE SUM|MIN|MAX) in destination."""
    return _setop(conn, args, "union", store=True)


@command("ZINTERSTORE", -4, "write")
def cmd_zinterstore(conn: Connection, args: list[bytes]) -> Any:
    """Store the intersection of sorted sets (WEIGHTS, AGGREGATE SUM|MIN|MAX) in destination."""
    return _setop(conn, args, "inter", store=True)


@command("ZDIFFSTORE", -4, "write")
def cmd_zdiffstore(conn: Connection, args: list[bytes]) -> Any:
    """Store the members of the first sorted set that are in none of the others in destination."""
    return _setop(conn, args, "diff", store=True)


@command("ZUNION", -3)
def cmd_zunion(conn: Connection, args: list[bytes]) -> Any:
    """The union of sorted sets (WEIGHTS, AGGREGATE SUM|MIN|MAX, WITHSCORES)."""
    return _setop(conn, args, "union", store=False)


@command("ZINTER", -3)
def cmd_zinter(conn: Connection, args: list[bytes]) -> Any:
    """The intersection of sorted sets (WEIGHTS, AGGREGATE SUM|MIN|MAX, WITHSCORES)."""
    return _setop(conn, args, "inter", store=False)


@command("ZDIFF", -3)
def cmd_zdiff(conn: Connection, args: list[bytes]) -> Any:
    """The members of the first sorted set that are in none of the others (WITHSCORES)."""
    return _setop(conn, args, "diff", store=False)


@command("ZINTERCARD", -3)
def cmd_zintercard(conn: Connection, args: list[bytes]) -> Any:
    """The size of the intersection of sorted sets, counting up to LIMIT (0: no limit)."""
    keys = _numkeys(args, 1)
    for key in keys:  # every input's type before the options, as Redis
        conn.st._zsource(key)
    return conn.st.zintercard(keys, limit_option(args, 2 + len(keys)))


@command("ZRANGESTORE", -5, "write")
def cmd_zrangestore(conn: Connection, args: list[bytes]) -> Any:
    """Store a ZRANGE (by rank, BYSCORE or BYLEX; REV, LIMIT) of a sorted set in destination."""
    opts = _range_opts(args, 5, allow_by=True, withscores=False)
    st, src, rev = conn.st, args[2], opts["rev"]
    lo, hi = (args[4], args[3]) if rev and opts["by"] else (args[3], args[4])
    start, num = opts["limit"] if opts["limit"] else (None, None)
    with st.db.locked():
        if opts["by"] == "lex":
            items = st._zlex(src, lo, hi, start, num, reverse=rev, withscores=True)
        elif opts["by"] == "score":
            items = st.zrangebyscore(src, lo, hi, start, num, withscores=True, desc=rev)
        else:
            if opts["limit"] and opts["limit"][1] != -1:
                raise CommandError(
                    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                )
            items = st.zrange(src, arg_int(lo), arg_int(hi), desc=rev, withscores=True)
        return st.zrangestore(args[1], items)
