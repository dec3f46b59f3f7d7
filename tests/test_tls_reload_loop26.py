"""CONFIG SET of kvb serve's TLS files reads them and builds the new SSL context off the event loop: a
slow file (a network file system, a huge CA bundle, a stalled disk) holds up only the client that
asked, whose reply (and its next commands) wait for it, never the other clients. Changes stay all or
none, two of them run one after the other, and CONFIG GET shows the old or the new values, never a mix.

The child server's context builds (tlsreload.configure) made outside its event loop's thread wait at a
gate the test opens (a pipe): a read as slow as the test wants, deterministically. Each build, gated or
not, says first on which thread it runs ("T": a worker, "L": the event loop's)."""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_helpers import GatedServer, serving
from helpers import free_port, listens_on, stop_process, wait_for
from resp_helpers import Raw, is_listener, wait_for_port
from tls_helpers import Certs, der, served_cert

#: kvb serve whose CONFIG SET context builds say where they run on one pipe, and those made off the
#: event loop's thread (the main one) wait for a byte on another first.
_SERVE_WITH_A_GATE = (
    "import os, sys, threading\n"
    "from kv_backend.server import tlsreload\n"
    "gate, said = int(os.environ['KVB_TEST_GATE']), int(os.environ['KVB_TEST_SAID'])\n"
    "real = tlsreload.configure\n"
    "def gated(*args, **kwargs):\n"
    "    on_loop = threading.current_thread() is threading.main_thread()\n"
    "    os.write(said, b'L' if on_loop else b'T')\n"
    "    if not on_loop:\n"
    "        os.read(gate, 1)\n"
    "    return real(*args, **kwargs)\n"
    "tlsreload.configure = gated\n"
    "from kv_backend.cli import main\n"
    "sys.exit(main(['serve', *sys.argv[1:]]))\n"
)
#: CONFIG SET tls-port's reply where the port cannot be listened on (another process's), as Redis's.
PORT_TAKEN = (
    b"-ERR CONFIG SET failed (possibly related to argument 'tls-port') - Unable to listen on this port. "
    b"Check server logs.\r\n"
)
#: Seconds within which a command of another client is answered while a build waits at the gate (its
#: round trip takes a millisecond or so; the build waits until the test opens the gate).
QUICK = 1.0


class Gated(GatedServer):
    """kvb serve with the gate (on the TLS context builds), on a plaintext port and a TLS port (``certs``'
    files)."""

    def start(self, tmp: Path, certs: Certs) -> None:
        env = self.gate_env()
        for _ in range(5):  # (a free port may be a parallel test's server's by the time this one listens)
            self.port, self.tls_port = free_port(), free_port()
            cmd = [sys.executable, "-c", _SERVE_WITH_A_GATE, "--dir", str(tmp / f"store-{self.port}")]
            cmd += ["--port", str(self.port), "--tls-port", str(self.tls_port), "--tls-auth-clients", "no"]
            cmd += ["--tls-cert-file", certs.cert, "--tls-key-file", certs.key]
            self.proc = subprocess.Popen(
                cmd, env=env, pass_fds=(self.gate_r, self.said_w), stdout=subprocess.DEVNULL
            )
            try:
                wait_for_port(self.port, self.proc, 30)
            except AssertionError:
                exited = self.proc.poll() is not None  # (it could not listen: another took the port)
                stop_process(self.proc)
                if exited:
                    continue
                raise
            if is_listener(self.port, self.proc.pid):
                break
            stop_process(self.proc)
        else:
            raise AssertionError("five free ports in a row were others' by the time kvb serve listened")


@pytest.fixture
def server(tmp_path, certs) -> Iterator[Gated]:
    yield from serving(Gated(), tmp_path, certs)


def send(raw: Raw, *commands: tuple[str, ...]) -> None:
    """Send ``commands`` in one write, reading nothing."""
    out = b""
    for args in commands:
        words = [a.encode() for a in args]
        out += b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)
    raw.sock.sendall(out)


def nothing_to_read(raw: Raw) -> bool:
    """Whether the server sent ``raw`` nothing (yet)."""
    ready, _, _ = select.select([raw.sock], [], [], 0)
    return not ready


def timed(raw: Raw, *args: str) -> tuple[bytes, float]:
    t = time.monotonic()
    reply = raw.call(*args)
    return reply, time.monotonic() - t


def bulk(value: str) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value.encode())


def config_get(raw: Raw, name: str) -> bytes:
    return raw.call("CONFIG", "GET", name)


def pair(name: str, value: str) -> bytes:
    return b"*2\r\n" + bulk(name) + bulk(value)


def test_others_are_served_while_the_files_are_read_and_the_caller_waits_in_order(server, certs, other):
    setter, pinger = server.client(), server.client()
    # one write: the CONFIG SET, then a command that must see its result
    rotate = ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key)
    send(setter, rotate, ("CONFIG", "GET", "tls-cert-file"))
    assert server.said() == b"T", "the certificate was read on the event loop"
    waits = []
    for _ in range(20):  # the build is held at the gate all along
        reply, waited = timed(pinger, "PING")
        assert reply == b"+PONG\r\n"
        waits.append(waited)
    assert max(waits) < QUICK, f"PING waited {max(waits):.3f} s for another client's CONFIG SET"
    assert config_get(pinger, "tls-cert-file") == pair("tls-cert-file", certs.cert)  # (the old value)
    assert served_cert(server.tls_port) == der(certs.cert)  # (new connections: the old context)
    assert nothing_to_read(setter)  # its reply, and its next command's, wait for the build
    server.open_gate()
    assert setter._read() == b"+OK\r\n"
    assert setter._read() == pair("tls-cert-file", other.cert)
    assert served_cert(server.tls_port) == der(other.cert)
    assert config_get(pinger, "tls-cert-file") == pair("tls-cert-file", other.cert)


def client_id(raw: Raw) -> int:
    reply = raw.call("CLIENT", "ID")
    assert reply.startswith(b":"), reply
    return int(reply[1:-2])


def waits_in_config_set(watcher: Raw, cid: int) -> bool:
    """Whether client ``cid``'s last command is a CONFIG SET (it is held behind another's)."""
    lines = watcher.call("CLIENT", "LIST", "ID", str(cid)).decode()
    return " cmd=config|set " in lines


def test_two_config_sets_run_one_after_the_other_each_on_the_settings_of_the_one_before(server, certs, other):
    first, second, watcher = server.client(), server.client(), server.client()
    send(first, ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key))
    assert server.said() == b"T"
    second_id = client_id(second)
    send(second, ("CONFIG", "SET", "tls-protocols", "TLSv1.3"), ("CONFIG", "GET", "tls-*-file"))
    wait_for(lambda: waits_in_config_set(watcher, second_id), 30, "the second CONFIG SET received")
    assert server.said(0) == b"", "the second CONFIG SET read its files before the first was in force"
    assert config_get(watcher, "tls-protocols") == pair("tls-protocols", "")
    server.open_gate()
    assert first._read() == b"+OK\r\n"
    assert server.said() == b"T"  # (the second's turn, on the settings the first put in force)
    assert nothing_to_read(second)
    server.open_gate()
    assert second._read() == b"+OK\r\n"
    files = second._read()
    assert bulk(other.cert) in files and bulk(other.key) in files  # (the first's files stayed)
    assert config_get(watcher, "tls-protocols") == pair("tls-protocols", "TLSv1.3")
    assert served_cert(server.tls_port) == der(other.cert)


def test_several_parameters_at_once_are_put_in_force_together(server, certs, other):
    setter, watcher = server.client(), server.client()
    words = ("tls-cert-file", other.cert, "tls-key-file", other.key, "maxclients", "50")
    send(setter, ("CONFIG", "SET", *words, "slowlog-max-len", "7"))
    assert server.said() == b"T"
    assert config_get(watcher, "maxclients") == pair("maxclients", "10000")
    assert config_get(watcher, "slowlog-max-len") == pair("slowlog-max-len", "128")
    assert config_get(watcher, "tls-cert-file") == pair("tls-cert-file", certs.cert)
    server.open_gate()
    assert setter._read() == b"+OK\r\n"
    assert config_get(watcher, "maxclients") == pair("maxclients", "50")
    assert config_get(watcher, "slowlog-max-len") == pair("slowlog-max-len", "7")
    assert config_get(watcher, "tls-cert-file") == pair("tls-cert-file", other.cert)


def test_a_refused_one_changes_nothing_and_answers_as_before(server, certs, other):
    setter, watcher = server.client(), server.client()
    mismatched = ("tls-cert-file", other.cert, "tls-key-file", certs.key)
    send(setter, ("CONFIG", "SET", "maxclients", "50", *mismatched))
    assert server.said() == b"T"
    server.open_gate()
    assert setter._read() == (
        b"-ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS "
        b"configuration. Check server logs.\r\n"
    )
    assert config_get(watcher, "maxclients") == pair("maxclients", "10000")
    assert config_get(watcher, "tls-cert-file") == pair("tls-cert-file", certs.cert)
    assert served_cert(server.tls_port) == der(certs.cert)


def test_a_client_gone_before_its_files_are_read_still_has_them_put_in_force(server, certs, other):
    setter, watcher = server.client(), server.client()
    setter_id = client_id(setter)
    words = ("tls-cert-file", other.cert, "tls-key-file", other.key, "maxclients", "60")
    send(setter, ("CONFIG", "SET", *words))
    assert server.said() == b"T"
    setter.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    setter.close()  # (a reset: the connection is lost at once, where a FIN would wait for the reply)
    gone = b"id=%d " % setter_id
    wait_for(lambda: gone not in watcher.call("CLIENT", "LIST"), 30, "the setter gone")
    server.open_gate()
    wait_for(lambda: config_get(watcher, "maxclients") == pair("maxclients", "60"), 30, "the change")
    assert config_get(watcher, "tls-cert-file") == pair("tls-cert-file", other.cert)
    assert served_cert(server.tls_port) == der(other.cert)
    assert watcher.call("PING") == b"+PONG\r\n"


def test_a_client_that_shuts_down_its_side_gets_its_reply(server, certs, other):
    setter = server.client()
    send(setter, ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key), ("PING",))
    setter.sock.shutdown(socket.SHUT_WR)
    assert server.said() == b"T"
    server.open_gate()
    assert setter._read() == b"+OK\r\n"
    assert setter._read() == b"+PONG\r\n"
    assert setter.file.read() == b""  # (then closed)


def test_the_waiting_client_as_client_list_info_and_client_unblock_see_it(server, certs, other):
    setter, watcher = server.client(), server.client()
    setter_id = client_id(setter)
    send(setter, ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key))
    assert server.said() == b"T"
    assert b" flags=b " in watcher.call("CLIENT", "LIST", "ID", str(setter_id))
    assert b"blocked_clients:0\r\n" in watcher.call("INFO", "clients")
    assert watcher.call("CLIENT", "UNBLOCK", str(setter_id), "ERROR") == b":0\r\n"  # (as Redis)
    assert nothing_to_read(setter)
    server.open_gate()
    assert setter._read() == b"+OK\r\n"


def test_inside_exec_the_files_are_read_at_once_and_a_change_under_way_is_built_again(server, certs, other):
    setter, tx = server.client(), server.client()
    send(setter, ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key))
    assert server.said() == b"T"
    # EXEC answers its commands together: its CONFIG SET reads the files on the loop (not gated)
    replies = tx.pipeline([("MULTI",), ("CONFIG", "SET", "tls-protocols", "TLSv1.3"), ("EXEC",)])
    assert replies == [b"+OK\r\n", b"+QUEUED\r\n", b"*1\r\n+OK\r\n"]
    assert server.said() == b"L"
    assert config_get(tx, "tls-protocols") == pair("tls-protocols", "TLSv1.3")
    assert config_get(tx, "tls-cert-file") == pair("tls-cert-file", certs.cert)
    server.open_gate()  # the first one's context, built from the settings EXEC replaced: built again
    assert server.said() == b"T"
    assert nothing_to_read(setter)
    server.open_gate()
    assert setter._read() == b"+OK\r\n"
    assert config_get(tx, "tls-protocols") == pair("tls-protocols", "TLSv1.3")
    assert config_get(tx, "tls-cert-file") == pair("tls-cert-file", other.cert)


def test_a_tls_port_change_alone_waits_for_a_change_under_way(server, certs, other):
    setter, mover, watcher = server.client(), server.client(), server.client()
    send(setter, ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key))
    assert server.said() == b"T"
    moved = free_port()
    mover_id = client_id(mover)
    send(mover, ("CONFIG", "SET", "tls-port", str(moved)))
    wait_for(lambda: waits_in_config_set(watcher, mover_id), 30, "the tls-port CONFIG SET received")
    assert config_get(watcher, "tls-port") == pair("tls-port", str(server.tls_port))
    server.open_gate()
    assert setter._read() == b"+OK\r\n"
    reply = mover._read()
    for _ in range(5):  # (the free port may be a parallel test's by now: then another, not waiting now)
        if reply != PORT_TAKEN:
            break
        moved = free_port()
        reply = mover.call("CONFIG", "SET", "tls-port", str(moved))
    assert reply == b"+OK\r\n"
    assert server.proc is not None and listens_on(server.proc.pid, moved) is not False  # (this server's)
    assert served_cert(moved) == der(other.cert)


def test_the_server_stops_while_the_files_are_still_being_read(server, certs, other):
    setter = server.client()
    send(setter, ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key))
    assert server.said() == b"T"
    assert server.proc is not None
    server.proc.terminate()  # (the read never ends: a stalled disk)
    assert server.proc.wait(20) == 0
    assert setter.file.read() == b""  # (closed unanswered: nothing was put in force)


def test_under_client_reply_off_the_reply_is_dropped_and_the_next_commands_wait(server, certs, other):
    setter = server.client()
    rotate = ("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key)
    send(
        setter,
        ("CLIENT", "REPLY", "OFF"),
        rotate,
        ("CLIENT", "REPLY", "ON"),
        ("CONFIG", "GET", "tls-cert-file"),
    )
    assert server.said() == b"T"
    assert nothing_to_read(setter)
    server.open_gate()
    assert setter._read() == b"+OK\r\n"  # (CLIENT REPLY ON's)
    assert setter._read() == pair("tls-cert-file", other.cert)
