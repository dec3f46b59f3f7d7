"""The tests' kvb serve helper never lets a test talk to another test's server.

A port free_port gave may be given to a parallel worker's server too; where that one listens first,
this one cannot, and a test that only waited for the port to accept talked to the other server (a
SET it was answered +OK for landed in the other test's store).
"""

from __future__ import annotations

from helpers import free_port
from resp_helpers import Raw, RunningServer


def test_a_server_whose_port_another_server_took_starts_on_another(tmp_path):
    first = RunningServer(str(tmp_path / "first")).start()
    try:
        second = RunningServer(str(tmp_path / "second"))
        second.port = first.port  # (as if free_port had given both the same port)
        second.start()
        try:
            assert second.port != first.port
            conn = Raw(second.port, 2)
            try:
                assert conn.call("SET", "mine", "1") == b"+OK\r\n"
                assert b"process_id:%d\r\n" % second.proc.pid in conn.call("INFO", "server")
            finally:
                conn.close()
            conn = Raw(first.port, 2)
            try:
                assert conn.call("EXISTS", "mine") == b":0\r\n"  # (the first server never saw it)
            finally:
                conn.close()
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_redis_server_whose_port_another_server_took_starts_on_another(tmp_path, monkeypatch):
    import resp_helpers

    first = RunningServer(str(tmp_path / "first")).start()
    try:
        ports = iter([first.port])
        monkeypatch.setattr(resp_helpers, "free_port", lambda: next(ports, None) or free_port())
        proc, port = resp_helpers.start_redis_server(str(tmp_path))
        try:
            assert port != first.port
            assert resp_helpers.is_listener(port, proc.pid)
        finally:
            resp_helpers.stop_process(proc)
    finally:
        first.stop()


def test_a_forked_server_whose_port_another_server_took_starts_on_another_and_restarts_there(tmp_path):
    from resp_helpers import serve_zygote

    first = RunningServer(str(tmp_path / "first")).start()
    try:
        with serve_zygote() as zygote:
            second = RunningServer(str(tmp_path / "second"), zygote=zygote)
            second.port = first.port  # (as if free_port had given both the same port)
            second.start()
            try:
                assert second.port != first.port
                conn = Raw(second.port, 2)
                try:
                    assert conn.call("SET", "mine", "1") == b"+OK\r\n"
                finally:
                    conn.close()
                assert second.stop() == 0
                port = second.port
                second.start()  # (a restart: on the same port)
                assert second.port == port
                conn = Raw(second.port, 2)
                try:
                    assert conn.call("GET", "mine") == b"$1\r\n1\r\n"
                    assert b"process_id:%d\r\n" % second.proc.pid in conn.call("INFO", "server")
                finally:
                    conn.close()
            finally:
                second.stop()
    finally:
        first.stop()
