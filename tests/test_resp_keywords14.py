"""Option keywords and special tokens read as Redis reads them, checked byte for byte against a real
redis-server 7.0: Redis compares them with C-string functions (``strcasecmp``, ``strcmp``, a test of
one character and the NUL after it), so an argument ends at its first NUL byte there (``NX\\0junk``
is ``NX``), while command and subcommand names are looked up whole; its errors quote an unknown
command's or subcommand's name as a C string cut to 128 bytes."""

from __future__ import annotations

import pytest
import test_resp_differential
import test_resp_review13
from resp_helpers import Raw

from kv_backend.structures import CommandError, Structures
from kv_backend.structures.parsing import keyword

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair

_assert_same_bytes = test_resp_review13._assert_same_bytes
_port = test_resp_review13._port

# Each case (one command a line, words between "|") is run after FLUSHALL; a word written "@WORD"
# is a keyword, sent as WORD itself, as "WORD\0junk" and as "word\0" (lower case, nothing after).
_CASES = [
    """SET|a|1|@NX
    SET|a|2|@XX
    SET|a|3|@GET
    SET|a|4|@EX|100
    TTL|a
    SET|a|5|@PX|100000
    SET|a|5|@KEEPTTL
    TTL|a
    SET|a|6|@EXAT|99999999999
    SET|a|6|@PXAT|99999999999000
    TTL|a""",
    """SET|a|1
    GETEX|a|@EX|100
    GETEX|a|@PERSIST
    TTL|a
    GETEX|a|@PX|100000
    GETEX|a|@EXAT|99999999999
    TTL|a
    EXPIRE|a|100|@NX
    EXPIRE|a|200|@XX
    EXPIRE|a|50|@GT
    EXPIRE|a|50|@LT
    PEXPIREAT|a|99999999999|@LT
    TTL|a""",
    """ZADD|z|@NX|1|a
    ZADD|z|@XX|@CH|2|a
    ZADD|z|@GT|@CH|1|a
    ZADD|z|@INCR|5|a
    ZADD|z|1|b|3|c
    ZRANGE|z|1|3|@BYSCORE|@LIMIT|0|2
    ZRANGE|z|3|1|@BYSCORE|@REV|@WITHSCORES
    ZRANGE|z|[a|[c|@BYLEX
    ZRANGEBYSCORE|z|-inf|+inf|@WITHSCORES|@LIMIT|1|1
    ZRANGESTORE|d|z|0|-1|@REV
    ZRANGE|d|0|-1""",
    """ZADD|z|1|a|2|b
    ZADD|y|3|a
    ZINTERCARD|2|z|y|@LIMIT|1
    ZUNIONSTORE|d|2|z|y|@WEIGHTS|1|2|@AGGREGATE|@MAX
    ZRANGE|d|0|-1|@WITHSCORES
    ZINTER|2|z|y|@AGGREGATE|@MIN|@WITHSCORES
    ZMPOP|1|z|@MIN|@COUNT|2
    ZRANDMEMBER|y|1|@WITHSCORES""",
    """SADD|s|a|b|c
    SADD|t|a|b
    SINTERCARD|2|s|t|@LIMIT|1
    SSCAN|t|0|@MATCH|a|@COUNT|10
    HSET|h|f|v
    HRANDFIELD|h|1|@WITHVALUES
    SCAN|0|@TYPE|@hash""",
    """RPUSH|l|a|b|a|c|a
    LPOS|l|a|@RANK|2
    LPOS|l|a|@COUNT|0
    LPOS|l|a|@MAXLEN|2|@COUNT|0
    LINSERT|l|@BEFORE|b|x
    LMOVE|l|m|@LEFT|@RIGHT
    LMPOP|1|l|@RIGHT|@COUNT|2
    LRANGE|l|0|-1""",
    """RPUSH|l|3|1|2
    HSET|w_1|f|9
    SET|w_2|8
    SORT|l|@DESC
    SORT|l|@BY|w_*|@LIMIT|0|2|@GET|#|@ASC
    SORT|l|@ALPHA|@STORE|d
    SORT|l|GET|#\x00x
    SORT|l|BY|w_\x00*
    SORT_RO|l|@DESC""",
    """SET|a|1
    COPY|a|b|@DB|0
    COPY|a|b|@REPLACE
    GET|b
    FLUSHALL|@SYNC
    EXISTS|a""",
    """XADD|s|@NOMKSTREAM|1-1|f|v
    XADD|s|1-1|f|v
    XADD|s|@MAXLEN|@=|1|2-1|f|v
    XADD|s|@MINID|@~|2|3-1|f|v
    XTRIM|s|@MAXLEN|1
    XRANGE|s|-|+|@COUNT|1
    XREAD|@COUNT|1|@STREAMS|s|0
    XGROUP|CREATE|s|g|0|@MKSTREAM
    XREADGROUP|@GROUP|g|c|@COUNT|1|@STREAMS|s|>
    XINFO|STREAM|s""",
    """GEOADD|g|@NX|13.361389|38.115556|Palermo
    GEOADD|g|15.087269|37.502669|C
    GEODIST|g|Palermo|C|@km
    GEORADIUS|g|15|37|200|@km|@ASC|@WITHDIST
    GEOSEARCH|g|@FROMMEMBER|C|@BYBOX|400|400|@mi|@DESC|@COUNT|1|@ANY""",
    """SET|b|foobar
    BITCOUNT|b|1|1|@BIT
    BITPOS|b|1|0|-1|@BYTE
    BITOP|@AND|d|b|b
    BITOP|@NOT|e|b
    GET|e
    BITFIELD|b|@GET|u8\x00x|0|@SET|i8|8|1|@INCRBY|u4|0|1
    BITFIELD|b|@OVERFLOW|@SAT|@INCRBY|u8|0|300
    BITFIELD_RO|b|@GET|u8|0""",
    """SET|a|ohmytext
    SET|b|mynewtext
    LCS|a|b|@LEN
    LCS|a|b|@IDX|@MINMATCHLEN|2|@WITHMATCHLEN
    MEMORY|USAGE|nokey|@SAMPLES|0""",
    """CLIENT|TRACKING|@ON|@BCAST|@PREFIX|a|@NOLOOP
    CLIENT|TRACKING|@OFF
    CLIENT|TRACKING|@ON|@OPTIN
    CLIENT|CACHING|@YES
    CLIENT|TRACKING|OFF
    CLIENT|NO-EVICT|@ON
    CLIENT|KILL|@ID|999999
    CLIENT|LIST|@TYPE|@pubsub
    CLIENT|KILL|@TYPE|@pubsub|@SKIPME|@yes
    CLIENT|UNBLOCK|999999|@ERROR""",
    """CONFIG|SET|appendonly|@no
    CONFIG|SET|maxmemory-policy|@noeviction
    SCRIPT|FLUSH|@ASYNC
    COMMAND|GETKEYS|SORT|a|@STORE|b
    COMMAND|GETKEYS|XREAD|@STREAMS|a|0
    COMMAND|GETKEYSANDFLAGS|SET|a|1|@GET""",
    """FUNCTION|LOAD|#!lua name=lib\\nredis.register_function('f', function() return 1 end)
    FUNCTION|LOAD|@REPLACE|#!lua name=lib\\nredis.register_function('f', function() return 2 end)
    FCALL|f|0
    FUNCTION|LIST|@LIBRARYNAME|l*|@WITHCODE
    FUNCTION|FLUSH|@SYNC""",
    """MULTI
    SET|a|1|@NX
    EXEC
    EVAL|return redis.call('SET', 'a', '2', '%XX')|0
    GET|a""",
]


def _variant(case: str, how: str) -> list[list[bytes]]:
    """The commands of ``case`` with each keyword sent ``how``: "plain", "junk" or "lower"."""

    def word(w: str) -> str:
        if how == "plain":
            return w
        return w + "\x00junk" if how == "junk" else w.lower() + "\x00"

    out: list[list[bytes]] = []
    for line in case.split("\n"):
        words = [w[1:] and word(w[1:]) if w.startswith("@") else w for w in line.strip().split("|")]
        words = [w.replace("\\x00", "\x00").replace("\\n", "\n") for w in words]
        if words[0] == "EVAL":  # a keyword inside the script's text, with Lua's escape for the NUL
            words[1] = words[1].replace("%XX", word("XX").replace("\x00", "\\0"))
        out.append([w.encode("latin-1") for w in words])
    return out


@pytest.mark.parametrize("how", ["plain", "junk", "lower"])
def test_option_keywords_end_at_a_nul_byte(pair, protocol, how):
    """kvb compared option keywords whole, so ``SET a 1 NX\\0junk`` was a syntax error (and
    ``XADD s MAXLEN\\0 ...`` an invalid ID, ``EXPIRE a 1 NX\\0`` an unsupported option) where
    Redis, comparing C strings, reads ``NX``; now every keyword ends at its first NUL byte, in
    the server and in the in-process methods it calls."""
    commands: list[list[bytes]] = []
    for case in _CASES:
        commands += [[b"FLUSHALL"], *_variant(case, how)]
    _assert_same_bytes(pair, protocol, commands)


def test_unknown_names_are_quoted_as_c_strings(pair, protocol):
    """The error for an unknown command or subcommand quotes its name (and an unknown command's
    arguments) as Redis's ``%.128s`` does: up to the first NUL byte, at most 128 bytes, arguments
    added while less than 128 bytes are shown; kvb quoted whole names and 64 bytes of each of up
    to 15 arguments. (Names whose part before the NUL is no command: see the next test.)"""
    commands = [
        [b"\x00a", b"b"],
        [b"foo", b"a\x00b", b"c\r\nd"],
        [b"foo"] + [b"ab"] * 40,
        [b"x" * 200, b"y" * 100, b"z" * 50, b"w"],
        [b"foo", "\u00e9".encode() * 100],
        [b"CLIENT", b"x" * 200],
        [b"CLIENT", b"\x00LIST"],
        [b"XGROUP", b"x\x00y", b"a"],
        [b"OBJECT", b"nosuch\x00ENCODING", b"a"],
    ]
    _assert_same_bytes(pair, protocol, commands)


def test_names_with_a_nul_are_unknown(pair, protocol):
    """A command or subcommand name is looked up whole, so ``SET\\0`` is no command (only its
    error quotes it as a C string). Redis hashes the whole name but compares the names in one hash
    bucket as C strings, so it finds ``SET\\0`` only when its hash happens to fall in the bucket of
    ``set`` (which changes with its hash seed on each start): kvb answers what Redis answers but
    for such chance collisions, so this is checked against kvb alone."""
    conn = Raw(_port(pair[1]), protocol)
    try:
        assert conn.call(b"SET\x00", b"a", b"1") == (
            b"-ERR unknown command 'SET', with args beginning with: 'a' '1' \r\n"
        )
        error = b"-ERR unknown subcommand 'ENCODING'. Try OBJECT HELP.\r\n"
        assert conn.call(b"OBJECT", b"ENCODING\x00", b"a") == error
        assert conn.call(b"CLIENT", b"list\x00x") == b"-ERR unknown subcommand 'list'. Try CLIENT HELP.\r\n"
        assert conn.call(b"EXISTS", b"a") == b":0\r\n"
    finally:
        conn.close()


def test_keyword_helper_reads_a_c_string():
    """The one helper every option comparison uses: upper case, up to the first NUL byte."""
    assert keyword(b"nx\x00junk") == b"NX"
    assert keyword(b"\x00NX") == b""
    assert keyword("withScores") == b"WITHSCORES"


def test_in_process_methods_read_keywords_as_redis(tmp_path):
    """The Structures methods the server calls with a client's words read them as Redis does too."""
    with Structures(str(tmp_path / "s")) as st:
        st.rpush("l", "a", "c")
        assert st.linsert("l", "BEFORE\x00x", "c", "b") == 3
        assert st.lmove("l", "m", "left\x00", "RIGHT\x00junk") == b"a"
        st.set("k", "foobar")
        assert st.bitcount("k", 1, 1, "BIT\x00") == 1
        assert st.bitop("AND\x00x", "d", "k") == 6
        with pytest.raises(CommandError, match="syntax error"):
            st.linsert("l", "\x00BEFORE", "c", "b")
