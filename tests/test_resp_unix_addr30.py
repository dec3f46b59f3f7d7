"""A client of kvb serve's unix socket was shown in CLIENT LIST and CLIENT INFO as ``addr=unix``, where
redis-server shows the socket's path (``addr=/run/redis.sock:0``, as its ``laddr``), so that ``CLIENT KILL
ADDR /run/redis.sock:0`` (and the old form ``CLIENT KILL /run/redis.sock:0``) found no client: kvb shows
and matches Redis's address now."""

from __future__ import annotations

import redis
from resp_helpers import RunningServer


def test_a_unix_socket_client_has_the_socket_path_as_its_address(tmp_path):
    sock = str(tmp_path / "kvb.sock")
    srv = RunningServer(str(tmp_path / "store"), unixsocket=sock).start()
    try:
        victim = redis.Redis(unix_socket_path=sock)
        killer = redis.Redis(unix_socket_path=sock)
        info = victim.client_info()
        assert (info["addr"], info["laddr"]) == (f"{sock}:0", f"{sock}:0")
        assert all(c["addr"] == f"{sock}:0" for c in killer.client_list())
        name = victim.client_id()
        assert killer.execute_command("CLIENT", "KILL", "ADDR", f"{sock}:0", "SKIPME", "yes") == 1
        assert name not in [int(c["id"]) for c in killer.client_list()]
        victim = redis.Redis(unix_socket_path=sock)
        assert victim.ping()
        assert killer.execute_command("CLIENT", "KILL", f"{sock}:0") in (b"OK", "OK", True)
        tcp = redis.Redis(port=srv.port)
        assert tcp.client_info()["addr"].startswith("127.0.0.1:")
        for client in (victim, killer, tcp):
            client.close()
    finally:
        srv.stop()
