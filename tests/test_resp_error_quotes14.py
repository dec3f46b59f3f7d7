"""Errors quote a client's argument as redis-server 7 prints it with ``%s``: as a C string, up to its
first NUL byte (``CONFIG SET nosuch\\0x 1`` quotes ``nosuch``); kvb quoted the whole argument. And
INFO reads a section name up to its NUL, as Redis copies it (kvb answered nothing for
``INFO server\\0x``)."""

from __future__ import annotations

import test_resp_differential
import test_resp_review13
from resp_helpers import Raw

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair

_assert_same_bytes = test_resp_review13._assert_same_bytes
_port = test_resp_review13._port

_COMMANDS = [
    [b"CONFIG", b"SET", b"nosuch\x00x", b"1"],
    [b"CONFIG", b"SET", b"maxmemory-policy", b"bad\x00x"],
    [b"CONFIG", b"SET", b"slowlog-max-len", b"x\x00y"],
    [b"CLIENT", b"LIST", b"TYPE", b"bad\x00x"],
    [b"CLIENT", b"KILL", b"TYPE", b"bad\x00x"],
    [b"XADD", b"s", b"1-1", b"f", b"v"],
    [b"XREADGROUP", b"GROUP", b"g\x00x", b"c", b"STREAMS", b"s", b">"],
    [b"XGROUP", b"CREATE", b"s", b"g", b"0"],
    [b"XCLAIM", b"s", b"g", b"c", b"0", b"1-1", b"bad\x00x"],
    [b"SET", b"a", b"1"],
    [b"EXPIRE", b"a", b"10", b"bad\x00x"],
    [b"HELLO", b"3", b"bad\x00x"],
    [b"FUNCTION", b"LOAD", b"bad\x00x", b"code"],
    [b"LATENCY", b"GRAPH", b"ev\x00x"],
]


def test_errors_quote_arguments_as_c_strings(pair, protocol):
    _assert_same_bytes(pair, protocol, _COMMANDS)


def test_info_section_ends_at_a_nul(pair, protocol):
    conn = Raw(_port(pair[1]), protocol)
    try:
        assert b"# Server\r\n" in conn.call(b"INFO", b"server\x00x")
    finally:
        conn.close()
