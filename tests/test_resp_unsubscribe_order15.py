"""UNSUBSCRIBE, PUNSUBSCRIBE and SUNSUBSCRIBE with no names, byte for byte against a real redis-server
7.0: Redis keeps a client's patterns in a list, so PUNSUBSCRIBE confirms them in the order they were
subscribed (kvb answered in byte order); its channels and shard channels are in a hash table, whose
order is its own (kvb: byte order), so those are compared as sets of confirmations here."""

from __future__ import annotations

import pytest
from resp_helpers import Raw

PATTERN_CASES = [
    [["PSUBSCRIBE", "z", "b", "a", "m"]],
    [["PSUBSCRIBE", "m"], ["PSUBSCRIBE", "a"], ["PSUBSCRIBE", "z"], ["PSUBSCRIBE", "m"]],
    [["PSUBSCRIBE", "m", "a", "z"], ["PUNSUBSCRIBE", "a"], ["PSUBSCRIBE", "a", "m"], ["SUBSCRIBE", "c"]],
]


def _session(
    port: int, protocol: int, commands: list[list[str]], last: list[str], expect: int
) -> list[bytes]:
    """The ``expect`` confirmations ``last`` gets after ``commands``."""
    conn = Raw(port, protocol)
    try:
        for cmd in commands:
            conn.call(*cmd)
            for _ in range(len(cmd) - 2):  # one confirmation per name
                conn._read()
        replies = [conn.call(*last)]
        replies += [conn._read() for _ in range(expect - 1)]
        return replies
    finally:
        conn.close()


def _patterns(commands: list[list[str]]) -> int:
    subscribed: set[str] = set()
    for cmd in commands:
        if cmd[0] == "PSUBSCRIBE":
            subscribed.update(cmd[1:])
        elif cmd[0] == "PUNSUBSCRIBE":
            subscribed.difference_update(cmd[1:])
    return len(subscribed)


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("case", range(len(PATTERN_CASES)))
def test_punsubscribe_confirms_patterns_in_the_order_subscribed(ports, protocol, case):
    commands = PATTERN_CASES[case]
    want, got = (_session(p, protocol, commands, ["PUNSUBSCRIBE"], _patterns(commands)) for p in ports)
    assert got == want


@pytest.mark.parametrize("kind", ["SUBSCRIBE", "SSUBSCRIBE"])
def test_unsubscribe_all_confirms_every_channel(ports, kind):
    names = ["z", "b", "a", "m", "c"]
    last = ["UNSUBSCRIBE" if kind == "SUBSCRIBE" else "SUNSUBSCRIBE"]
    want, got = (_session(p, 2, [[kind, *names]], last, len(names)) for p in ports)
    assert len(got) == len(want) == len(names)
    # the same channels confirmed, each count one lower than the one before
    assert sorted(r.split(b"\r\n")[4] for r in got) == sorted(r.split(b"\r\n")[4] for r in want)
    assert [r.split(b"\r\n")[5] for r in got] == [r.split(b"\r\n")[5] for r in want]
