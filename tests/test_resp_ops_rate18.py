"""INFO's ``instantaneous_ops_per_sec``, which dashboards (RedisInsight's overview, Datadog's
``redis.net.instantaneous_ops_per_sec``, redis_exporter) show as the server's commands per second,
was missing from ``kvb serve``'s INFO stats. It is Redis's: the mean of the command rates of the last
16 tenths of a second, sampled every tenth."""

from __future__ import annotations

import asyncio
import re
import time

from resp_helpers import Raw, RunningServer

from kv_backend.server import resp


def _stat(info: bytes, field: str) -> int:
    found = re.search(rb"\r\n" + field.encode() + rb":(\d+)\r\n", info)
    assert found, info
    return int(found.group(1))


def test_the_rate_is_the_mean_of_the_last_sixteen_tenths_of_a_second(tmp_path):
    async def run() -> None:
        server = resp.Server(str(tmp_path / "store"))
        try:
            conn = resp.Connection(server)
            server.sample_ops()
            assert _stat(server.info([b"stats"]), "instantaneous_ops_per_sec") == 0
            for _ in range(160):
                conn.execute([b"SET", b"k", b"v"])
            await asyncio.sleep(0.25)  # at least one sample taken since
            rate = _stat(server.info([b"stats"]), "instantaneous_ops_per_sec")
            # 160 commands in the first interval of >= 0.1 s: at most 1,600/s over one sixteenth
            assert 0 < rate <= 100, rate
            assert _stat(server.info([b"stats"]), "evicted_keys") == 0
            conn.execute([b"CONFIG", b"RESETSTAT"])
            assert _stat(server.info([b"stats"]), "instantaneous_ops_per_sec") == 0
            for _ in range(160):
                conn.execute([b"GET", b"k"])
            await asyncio.sleep(1.9)  # all sixteen samples taken since the commands: idle ones
            assert _stat(server.info([b"stats"]), "instantaneous_ops_per_sec") == 0
        finally:
            server.close()

    asyncio.run(run())


def test_kvb_serve_reports_its_rate(tmp_path):
    server = RunningServer(str(tmp_path / "store")).start()
    try:
        conn = Raw(server.port, 2)
        try:
            conn.sock.sendall(b"PING\r\n" * 500)
            for _ in range(500):
                assert conn._read() == b"+PONG\r\n"
            time.sleep(0.3)  # (a sample taken since)
            assert _stat(conn.call("INFO", "stats"), "instantaneous_ops_per_sec") > 0
        finally:
            conn.close()
    finally:
        assert server.stop() == 0
