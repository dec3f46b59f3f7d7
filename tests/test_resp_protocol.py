"""The RESP parser and serializer on their own (no server)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_backend.server import protocol
from kv_backend.server.protocol import (
    MAX_INLINE,
    NULL_ARRAY,
    UNAUTH_ARRAY,
    UNAUTH_BULK,
    ErrorReply,
    Parser,
    ProtocolError,
    Push,
    Replies,
    encode,
    split_inline,
)


@pytest.fixture(autouse=True, params=["hiredis", "python"])
def parser_kind(request, monkeypatch):
    """Every parser test runs with hiredis reading whole commands, and with the Python parser alone."""
    if request.param == "hiredis":
        if protocol._HiredisReader is None:
            pytest.skip("hiredis is not installed (the server extra installs it)")
    else:
        monkeypatch.setattr(protocol, "_HiredisReader", None)
    return request.param


def resp_command(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)


@given(st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=5), min_size=1, max_size=8), st.data())
def test_pipelined_commands_in_any_fragmentation(commands, data):
    stream = b"".join(resp_command(*c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    parser = Parser()
    got = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got += parser.feed(stream[last:cut])
        last = cut
    assert got == commands


@given(
    st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=UNAUTH_ARRAY), min_size=1, max_size=8),
    st.integers(0, 8),
    st.data(),
)
def test_limited_parser_gives_one_request_at_a_time(commands, lift_after, data):
    """Before AUTH: one request per feed, the rest held (feed(b"") goes on); once the limits are
    lifted, the held rest and later input parse as usual; nothing is lost or reordered."""
    stream = b"".join(resp_command(*c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = Parser(limited=True)
    got: list[list[bytes]] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        out = parser.feed(stream[last:cut])
        last = cut
        while True:
            assert len(out) <= (1 if parser.limited else len(commands))
            got += out
            if len(got) >= lift_after:
                parser.limited = False  # AUTH succeeded
            if not parser.held:
                break
            out = parser.feed(b"")
    assert got == commands and not parser.held


def test_limited_parser_refuses_what_redis_refuses_before_auth():
    parser = Parser(limited=True)
    assert parser.feed(resp_command(*[b"x"] * UNAUTH_ARRAY)) == [[b"x"] * UNAUTH_ARRAY]
    with pytest.raises(ProtocolError, match="unauthenticated multibulk length"):
        Parser(limited=True).feed(b"*%d\r\n" % (UNAUTH_ARRAY + 1))
    with pytest.raises(ProtocolError, match="unauthenticated bulk length"):
        Parser(limited=True).feed(b"*1\r\n$%d\r\n" % (UNAUTH_BULK + 1))
    assert Parser().feed(resp_command(b"SET", b"k", b"v" * (UNAUTH_BULK + 1))) == [
        [b"SET", b"k", b"v" * (UNAUTH_BULK + 1)]
    ]


def test_held_input_is_not_copied_per_request():
    """10,000 pipelined requests before AUTH: each feed(b"") resumes at an offset of the same buffer."""
    stream = resp_command(b"PING") * 10_000
    parser = Parser(limited=True)
    first = parser.feed(stream)
    held = parser.chunks[0]
    count = len(first)
    while parser.held:
        count += len(parser.feed(b""))
        assert not parser.held or parser.chunks[0] is held
    assert count == 10_000


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70))
def test_single_command_reads_are_exact(words):
    """A read holding one command is taken whole or left to the general parser, never misread."""
    data = resp_command(*words)
    got = protocol._one_command(data)
    if len(words) <= 64 and not any(b"\r\n" in w for w in words):
        assert got == words
    else:
        assert got in (None, words)
    assert Parser().feed(data) == [words]


@given(st.binary(max_size=80))
def test_single_command_check_agrees_with_the_parser_on_any_bytes(data):
    got = protocol._one_command(b"*" + data)
    if got is not None:
        assert Parser().feed(b"*" + data) == [got]


def test_single_command_check_declines_what_it_cannot_prove():
    one = protocol._one_command
    assert one(resp_command(b"GET", b"k") * 2) is None  # two commands
    assert one(resp_command(b"GET", b"k")[:-1]) is None  # unfinished
    assert one(b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n") is None  # a length spelled otherwise
    assert one(b"*1\r\n$5\r\na\r\nbc\r\n") is None  # an argument holding CRLF: general parser
    assert Parser().feed(b"*1\r\n$5\r\na\r\nbc\r\n") == [[b"a\r\nbc"]]
    assert one(resp_command(b"x" * 2000)) == [b"x" * 2000]


def test_inline_commands_and_quotes():
    p = Parser()
    assert p.feed(b"SET a b\r\nGET a\nPING\r\n\r\n") == [[b"SET", b"a", b"b"], [b"GET", b"a"], [b"PING"]]
    assert split_inline(b'SET "hello world" \'x y\' "a\\nb"') == [b"SET", b"hello world", b"x y", b"a\nb"]
    with pytest.raises(ProtocolError):
        split_inline(b'SET "open')


@pytest.mark.parametrize(
    "data",
    [
        b"*x\r\n",
        b"*1\r\n:3\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n%1\r\n+a\r\n+b\r\n",  # RESP3 types where a bulk string belongs
        b"*1\r\n~1\r\n$1\r\na\r\n",
        b"*1\r\n,1.5\r\n",
        b"*1\r\n=5\r\ntxt:a\r\n",
        b"*1\r\n+PING\r\n",
        b"*1\r\n$3\r\nabcd\r\n",
        b"*1\r\n$99999999999999\r\n",
        b"*99999999999999\r\n",
        b"a" * (MAX_INLINE + 10),
        b"*1\r\n$" + b"1" * (MAX_INLINE + 10),
    ],
)
def test_malformed_input_raises(data):
    with pytest.raises(ProtocolError):
        Parser().feed(data)


def test_empty_and_negative_arrays_are_ignored():
    assert Parser().feed(b"*0\r\n*-1\r\n" + resp_command(b"PING")) == [[b"PING"]]


def test_random_garbage_never_raises_anything_but_protocol_error():
    rng = random.Random(99)
    for _ in range(2000):
        p = Parser()
        try:
            p.feed(rng.randbytes(rng.randint(0, 64)))
            p.feed(rng.choice([b"*", b"$", b"\r\n", b"2", b"-"]) * rng.randint(1, 5))
        except ProtocolError:
            pass


def test_encode_resp2_and_resp3():
    assert encode(b"x", False) == b"$1\r\nx\r\n"
    assert encode("OK", True) == b"+OK\r\n"
    assert encode(7, False) == b":7\r\n"
    assert encode(None, False) == b"$-1\r\n" and encode(None, True) == b"_\r\n"
    assert encode(NULL_ARRAY, False) == b"*-1\r\n"
    assert encode(1.5, False) == b"$3\r\n1.5\r\n" and encode(1.5, True) == b",1.5\r\n"
    assert encode({b"a": 1}, False) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert encode({b"a": 1}, True) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert encode({b"b", b"a"}, True) == b"~2\r\n$1\r\na\r\n$1\r\nb\r\n"
    assert encode(Push([b"message", b"c", b"m"]), True).startswith(b">3\r\n")
    assert encode(Push([b"message"]), False).startswith(b"*1\r\n")
    assert encode(ErrorReply("ERR bad\r\nthing"), False) == b"-ERR bad  thing\r\n"
    assert encode(Replies([1, 2]), False) == b":1\r\n:2\r\n"
    assert encode(True, True) == b"#t\r\n" and encode(True, False) == b":1\r\n"
    with pytest.raises(TypeError):
        encode(object(), False)


def test_whole_reads_and_partial_reads_give_the_same_commands(parser_kind):
    """Whole reads may take the fast reader; a read ending mid-command falls back without losing bytes."""
    p = Parser()
    assert (p.reader is not None) == (parser_kind == "hiredis")
    two = resp_command(b"SET", b"k", b"v\r\nwith a line end") + resp_command(b"GET", b"k")
    assert p.feed(two) == [[b"SET", b"k", b"v\r\nwith a line end"], [b"GET", b"k"]]
    half = len(two) // 2
    assert p.feed(two[:half]) == [] or parser_kind == "python"
    assert p.feed(two[half:]) in ([[b"SET", b"k", b"v\r\nwith a line end"], [b"GET", b"k"]], [[b"GET", b"k"]])
    # A whole command followed by an inline one in the same read.
    assert p.feed(resp_command(b"PING") + b"ECHO hi\r\n") == [[b"PING"], [b"ECHO", b"hi"]]
    # Arguments that are not bulk strings are refused, as Redis refuses them.
    for bad in (b"*2\r\n$4\r\nECHO\r\n:5\r\n", b"*2\r\n$4\r\nECHO\r\n*1\r\n$1\r\na\r\n", b"*1\r\n_\r\n"):
        with pytest.raises(ProtocolError):
            Parser().feed(bad)
