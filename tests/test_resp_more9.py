"""More of ``kvb serve``'s Redis compatibility, checked byte for byte against a real redis-server
7.0 where it has the same behaviour: XREAD naming a stream twice, what scripts may call, script
shebangs, inline commands and malformed input, huge array headers, CLIENT LIST/KILL IDs, CONFIG
SET integers and COMMAND GETKEYS of shard channels."""

from __future__ import annotations

import shlex
import socket
import time

import pytest
import test_resp_differential
from helpers import process_cpu_seconds
from redis.exceptions import ResponseError
from resp_helpers import Raw, info_number
from test_resp_differential import make_client

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair


def _raw_replies(pair, protocol: int, lines: list[str]) -> list[tuple[str, bytes, bytes]]:
    """Each command of ``lines`` run on both servers over a bare connection speaking ``protocol``:
    (the command, redis-server's reply, kvb's reply), the replies as the bytes sent."""
    conns = [Raw(c.connection_pool.connection_kwargs["port"], protocol) for c in pair]
    try:
        out = []
        for line in lines:
            words = shlex.split(line)
            want, got = (conn.call(*words) for conn in conns)
            out.append((line, want, got))
        return out
    finally:
        for conn in conns:
            conn.close()


def _assert_same_bytes(pair, protocol: int, lines: list[str]) -> None:
    for line, want, got in _raw_replies(pair, protocol, lines):
        assert got == want, (line, want, got)


def test_xread_of_a_stream_named_twice_answers_it_twice(pair, protocol):
    """XREAD/XREADGROUP naming one stream twice answer it twice, as Redis does: over RESP3 the
    reply is a map with a repeated key, which kvb built as a dict, losing one of them. A script that
    asked for RESP3 gets the last one, as Redis's conversion to a Lua table keeps it."""
    script = "redis.setresp(3); return cjson.encode(redis.call('XREAD', 'STREAMS', 's', 's', '0', '1-0'))"
    _assert_same_bytes(
        pair,
        protocol,
        [
            "XADD s 1-0 a 1",
            "XADD s 2-0 b 2",
            "XREAD STREAMS s s 0 0",
            "XREAD COUNT 1 STREAMS s t s 0 0 1-0",
            "XGROUP CREATE s g 0",
            "XREADGROUP GROUP g c STREAMS s s > >",
            "XREADGROUP GROUP g c STREAMS s s 0 1-0",
            "XREADGROUP GROUP g c BLOCK 10 STREAMS s s 0 0",
            f'EVAL "{script}" 0',
            "EVAL \"redis.setresp(3); return redis.call('XREAD', 'STREAMS', 's', 's', '0', '1-0')\" 0",
            "EVAL \"return redis.call('XREAD', 'STREAMS', 's', 's', '0', '1-0')\" 0",
        ],
    )


# Calls Redis 7.0 refuses in scripts (its ``noscript`` commands, and XREAD/XREADGROUP's BLOCK, whose
# refusal comes before its timeout and the other arguments are read), and their neighbours it allows
# (the HELP of a container whose other subcommands are refused; BLMPOP and BZMPOP, which answer at once)
_SCRIPT_CALLS = [
    "'SAVE'",
    "'BGSAVE'",
    "'BLPOP', 'a', '0'",
    "'BRPOP', 'a', '0'",
    "'BRPOPLPUSH', 'a', 'b', '0'",
    "'BLMOVE', 'a', 'b', 'LEFT', 'LEFT', '0'",
    "'BZPOPMIN', 'z', '0'",
    "'BZPOPMAX', 'z', '0'",
    "'BLMPOP', '0', '1', 'a', 'LEFT'",
    "'BZMPOP', '0', '1', 'z', 'MIN'",
    "'CONFIG', 'GET', 'maxmemory'",
    "'CONFIG', 'SET', 'maxmemory', '0'",
    "'CONFIG', 'RESETSTAT'",
    "'CONFIG', 'REWRITE'",
    "'CONFIG', 'GET'",
    "'CLIENT', 'ID'",
    "'SCRIPT', 'FLUSH'",
    "'FUNCTION', 'LIST'",
    "'XREAD', 'BLOCK', '0', 'STREAMS', 's', '$'",
    "'XREAD', 'block', 'x', 'STREAMS', 's', '0'",
    "'XREAD', 'BLOCK', '-1', 'COUNT', 'x', 'STREAMS', 's'",
    "'XREAD', 'COUNT', 'x', 'BLOCK', '0', 'STREAMS', 's', '0'",
    "'XREAD', 'STREAMS', 's', 'BLOCK', '0'",
    "'XREADGROUP', 'BLOCK', '0', 'GROUP', 'g', 'c', 'STREAMS', 's', '>'",
    "'XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '0', 'STREAMS', 's'",
]


def test_scripts_may_not_call_what_redis_refuses_them(pair, protocol):
    """Scripts could call SAVE, BGSAVE, CONFIG and the blocking pops (which then answered at once),
    and give XREAD/XREADGROUP a BLOCK, all of which Redis 7.0 refuses in a script; they could not
    call CLIENT HELP, SCRIPT HELP or FUNCTION HELP, which Redis allows. Now each call is refused or
    run as redis-server does, with its error text, from redis.call and redis.pcall."""
    lines = [f'EVAL "return redis.{how}({call})" 0' for call in _SCRIPT_CALLS for how in ("call", "pcall")]
    _assert_same_bytes(pair, protocol, lines)
    for sub in ("CLIENT", "SCRIPT", "FUNCTION", "CONFIG"):  # kvb's HELP text is its own
        want, got = (c.execute_command("EVAL", f"return redis.pcall('{sub}', 'HELP')", "0") for c in pair)
        assert isinstance(want, list) and isinstance(got, list), (sub, got)
        assert got[0] == want[0], sub


def test_command_info_says_which_commands_scripts_may_not_call(pair):
    """COMMAND INFO flags ``noscript`` where Redis does: it did not on SAVE, BGSAVE, CONFIG's
    subcommands and the blocking pops, and did on CLIENT, SCRIPT and FUNCTION HELP."""
    names = ["save", "bgsave", "blpop", "brpop", "brpoplpush", "blmove", "bzpopmin", "bzpopmax"]
    names += ["blmpop", "bzmpop", "xread", "xreadgroup", "config", "client", "script", "function"]

    def noscript(client) -> dict[bytes, bool]:
        out = {}
        for info in client.execute_command("COMMAND", "INFO", *names):
            for entry in [info, *(info[9] or [])]:
                out[bytes(entry[0])] = b"noscript" in [bytes(f) for f in entry[2]]
        return out

    want, got = (noscript(c) for c in pair)
    for name in (b"client|setinfo", b"client|no-touch"):  # Redis 7.2's (noscript there too)
        assert got.pop(name) is True
    assert got == {name: flag for name, flag in want.items() if name in got}  # kvb has fewer
    assert len(got) > 40


# Scripts with a Redis 7 shebang first line, and what EVAL, EVAL_RO and SCRIPT LOAD make of them
_SHEBANG_SCRIPTS = [
    ("EVAL", "#!lua flags=no-writes\nreturn redis.pcall('set', 'a', '1')"),
    ("EVAL", "#!lua flags=no-writes\nreturn redis.call('set', 'a', '1')"),
    ("EVAL", "#!lua flags=no-writes\nreturn redis.pcall('publish', 'c', 'm')"),
    ("EVAL", "#!lua flags=no-writes\nreturn redis.pcall('get', 'a')"),
    ("EVAL", "#!lua\nreturn redis.pcall('set', 'a', '1')"),
    ("EVAL", "#!lua\nerror('x')"),
    ("EVAL", "#!lua flags=no-writes,allow-oom  flags=allow-stale,no-cluster,allow-cross-slot-keys\nreturn 1"),
    ("EVAL", "#!lua flags=\nreturn 2"),
    ("EVAL", "#!lua flags=no-writes,no-writes\r\nreturn 3"),
    ("EVAL", "#!lua 'flags=no-writes'\nreturn redis.pcall('set', 'a', '1')"),
    ("EVAL", "#!lua flags=no-writes,\nreturn 1"),
    ("EVAL", "#!lua flags=NO-WRITES\nreturn 1"),
    ("EVAL", "#!lua FLAGS=no-writes\nreturn 1"),
    ("EVAL", "#!lua name=x\nreturn 1"),
    ("EVAL", "#!LUA\nreturn 1"),
    ("EVAL", "#! lua\nreturn 1"),
    ("EVAL", "#!\nreturn 1"),
    ("EVAL", "#!lua"),
    ("EVAL", '#!lua "\nreturn 1'),
    ("EVAL", "#!lua flags=\"no-writes\"\nreturn redis.pcall('set', 'a', '2')"),
    ("EVAL_RO", "#!lua\nreturn 1"),
    ("EVAL_RO", "#!lua flags=no-writes\nreturn 1"),
    ("EVAL_RO", "return 1"),
    ("SCRIPT", "#!lua flags=bad\nreturn 1"),
    ("SCRIPT", "#!lua\nreturn 1"),
]


def test_eval_reads_a_shebang_as_redis(pair, protocol):
    """A script starting ``#!lua flags=...`` (Redis 7) did not compile ("unexpected symbol near
    '#'"): the shebang is now read as Redis 7.0 reads it: ``no-writes`` makes the script read-only,
    EVAL_RO refuses a shebang script without it, the other flags are accepted, and a bad shebang
    gets Redis's error; line numbers count the shebang's line."""
    conns = [Raw(c.connection_pool.connection_kwargs["port"], protocol) for c in pair]
    try:
        for command, script in _SHEBANG_SCRIPTS:
            words = ["SCRIPT", "LOAD", script] if command == "SCRIPT" else [command, script, "0"]
            want, got = (conn.call(*words) for conn in conns)
            assert got == want, (command, script)
            if command == "SCRIPT" and want.startswith(b"$"):  # then run by SHA1, read-only
                sha = want.split(b"\r\n")[1]
                want, got = (conn.call("EVALSHA_RO", sha, "0") for conn in conns)
                assert got == want, script
        assert conns[1].call("GET", "a") == conns[0].call("GET", "a") == b"$1\r\n1\r\n"
    finally:
        for conn in conns:
            conn.close()


# Inline commands (what telnet sends) with quotes and escapes; each is followed by GET k
_INLINE = [
    b'SET k a"b c"',
    b"SET k 'a\\nb'",
    b'SET k "\\x41\\b\\a\\xg1\\x4"',
    b"SET k 'it\\'s'",
    b'SET k "a"b',
    b'SET k "\\xZZ"',
    b'SET k "a\\"b"',
    b"SET k x'a b'y",
    b"SET k x'a b' y",
    b'SET k a""b',
    b'SET k ""',
    b"SET k a\x0bb",
    b"SET \x0b k \x0cv",
    b'SET k "\\"\'"',
    b'SET k "a"\x0b',
    b'SET k "a\r',
    b"SET k 'a\\",
]


def test_inline_commands_are_split_as_redis_splits_them(pair):
    """An inline command's quotes and escapes are read as Redis reads them: a quote inside a word
    opens a quoted part (``a"b c"`` is ``ab c``), ``"\\x41"`` is ``A``, ``\\b`` and ``\\a`` are
    escapes, and ``'...'`` escapes only ``\\'`` (kvb stored ``x41``, ``b``, ``a`` and a line feed)."""
    for line in _INLINE:
        replies = []
        for client in pair:
            client.execute_command("DEL", "k")
            with socket.create_connection(
                ("127.0.0.1", client.connection_pool.connection_kwargs["port"])
            ) as sock:
                sock.settimeout(10)
                reader = sock.makefile("rb")
                sock.sendall(line + b"\r\n")
                replies.append(reader.readline())
                if not replies[-1].startswith(b"-"):
                    sock.sendall(b"GET k\r\n")
                    replies += [reader.readline(), reader.readline()]
        assert replies[len(replies) // 2 :] == replies[: len(replies) // 2], line


def _until_closed(port: int, data: bytes) -> bytes:
    """Everything the server sends back to ``data`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_commands_before_malformed_input_still_run(pair):
    """A read holding whole commands and then malformed input (a bad bulk length, unbalanced
    quotes) got only the protocol error: the commands before it were dropped, unrun. As in Redis,
    they now run and are answered, then the error is sent and the connection closed."""
    head = b"SET z 1\r\n*3\r\n$3\r\nSET\r\n$1\r\ny\r\n$1\r\n2\r\nPING\r\n"
    # Redis skips the two bytes after a bulk string unread (here "xx"); kvb refuses them
    cases = [b"*1\r\n$x\r\n", b'SET a "b\r\n', b"*1\r\n$4\r\nPINGxx\r\n"]
    for bad in cases:
        replies = []
        for client in pair if bad != cases[-1] else pair[1:]:
            client.execute_command("DEL", "y", "z")
            replies.append(_until_closed(client.connection_pool.connection_kwargs["port"], head + bad))
            assert client.execute_command("MGET", "y", "z") == [b"2", b"1"], bad
        assert replies[-1].startswith(b"+OK\r\n+OK\r\n+PONG\r\n-ERR Protocol error: "), bad
        assert replies[-1] == replies[0], bad


def test_a_huge_array_header_does_not_hold_the_server(servers):
    """``*2147483647`` (an allowed count, as in Redis, whose elements would follow) made hiredis build
    a list that long at once: 14 bytes held every client of the server for seconds, and nested
    ``*99999`` headers for half a second a read. Such reads now take the Python parser."""
    ours = servers[2][1]
    port = ours.connection_pool.connection_kwargs["port"]
    server_cpu = process_cpu_seconds(info_number(ours, "server", "process_id"))
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    b = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        cpu_before = server_cpu()
        a.sendall(b"*2147483647\r\n")
        b.sendall(b"*1\r\n" + b"*99999\r\n" * 7000)
        assert b.recv(100) == b"-ERR Protocol error: expected '$', got '*'\r\n"
        assert ours.ping()
        # Held, the server spent seconds of CPU building the lists (a busy machine makes that
        # only longer); reading the two as they arrive takes it milliseconds.
        assert server_cpu() - cpu_before < 0.3
    finally:
        a.close()
        b.close()


def test_the_documented_argument_count_limit_is_redis(pair):
    """docs/redis.md said a request may have up to 1,048,576 arguments; kvb, like Redis 7, takes up
    to 2**31 - 1 (it waits for the rest) and refuses more."""
    for client in pair:
        port = client.connection_pool.connection_kwargs["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"*1048577\r\n*1\r\n")  # the second header is an argument's place: an error
            assert sock.recv(100) == b"-ERR Protocol error: expected '$', got '*'\r\n"
        assert _until_closed(port, b"*2147483648\r\n") == b"-ERR Protocol error: invalid multibulk length\r\n"


def _listed(client, *ids) -> list[int]:
    """The IDs of the clients CLIENT LIST ID ``ids`` lists, in its order."""
    text = client.execute_command("CLIENT", "LIST", "ID", *ids)
    return [int(line.split(b" ")[0][3:]) for line in bytes(text).splitlines()]


def test_client_list_and_kill_read_ids_as_redis(pair):
    """CLIENT LIST ID listed the clients in ID order, once each, and CLIENT LIST/KILL ID read an ID
    as Python does (``+5``, `` 5``, ``05``, ``1_0`` were IDs); as in Redis, the clients now come in
    the order given (twice if given twice), and such IDs are refused with Redis's errors."""
    for client in pair:
        other = make_client(client.connection_pool.connection_kwargs["port"], 2)
        try:
            me, them = client.execute_command("CLIENT", "ID"), other.execute_command("CLIENT", "ID")
            assert _listed(client, them, me) == [them, me]
            assert _listed(client, me, them) == [me, them]
            assert _listed(client, me, 999999, me) == [me, me]
            assert _listed(client, 0, -1, "-9223372036854775808") == []
            for bad in (f"+{me}", f" {me}", f"{me} ", f"0{me}", "1_0", "9223372036854775808", "x"):
                with pytest.raises(ResponseError, match=r"(ERR )?Invalid client ID$"):
                    _listed(client, me, bad)
                with pytest.raises(ResponseError, match=r"(ERR )?client-id should be greater than 0$"):
                    client.execute_command("CLIENT", "KILL", "ID", bad)
            assert other.execute_command("PING") in (b"PONG", "PONG")
        finally:
            other.close()


def test_config_set_reads_integers_as_redis(pair, protocol):
    """CONFIG SET read an integer setting with Python's int(): ``timeout -0`` was accepted and
    ``1_0``, ``+10`` or ``010`` got "cannot change it"; as in Redis, they are not integers now
    (``argument couldn't be parsed into an integer``), while ``proto-max-bulk-len``, a memory
    value, takes leading zeros and units and checks its range after them (``1k`` is too small)."""
    settings = [("timeout", v) for v in ("1_0", "+10", "010", "' 10'", "0x10", "-0", "-1", "2147483648", "0")]
    settings += [("maxclients", v) for v in ("1_000", "+100", "0", "4294967296", "99999999999999999999")]
    settings += [("port", v) for v in ("1_0", "70000")]
    settings += [("proto-max-bulk-len", v) for v in ("1000", "0100", "1k", "1_0", "-1", "9999999999gb")]
    _assert_same_bytes(pair, protocol, [f"CONFIG SET {name} {value}" for name, value in settings])


def test_command_getkeys_skips_channels(pair, protocol):
    """COMMAND GETKEYS[ANDFLAGS] of SPUBLISH, SSUBSCRIBE and SUNSUBSCRIBE answered their shard
    channels as keys (flagged not_key); as Redis, those commands have no key arguments."""
    calls = ["SPUBLISH c m", "SSUBSCRIBE a b", "SUNSUBSCRIBE a", "PUBLISH c m", "SET a b", "SORT l STORE d"]
    lines = [f"COMMAND {sub} {call}" for call in calls for sub in ("GETKEYS", "GETKEYSANDFLAGS")]
    _assert_same_bytes(pair, protocol, lines)


def test_a_woken_xread_answers_every_stream_with_new_entries(servers):
    """As docs/redis.md now says: a blocked XREAD woken by a transaction that added to both its
    streams answers both (Redis 7.2's way; 7.0 answers only the first stream it signalled)."""
    port = servers[2][1].connection_pool.connection_kwargs["port"]
    waiter, writer = Raw(port, 2), Raw(port, 2)
    try:
        writer.call("DEL", "s", "t")
        waiter.sock.sendall(b"*8\r\n$5\r\nXREAD\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n")
        waiter.sock.sendall(b"$1\r\ns\r\n$1\r\nt\r\n$1\r\n$\r\n$1\r\n$\r\n")
        deadline = time.monotonic() + 5
        while b"blocked_clients:1" not in writer.call("INFO", "clients"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for words in (["MULTI"], ["XADD", "t", "1-0", "f", "v"], ["XADD", "s", "1-0", "f", "w"], ["EXEC"]):
            writer.call(*words)
        assert waiter._read() == (
            b"*2\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n"
            b"*2\r\n$1\r\nt\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
        )
    finally:
        waiter.close()
        writer.close()


def _lib(name: str, *functions: tuple[str, int]) -> str:
    body = "".join(f"\nredis.register_function('{f}', function() return {n} end)" for f, n in functions)
    return f"#!lua name={name}{body}"


def test_fcall_finds_a_function_whatever_the_case_of_its_name(pair, protocol):
    """As in Redis 7.0, function names are looked up ignoring ASCII case: FCALL myfunc calls
    MyFunc, a library may not bring a function whose name differs only in case from another
    library's (FUNCTION LOAD and RESTORE, naming the new one); kvb said "Function not found" and
    loaded both. (Of two such names in one library, which one FCALL finds in Redis depends on its
    hash table: not compared.)"""
    calls = [
        ["FUNCTION", "FLUSH"],
        ["FUNCTION", "LOAD", _lib("lib1", ("MyFunc", 1))],
        ["FCALL", "myfunc", "0"],
        ["FCALL", "MYFUNC", "0"],
        ["FCALL_RO", "myfunc", "0"],
        ["FUNCTION", "LOAD", _lib("lib2", ("myfunc", 2))],
        ["FUNCTION", "LOAD", "REPLACE", _lib("lib1", ("MYFUNC", 3))],
        ["FCALL", "MyFunc", "0"],
        ["FUNCTION", "LOAD", _lib("lib3", ("a", 4), ("A", 5))],
        ["FUNCTION", "STATS"],
        ["FUNCTION", "FLUSH"],
        ["FUNCTION", "LOAD", _lib("x", ("Fa", 6))],
        ["FUNCTION", "LOAD", _lib("z", ("zz", 7))],
    ]
    conns = [Raw(c.connection_pool.connection_kwargs["port"], protocol) for c in pair]
    try:
        for words in calls:
            want, got = (conn.call(*words) for conn in conns)
            assert got == want, words
        dump = conns[0].call("FUNCTION", "DUMP").split(b"\r\n", 1)[1][:-2]
        for words in (
            ["FUNCTION", "FLUSH"],
            ["FUNCTION", "LOAD", _lib("y", ("fA", 8))],
            ["FUNCTION", "RESTORE", dump, "APPEND"],
            ["FUNCTION", "RESTORE", dump, "REPLACE"],
            ["FCALL", "FA", "0"],
            ["FUNCTION", "RESTORE", dump, "FLUSH"],
            ["FCALL", "FA", "0"],
            ["FUNCTION", "FLUSH"],
        ):
            want, got = (conn.call(*words) for conn in conns)
            assert got == want, words
    finally:
        for conn in conns:
            conn.close()
