"""``kvb serve`` against redis-server 7.0, a second adversarial pass over the families earlier
reviews covered least: the ``redis`` library of Lua scripts (``REDIS_VERSION``, ``redis.log``'s
checks, the replication and debugger functions old scripts still call), ``SCRIPT KILL``...

Each test runs the same commands on a ``kvb serve`` and on a throw-away redis-server and compares
the replies byte for byte where Redis is deterministic (and kvb does not differ on purpose).
"""

from __future__ import annotations

import pytest
from resp_helpers import Raw

from kv_backend.structures import CommandError, Structures


@pytest.fixture
def both(ports):
    """A raw RESP2 connection to kvb and one to redis-server, both stores emptied first."""
    redis_port, kvb = ports  # the suite's module-scoped pair (conftest.py)
    conns = [Raw(kvb, 2), Raw(redis_port, 2)]
    for conn in conns:
        assert conn.call("FLUSHALL") == b"+OK\r\n"
    yield conns
    for conn in conns:
        conn.close()


def same(conns: list[Raw], *args: str) -> bytes:
    """Run one command on both servers; assert the replies are the same bytes and return kvb's."""
    ours, theirs = (conn.call(*args) for conn in conns)
    assert ours == theirs, (args, ours, theirs)
    return ours


# ---------------------------------------------------------------- the redis library of scripts

# Scripts written for Redis 3.2 to 6 call redis.replicate_commands() (needed there before a
# write after a random command) and redis.set_repl(); Redis 7.0 keeps them (and the debugger's
# redis.breakpoint/redis.debug, which do nothing outside a debugging session) so those scripts run.
LIBRARY_CALLS = [
    "return redis.replicate_commands()",
    "return redis.replicate_commands(1)",
    "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}",
    "return redis.set_repl(redis.REPL_ALL)",
    "redis.set_repl(redis.REPL_NONE); return redis.call('set', 'k', 'v')",
    "return redis.set_repl('3')",
    "return redis.set_repl('x')",
    "return redis.set_repl(3.5)",
    "return redis.set_repl()",
    "return redis.set_repl(1, 2)",
    "return redis.set_repl(-1)",
    "return redis.set_repl(4)",
    "local ok, e = pcall(redis.set_repl, 9); return e",
    "return redis.breakpoint()",
    "return redis.breakpoint(1)",
    "return redis.debug('x', 1)",
    "return redis.debug()",
    "return redis.log(redis.LOG_WARNING, 'x')",
    "return redis.log('1', 'x', 2)",
    "return redis.log(3.5, {})",
    "return redis.log()",
    "return redis.log(1)",
    "return redis.log('x', 'y')",
    "return redis.log(-1, 'y')",
    "return redis.log(4, 'y')",
    "return type(redis.REDIS_VERSION_NUM)",
    "return type(redis.REDIS_VERSION)",
]


@pytest.mark.parametrize("script", LIBRARY_CALLS)
def test_script_redis_library_functions_answer_as_redis(both, script):
    same(both, "EVAL", script, "0")


def test_script_sees_the_servers_version(both):
    kvb = both[0]
    version = kvb.call("EVAL", "return redis.REDIS_VERSION", "0")
    number = kvb.call("EVAL", "return redis.REDIS_VERSION_NUM", "0")
    info = kvb.call("INFO", "server")
    assert b"redis_version:7.2.0\r\n" in info
    assert (version, number) == (b"$5\r\n7.2.0\r\n", b":%d\r\n" % 0x070200)
    # and so do functions when they run, not only while their library loads
    library = "#!lua name=lib\nredis.register_function('v', function() return redis.REDIS_VERSION end)"
    assert kvb.call("FUNCTION", "LOAD", "REPLACE", library) == b"$3\r\nlib\r\n"
    assert kvb.call("FCALL", "v", "0") == b"$5\r\n7.2.0\r\n"
    assert kvb.call("FUNCTION", "DELETE", "lib") == b"+OK\r\n"


def test_script_kill_without_a_running_script_is_notbusy(both):
    assert same(both, "SCRIPT", "KILL") == b"-NOTBUSY No scripts in execution right now.\r\n"
    same(both, "SCRIPT", "KILL", "x")
    same(both, "EVAL", "return redis.call('script', 'kill')", "0")


# redis.sha1hex hashes what lua_tolstring makes of its argument: a number's Lua text ("1", "1.5",
# "1e+20"), nothing for a value that is not a string or number; any other count of arguments is
# an error. kvb hashed the number's bytes(n) (n zero bytes) and failed on a float, nil or boolean
# with a Python message.
SHA1HEX_CALLS = [
    "return redis.sha1hex('')",
    "return redis.sha1hex('abc')",
    "return redis.sha1hex(1)",
    "return redis.sha1hex(1.5)",
    "return redis.sha1hex(1e20)",
    "return redis.sha1hex(-0.25)",
    "return redis.sha1hex(nil)",
    "return redis.sha1hex(true)",
    "return redis.sha1hex({})",
    "return redis.sha1hex()",
    "return redis.sha1hex('a', 'b')",
    "local ok, e = pcall(redis.sha1hex); return e",
]


@pytest.mark.parametrize("script", SHA1HEX_CALLS)
def test_script_sha1hex_hashes_what_redis_hashes(both, script):
    same(both, "EVAL", script, "0")


# A number given to redis.call is the text Redis makes of it: an integer's digits, else the
# double's text ("1e+20", "inf", "-nan" for 0/0, whose sign bit is set). kvb wrote 1e20 as its 21
# integer digits and failed on an infinity or NaN with Python's 'cannot convert float infinity to
# integer'.
@pytest.mark.parametrize("number", ["1/0", "-1/0", "0/0", "-(0/0)", "1e20", "-1e21", "1.5", "3", "1e16"])
def test_script_number_arguments_are_redis_text(both, number):
    same(both, "EVAL", f"return redis.call('set', 'f', {number})", "0")
    same(both, "GET", "f")


def test_script_number_argument_past_64_bits_is_a_double_in_shortest_form(both):
    kvb = both[0]
    assert kvb.call("EVAL", "return redis.call('set', 'f', 2^63)", "0") == b"+OK\r\n"
    # Redis 7.0 writes 9.2233720368547758e+18; kvb writes doubles in the shortest form (docs/redis.md)
    assert kvb.call("GET", "f") == b"$21\r\n9.223372036854776e+18\r\n"


# redis.setresp's errors named no script line when the script tail-called it ("on =(tail
# call):-1."): as Redis's C function, it keeps the caller's frame.
@pytest.mark.parametrize(
    "script",
    ["return redis.setresp()", "return redis.setresp(5)", "return redis.setresp(3)", "redis.setresp(4)"],
)
def test_script_setresp_errors_name_the_line_also_in_a_tail_call(both, script):
    same(both, "EVAL", script, "0")


# Redis answers NOSCRIPT at once for a SHA1 that is not 40 characters long, before it reads the
# key count; kvb checked the count first ('value is not an integer', 'can't be negative'...).
@pytest.mark.parametrize("command", ["EVALSHA", "EVALSHA_RO"])
@pytest.mark.parametrize(
    "args", [["abc", "a"], ["abc", "-1"], ["abc", "5", "k"], ["abc", "0"], ["0" * 40, "x"], ["0" * 40, "0"]]
)
def test_evalsha_of_a_sha_of_the_wrong_length_is_noscript_first(both, command, args):
    same(both, command, *args)


# redis.acl_check_cmd (Redis 7.0) says whether the user may run a command: kvb has only the
# default user, who may run every command it has, so it is true for a known command (and
# subcommand), Redis's error for an unknown one or for arguments that are not strings or numbers.
ACL_CHECK_CALLS = [
    "return redis.acl_check_cmd('set', 'a', 'b')",
    "return redis.acl_check_cmd('get')",
    "return redis.acl_check_cmd('GET', 'a', 'b', 'c')",
    "return redis.acl_check_cmd('config')",
    "return redis.acl_check_cmd('CONFIG', 'GET', 'x')",
    "return redis.acl_check_cmd('get', 1.5)",
    "return redis.acl_check_cmd('nosuch')",
    "return redis.acl_check_cmd('config', 'nosub')",
    "return redis.acl_check_cmd(1)",
    "return redis.acl_check_cmd()",
    "return redis.acl_check_cmd(true)",
    "return redis.acl_check_cmd('get', {})",
    "local ok, e = pcall(redis.acl_check_cmd); return e",
]


@pytest.mark.parametrize("script", ACL_CHECK_CALLS)
def test_script_acl_check_cmd_answers_as_redis_for_the_default_user(both, script):
    same(both, "EVAL", script, "0")


# Redis's glob matching: no pattern but the empty one matches the empty string (KEYS and the SCAN
# family take a lone "*" as "everything", the empty name too; PSUBSCRIBE and PUBSUB CHANNELS do
# not), and in a class "x-" before the last character is a range whatever that character is, "]"
# too ("[a-]" is the range "]" to "a", left open). kvb matched "" with "**" and "*" everywhere and
# read "[a-]" as "a" or "-".
GLOB_NAMES = ["", "-", "]", "^", "_", "a", "b", "x", "a]"]


@pytest.mark.parametrize("pattern", ["*", "**", "*?", "?*", "", "[a-]", "[a-]x", "[^a-]", "[-a]", "x*"])
def test_keys_and_scans_match_globs_as_redis(both, pattern):
    for conn in both:
        for name in GLOB_NAMES:
            assert conn.call("SET", name, "v") == b"+OK\r\n"
        assert conn.call("SADD", "s", *GLOB_NAMES) == b":%d\r\n" % len(GLOB_NAMES)
    assert sorted(both[0].call("KEYS", pattern).split(b"\r\n")) == sorted(
        both[1].call("KEYS", pattern).split(b"\r\n")
    )
    theirs = sorted(both[1].call("SSCAN", "s", "0", "MATCH", pattern, "COUNT", "100").split(b"\r\n"))
    assert sorted(both[0].call("SSCAN", "s", "0", "MATCH", pattern, "COUNT", "100").split(b"\r\n")) == theirs


@pytest.mark.parametrize("pattern", ["*", "**", "", "[a-]", "?"])
def test_patterns_match_channels_as_redis(both, ports, pattern):
    replies = []
    redis_port, kvb = ports
    for port, conn in zip((kvb, redis_port), both, strict=True):
        sub, named = Raw(port, 2), Raw(port, 2)
        sub.call("PSUBSCRIBE", pattern)
        for name in GLOB_NAMES:
            named.call("SUBSCRIBE", name)
        listed = sorted(conn.call("PUBSUB", "CHANNELS", pattern).split(b"\r\n"))
        replies.append([listed] + [conn.call("PUBLISH", name, "m") for name in GLOB_NAMES])
        sub.close()
        named.close()
    assert replies[0] == replies[1]


# FUNCTION FLUSH and FUNCTION RESTORE given too many arguments named the subcommand in capitals;
# Redis names it as the client wrote it, as kvb does for every other subcommand.
@pytest.mark.parametrize("args", [["FlUsH", "a", "b"], ["flush", "a", "b"], ["ReStOrE", "a", "b", "c"]])
def test_function_subcommand_errors_name_it_as_written(both, args):
    same(both, "FUNCTION", *args)


# A script's {verbatim_string=...} with a format shorter than three bytes (or with a zero byte)
# reached RESP3 clients padded with zero bytes; Redis reads the format up to a zero byte and pads
# it with spaces.
@pytest.mark.parametrize("fmt", ["tx", "", "a\\0b", "text", "txt"])
def test_script_verbatim_format_is_padded_as_redis(ports, fmt):
    script = f"return {{verbatim_string={{format='{fmt}', string='hi'}}}}"
    replies = []
    redis_port, kvb = ports
    for port in (kvb, redis_port):
        conn = Raw(port, 3)
        replies.append(conn.call("EVAL", script, "0"))
        conn.close()
    assert replies[0] == replies[1]


# A script's status and error replies are Redis's C strings: cut at a zero byte, other bytes sent
# as they are. kvb sent the zero byte and what followed, and made bytes that are not UTF-8 U+FFFD
# ('\xff' became '\xef\xbf\xbd').
REPLY_TEXT_SCRIPTS = [
    "return {ok='a\\0b'}",
    "return {err='a\\0b'}",
    "return redis.status_reply('a\\0b')",
    "return redis.error_reply('E a\\0b')",
    "return {ok='\\255a'}",
    "return {err='\\255a'}",
    "return redis.error_reply('MY \\255')",
    "error('x\\0y')",
    "error({err='x\\0y'})",
    "error('\\255')",
    "error({err='E \\255'})",
    "return {ok='caf\\195\\169'}",
]


@pytest.mark.parametrize("script", REPLY_TEXT_SCRIPTS)
def test_script_status_and_error_texts_are_c_strings_as_redis(both, script):
    same(both, "EVAL", script, "0")


# XREAD given ">" (XREADGROUP's "new entries" ID) answered 'Invalid stream ID'; Redis says what
# ">" is for, after checking the key's type, as for any ID.
@pytest.mark.parametrize(
    "args",
    [
        ["s", ">"],
        ["s", "nx", "0", ">"],
        ["nx", "s", ">", "0"],
        ["str", ">"],
        ["s", "x"],
        ["s", "s", ">", "x"],
    ],
)
def test_xread_of_the_new_entries_id_answers_as_redis(both, args):
    for conn in both:
        conn.call("XADD", "s", "1-1", "f", "v")
        conn.call("SET", "str", "v")
    same(both, "XREAD", "STREAMS", *args)


def test_structures_xread_of_the_new_entries_id_is_a_command_error(tmp_path):
    st = Structures(str(tmp_path / "db"))
    try:
        with pytest.raises(CommandError, match="The > ID can be specified only when calling XREADGROUP"):
            st.xread({"s": ">"})
    finally:
        st.close()


# Once a stream's last ID is the last possible one, Redis refuses every XADD with 'The stream has
# exhausted the last possible ID' (but 0-0, refused first); kvb said so only for "*" and answered
# 'equal or smaller than the target stream top item' for an ID or "ms-*".
@pytest.mark.parametrize("new_id", ["5-5", "0-0", "18446744073709551615-5", "5-*", "0-*", "*"])
def test_xadd_to_an_exhausted_stream_answers_as_redis(both, new_id):
    same(both, "XADD", "m", "18446744073709551615-18446744073709551615", "a", "b")
    same(both, "XADD", "m", new_id, "a", "b")
    same(both, "XADD", "m", "MAXLEN", "0", new_id, "a", "b")
    same(both, "XLEN", "m")
