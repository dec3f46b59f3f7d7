"""``kvb serve`` checked byte for byte against a real redis-server 7.0 (second pass): stream IDs
read as Redis reads them, blocking timeouts, and what else the review found."""

from __future__ import annotations

import test_resp_differential
import test_resp_review13

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair

_assert_same_bytes = test_resp_review13._assert_same_bytes


def _b(text: str) -> bytes:
    return text.encode("latin-1")


# IDs Redis reads with string2ull (a canonical integer, else C strtoull: leading white space, one
# sign, "-" negating modulo 2**64) on the part before the first "-" and the part after it, in a
# buffer of 127 bytes read as a C string (up to a NUL byte)
_IDS = ["+1", " 1", "\t\n\v\f\r 7", " +8", "1-+1", "1- 1", "1--0", "1- -5", "1--18446744073709551615"]
_IDS += ["1--9223372036854775809", "1--9223372036854775808", "1--1", "+0", "+0-+0", "1\x00abc", "5\x00-junk"]
_IDS += ["0" * 128 + "9", "0" * 126 + "9", "1-" + "0" * 124 + "3", "1-" + "0" * 125 + "3"]
_IDS += [" -9", "+-1", "++1"]
_IDS += ["1-", "1- ", "1-2-*", "+1-*", " 1-*", "1\x00-*", "1-*\x00x", "\x001", "1 ", "1-1 "]


def test_stream_ids_are_read_as_redis_reads_them(pair, protocol):
    """kvb took only plain digits for either part of a stream ID: Redis also takes a ``+``, leading
    white space, ``-0`` and strtoull's negation, reads up to a NUL byte and refuses more than 127
    bytes; XADD's ``ms-*`` is a ``*`` after the first ``-`` only."""
    commands: list[list[bytes]] = []
    for xid in _IDS:
        commands += [[b"DEL", b"s"], [b"XADD", b"s", b"1-5", b"f", b"v"]]
        commands += [[b"XADD", b"s", _b(xid), b"f", b"v"]]
        commands += [[b"XRANGE", b"s", _b(xid), b"+"], [b"XRANGE", b"s", b"-", b"(" + _b(xid)]]
        commands += [[b"XDEL", b"s", _b(xid)], [b"XTRIM", b"s", b"MINID", _b(xid)], [b"XLEN", b"s"]]
        commands += [[b"XREAD", b"STREAMS", b"s", _b(xid)], [b"XSETID", b"s", _b(xid)]]
    # "*" too (a top ID in the future, so that both servers give the same one)
    commands += [[b"DEL", b"s"], [b"XADD", b"s", b"99999999999999-5", b"f", b"v"]]
    commands += [[b"XADD", b"s", b"*\0x", b"f", b"v"], [b"XADD", b"s", b"*\0", b"f", b"v"]]
    for bound in ["-\x00x", "+\x00x", "(-\x00x", "(" + "0" * 126 + "9", "(" + "0" * 127 + "9"]:
        commands += [[b"XRANGE", b"s", _b(bound), b"+"], [b"XREVRANGE", b"s", _b(bound), b"-"]]
    _assert_same_bytes(pair, protocol, commands)


def test_special_stream_ids_are_compared_as_c_strings(pair, protocol):
    """Redis compares ``$`` and ``>`` with strcmp and reads ``-``/``+`` in a C buffer, so
    ``$\\0x`` is ``$``; XREADGROUP's ``+`` is an invalid ID in Redis 7.0 (kvb answered 7.4's
    "meaningless" error)."""
    commands = [[b"XADD", b"s", b"1-1", b"a", b"1"], [b"XADD", b"s", b"2-1", b"a", b"1"]]
    commands += [[b"XGROUP", b"CREATE", b"s", b"g", b"0"], [b"XGROUP", b"CREATE", b"s", b"g2", b"$\0x"]]
    for xid in [b"-\0x", b"$\0x", b"+\0x", b"+", b"-"]:
        commands += [[b"XGROUP", b"SETID", b"s", b"g", xid], [b"XINFO", b"GROUPS", b"s"]]
    commands += [[b"XGROUP", b"SETID", b"s", b"g", b"0"]]
    for xid in [b"+", b"$", b"$\0x", b"+\0x", b">\0x"]:
        commands += [[b"XREADGROUP", b"GROUP", b"g", b"c", b"STREAMS", b"s", xid]]
    commands += [[b"XREAD", b"STREAMS", b"s", b">\0x"], [b"XREAD", b"STREAMS", b"s", b"$\0x"]]
    commands += [[b"XPENDING", b"s", b"g"], [b"XINFO", b"GROUPS", b"s"]]
    _assert_same_bytes(pair, protocol, commands)


def test_score_bounds_are_read_as_strtod_reads_them(pair, protocol):
    """Redis reads a score range bound with C's strtod: white space may come before the number
    (also after ``(``), and the text ends at a NUL byte; kvb refused `` 1``, ``(\\n1`` and ``1\\0x``."""
    commands = [[b"ZADD", b"z", b"1", b"a", b"2", b"b", b"3", b"c"]]
    bounds = [b" 1", b"\v2", b"(\n1", b" +inf", b" -inf", b"\t(1", b"1\0junk", b"(1\0", b" 1e500", b" 1 "]
    bounds += [b" ", b"( ", b" nan", b"\f-2.5", b"\r\n 3"]
    for bound in bounds:
        commands += [[b"ZCOUNT", b"z", bound, b"+inf"], [b"ZCOUNT", b"z", b"-inf", bound]]
        commands += [[b"ZRANGEBYSCORE", b"z", bound, b"+inf", b"WITHSCORES"]]
        commands += [[b"ZREVRANGEBYSCORE", b"z", bound, b"-inf"], [b"ZRANGE", b"z", bound, b"5", b"BYSCORE"]]
        commands += [[b"ZRANGESTORE", b"d", b"z", b"0", bound, b"BYSCORE"]]
    commands += [[b"ZREMRANGEBYSCORE", b"z", b" (1", b" 2"], [b"ZREMRANGEBYSCORE", b"z", b"(\t1", b" 2"]]
    commands += [[b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES"]]
    _assert_same_bytes(pair, protocol, commands)


def test_glob_ranges_compare_bytes_as_signed_chars(pair):
    """Redis's glob compares a ``[a-b]`` range as C ``char``s, signed: ``[\\x00-\\xff]`` is the
    range from -1 to 0 (``\\xff`` and ``\\x00``); kvb took every byte between them."""
    names = [b"\x00", b"\x01", b"A", b"a", b"\x7f", b"\x80", b"\xc3", b"\xfe", b"\xff"]
    patterns = [b"[\x00-\xff]", b"[\xff-\x00]", b"[a-\x80]", b"[^\x01-\xfe]", b"[\x80-\xff]", b"[A-a]"]
    patterns += [b"[\x7f-\x80]", b"x[\x00-\xff]"]
    for client in pair:
        client.mset({name: b"1" for name in names} | {b"x" + name: b"1" for name in names})
    for pattern in patterns:
        want, got = (sorted(client.keys(pattern)) for client in pair)
        assert got == want, (pattern, want, got)
        want, got = (sorted(client.scan(0, match=pattern, count=1000)[1]) for client in pair)
        assert got == want, (pattern, want, got)


def test_a_script_refused_block_names_the_command_as_written(pair, protocol):
    """``redis.pcall('xread', 'block', ...)``: Redis names the command as the script wrote it
    (``xread``, ``XrEaD``), kvb named it in capitals."""
    commands = [[b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"]]
    for name in (b"xread", b"XrEaD", b"XREAD"):
        script = b"return redis.pcall('%s', 'block', '0', 'streams', 's', '$')" % name
        commands += [[b"EVAL", script, b"0"], [b"EVAL", script.replace(b"'0'", b"'x'"), b"0"]]
    for name in (b"xreadgroup", b"XReadGroup"):
        script = b"return redis.pcall('%s', 'group', 'g', 'c', 'block', '0', 'streams', 's', '>')" % name
        commands += [[b"EVAL", script, b"0"]]
    _assert_same_bytes(pair, protocol, commands)


def test_xautoclaim_count_limit_is_redis_limit(pair, protocol):
    """Redis refuses an XAUTOCLAIM COUNT above LONG_MAX / 16 (an ID's size); kvb's limit was
    LONG_MAX / 10, so 576460752303423488 to 922337203685477580 claimed where Redis refuses."""
    commands = [[b"XADD", b"s", b"1-1", b"a", b"1"], [b"XGROUP", b"CREATE", b"s", b"g", b"0"]]
    for count in (b"576460752303423488", b"922337203685477580", b"922337203685477581", b"0", b"-1"):
        commands += [[b"XAUTOCLAIM", b"s", b"g", b"c", b"0", b"0", b"COUNT", count]]
        commands += [[b"XPENDING", b"s", b"g"]]
    _assert_same_bytes(pair, protocol, commands)


def test_xread_and_wait_timeouts_are_read_as_redis_reads_them(pair, protocol):
    """XREAD/XREADGROUP BLOCK and WAIT take whole milliseconds as Redis 7.0 reads them: "-0",
    "+0", "00", "0.5", "1e3" and "-0.0001" are no integers, "-1" is negative (a reply that does
    not wait: data is there, or no replica is asked for)."""
    commands = [[b"XADD", b"s", b"1-1", b"a", b"1"], [b"XGROUP", b"CREATE", b"s", b"g", b"0"]]
    for timeout in (b"-0", b"+0", b"00", b"0.5", b"1e3", b"-0.0001", b"-1", b"x", b"", b" 1"):
        commands += [[b"XREAD", b"BLOCK", timeout, b"STREAMS", b"s", b"0"]]
        commands += [[b"XREADGROUP", b"GROUP", b"g", b"c", b"BLOCK", timeout, b"STREAMS", b"s", b"0"]]
        commands += [[b"WAIT", b"0", timeout]]
    for timeout in (b"0", b"100", b"9223372036854775807", b"99999999999999999999"):
        commands += [[b"XREAD", b"BLOCK", timeout, b"STREAMS", b"s", b"0"]]
    _assert_same_bytes(pair, protocol, commands)
