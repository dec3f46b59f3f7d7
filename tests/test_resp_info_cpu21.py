"""INFO had no cpu section: monitoring tools that chart a Redis server's CPU time from INFO
(``used_cpu_sys``, ``used_cpu_user``: redis_exporter, Telegraf, Datadog) found nothing for
``kvb serve``. INFO now answers redis-server 7.0's cpu section with the server process's own CPU
times, in Redis's place among the sections and in its format; checked side by side with a real
redis-server (the ``ports`` fixture)."""

from __future__ import annotations

import re

import redis
from resp_helpers import Raw

_FIELDS = [
    "used_cpu_sys",
    "used_cpu_user",
    "used_cpu_sys_children",
    "used_cpu_user_children",
    "used_cpu_sys_main_thread",
    "used_cpu_user_main_thread",
]


def _section(port: int, *args: str) -> list[str]:
    conn = Raw(port, 2)
    try:
        reply = conn.call("INFO", *args)
    finally:
        conn.close()
    text = reply.split(b"\r\n", 1)[1].decode()  # (after the bulk string's length)
    return [line for line in text.split("\r\n") if line]


def test_info_cpu_as_redis_server(ports):
    theirs, ours = (_section(port, "cpu") for port in ports)
    assert ours[0] == theirs[0] == "# CPU"
    assert [line.split(":")[0] for line in ours[1:]] == [line.split(":")[0] for line in theirs[1:]] == _FIELDS
    for line in ours[1:]:
        assert re.fullmatch(r"[a-z_]+:\d+\.\d{6}", line), line


def test_the_cpu_section_comes_where_redis_puts_it(ports):
    theirs, ours = ([line for line in _section(port) if line.startswith("# ")] for port in ports)
    assert "# CPU" in ours
    assert ours == [header for header in theirs if header in ours]  # (kvb has fewer sections, in order)


def test_cpu_time_counts_the_server_s_work(ports):
    before = float(_section(ports[1], "cpu")[2].split(":")[1])  # used_cpu_user
    conn = redis.Redis(port=ports[1])
    try:
        with conn.pipeline(transaction=False) as pipe:
            for i in range(3000):
                pipe.set(f"cpu{i}", "x")
            pipe.execute()
    finally:
        conn.close()
    assert float(_section(ports[1], "cpu")[2].split(":")[1]) > before
