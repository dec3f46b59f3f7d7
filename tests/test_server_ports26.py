"""The test helpers that start a server on a port the system gave as free: a parallel test (another
pytest worker, another checkout's run) may be given that port too and listen there first. Each helper
must end up on a server of its own, never talk to that other one, and never hang waiting for it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import child_env, listens_on, stop_process

#: A stranger: an HTTP server (Python's own) on the port given, answering every GET.
STRANGER_HTTP = (
    "import http.server, sys\n"
    "http.server.test(http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind='127.0.0.1')\n"
)


def first_then(taken: int, real: Callable[[], int]) -> Callable[[], int]:
    """A free_port that hands out ``taken`` first (as the system may, to two tests), then real ones."""
    given = [taken]

    def port() -> int:
        return given.pop() if given else real()

    return port


def in_time(fn: Callable[[], Any], timeout: float = 60) -> Any:
    """``fn()``'s result, run in a thread; an AssertionError if it has not returned in ``timeout`` s."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(timeout)
    assert out, f"{fn} did not return in {timeout} s"
    return out[0]


@pytest.fixture(scope="module")
def _stranger_http(tmp_path_factory) -> Iterator[tuple[subprocess.Popen, int]]:
    """An HTTP server of another process and its port (listening before the tests go on): one for
    the module's tests, each of which only tries to listen on its port."""
    from helpers import free_port, wait_for

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", STRANGER_HTTP, str(port)],
        cwd=tmp_path_factory.mktemp("stranger-http"),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: listens_on(proc.pid, port) or proc.poll() is not None, 30, "the stranger listening")
        assert proc.poll() is None, "the stranger could not listen"
        yield proc, port
    finally:
        stop_process(proc)


@pytest.fixture
def stranger_http(_stranger_http) -> int:
    """The port of an HTTP server of another process, listening there now."""
    proc, port = _stranger_http
    assert listens_on(proc.pid, port), "the stranger no longer listens"
    return port


def test_moto_s3_server_whose_port_another_took_is_its_own(stranger_http, monkeypatch):
    pytest.importorskip("moto")
    pytest.importorskip("flask")
    import urllib.request

    import helpers
    import s3_helpers

    monkeypatch.setattr(s3_helpers, "free_port", first_then(stranger_http, helpers.free_port), raising=False)

    def start() -> tuple[str, bytes]:
        with s3_helpers.moto_server() as url, urllib.request.urlopen(url + "/", timeout=10) as answer:
            return url, answer.read()  # (S3's ListBuckets)

    url, body = in_time(start)
    port = int(url.rsplit(":", 1)[1])
    assert port != stranger_http
    assert b"ListAllMyBucketsResult" in body, body


@pytest.fixture(scope="module")
def stranger(tmp_path_factory, certs) -> Iterator[Callable[..., int]]:
    """``start(kind)``: the port of a server of another process, already listening, of the same kind
    and certificates as the test's own ("serve": kvb serve in plaintext, "serve-tls": kvb serve on a
    TLS port only, "http": kvb http, "https": kvb http over TLS): one that would answer the test's
    clients as its own server would. One of each kind for the module's tests (each only tries to
    listen on its port): started at the first test that asks, checked still listening at each."""
    from helpers import free_port, start_own_server

    started: dict[str, tuple[subprocess.Popen, int]] = {}
    launched: list[subprocess.Popen] = []
    base = tmp_path_factory.mktemp("strangers")

    def start(kind: str) -> int:
        if kind in started:
            proc, port = started[kind]
            assert listens_on(proc.pid, port), f"the {kind} stranger no longer listens"
            return port
        port = free_port()
        store = str(base / f"stranger-{port}")
        tls = ["--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-auth-clients", "no"]
        args = {
            "serve": ["serve", "--dir", store, "--port", str(port)],
            "serve-tls": ["serve", "--dir", store, "--port", "0", "--tls-port", str(port), *tls],
            "http": ["http", "--dir", store, "--port", str(port)],
            "https": ["http", "--dir", store, "--port", str(port), "--ssl-certfile", certs.both],
        }[kind]

        def launch() -> tuple[subprocess.Popen, list[int]]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kv_backend", *args],
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            launched.append(proc)
            return proc, [port]

        started[kind] = start_own_server(launch, tries=1)[0], port
        return port

    yield start
    for proc in launched:
        stop_process(proc)


def take_first(module: Any, name: str, taken: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``module.name`` (its free_port) hand out ``taken`` first."""
    monkeypatch.setattr(module, name, first_then(taken, getattr(module, name)))


def test_kvb_serve_tls_server_whose_port_another_took_is_its_own(stranger, certs, tmp_path, monkeypatch):
    import test_resp_tls24

    taken = stranger("serve-tls")
    take_first(test_resp_tls24, "free_port", taken, monkeypatch)
    server = test_resp_tls24.TLSServer(str(tmp_path / "store"), certs)
    try:
        assert server.tls_port != taken
        assert server.client().info("server")["process_id"] == server.proc.pid
    finally:
        server.stop()


def test_tls_reload_serve_whose_port_another_took_is_its_own(stranger, tmp_path, monkeypatch):
    import test_tls_reload25

    taken = stranger("serve")
    take_first(test_tls_reload25, "free_port", taken, monkeypatch)
    server = test_tls_reload25.Serve(tmp_path)
    try:
        assert server.port != taken
        assert server.plain.info("server")["process_id"] == server.proc.pid
    finally:
        server.stop()


def test_tls_close_server_whose_port_another_took_is_its_own(stranger, certs, tmp_path, monkeypatch):
    import test_resp_tls_close24

    taken = stranger("serve-tls")
    take_first(test_resp_tls_close24, "free_port", taken, monkeypatch)
    with test_resp_tls_close24._server(str(tmp_path / "store"), certs, "asyncio") as (port, proc):
        assert port != taken and listens_on(proc.pid, port)


@pytest.mark.parametrize("where", ["test_http_tls24", "test_http_tls_limit24", "test_tls_adversarial24"])
def test_kvb_https_server_whose_port_another_took_is_its_own(where, stranger, certs, tmp_path, monkeypatch):
    module = __import__(where)
    taken = stranger("https")
    take_first(module, "free_port", taken, monkeypatch)
    store = str(tmp_path / "store")
    client = certs.client_context()
    https = {
        "test_http_tls24": lambda: module._https(store, "--ssl-certfile", certs.both, client=client),
        "test_http_tls_limit24": lambda: module._https(store, certs.both, client, "asyncio"),
        "test_tls_adversarial24": lambda: module._https(store, certs, "asyncio"),
    }[where]
    with https() as (port, proc):
        assert port != taken and listens_on(proc.pid, port)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_http_header_timeout_server_whose_port_another_took_is_its_own(
    tls, stranger, certs, tmp_path, monkeypatch
):
    import test_http_head_timeout24

    taken = stranger("https" if tls else "http")
    take_first(test_http_head_timeout24, "free_port", taken, monkeypatch)
    with test_http_head_timeout24._http(str(tmp_path / "store"), certs, tls) as (proc, _, port):
        assert port != taken and listens_on(proc.pid, port)


def test_start_own_server_starts_again_where_another_took_the_port(stranger_http, tmp_path):
    from helpers import free_port, start_own_server

    given = [stranger_http]
    launched: list[subprocess.Popen] = []

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = given.pop() if given else free_port()
        argv, out = [sys.executable, "-c", STRANGER_HTTP, str(port)], subprocess.DEVNULL
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=out, stderr=out)
        launched.append(proc)
        return proc, [port]

    try:
        proc, (port,) = start_own_server(launch)
        assert len(launched) == 2 and launched[0].returncode is not None  # (the first could not listen)
        assert proc is launched[1] and port != stranger_http and listens_on(proc.pid, port)
    finally:
        for started in launched:
            stop_process(started)


def test_a_server_that_exits_on_its_own_is_ready_s_to_report(tmp_path):
    from helpers import start_own_server

    def launch() -> tuple[subprocess.Popen, list[int]]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"]), [1]

    with pytest.raises(AssertionError, match=r"exited \(status 2\) before listening on \[1\]"):
        start_own_server(launch)
    proc, _ = start_own_server(launch, lambda *_: None)  # (a test of a start that fails)
    assert proc.returncode == 2


def test_an_in_process_server_whose_port_another_took_is_its_own(stranger_http, monkeypatch):
    import socket

    import helpers

    monkeypatch.setattr(helpers, "free_port", first_then(stranger_http, helpers.free_port))
    got: list[bytes] = []
    tried: list[int] = []

    def serve(port: int) -> str:
        tried.append(port)
        with socket.create_server(("127.0.0.1", port)) as server:  # (OSError where another listens)
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"ours")
        return "served"

    def client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            got.append(conn.recv(4))

    result, port, thread = helpers.serve_here_with_client(serve, client)
    thread.join(10)
    assert tried == [stranger_http, port] and result == "served" and got == [b"ours"]


def test_listens_on_asks_the_kernel_for_listening_sockets_only(monkeypatch):
    # listens_on read /proc/net/tcp, which lists every socket: with the suite's thousands in
    # TIME_WAIT, 20-40 ms a read, polled every 10 ms by each server start. It asks sock_diag now.
    import builtins
    import os
    import socket

    import helpers

    if helpers.listens_on(os.getpid(), 1) is None:
        pytest.skip("no /proc here: listens_on cannot tell")
    real_open = builtins.open
    tables: list[str] = []

    def open_watched(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).startswith("/proc/net/tcp"):
            tables.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_watched)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert helpers.listens_on(os.getpid(), port) is True
    assert helpers.listens_on(os.getpid(), port) is False
    assert tables == []


@pytest.mark.parametrize("diag", [True, False], ids=["sock_diag", "proc_tables"])
def test_the_socket_helpers_tell_listening_sockets_from_others_on_the_port(diag, monkeypatch):
    import os
    import socket

    import helpers

    if not diag:

        def no_diag(states: int, port: int) -> list[tuple[int, int, str]]:
            raise OSError("no sock_diag here")

        monkeypatch.setattr(helpers, "_diag_tcp", no_diag)
    me = os.getpid()
    with socket.create_server(("127.0.0.1", 0)) as v4:
        port = v4.getsockname()[1]
        inode = str(os.fstat(v4.fileno()).st_ino)
        assert helpers._listening_inodes(port) >= {inode}
        assert helpers.listens_on(me, port) is True
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            accepted, _ = v4.accept()
            with accepted:
                server_end = str(os.fstat(accepted.fileno()).st_ino)
                assert server_end not in helpers._listening_inodes(port)
                assert helpers.tcp_inode(port, client.getsockname()[1]) == server_end
                assert helpers.tcp_inode(port, port) is None
                assert (
                    helpers.tcp_ends(port, {10}) == 1 and helpers.tcp_ends(port, {1}) == 1
                )  # (LISTEN, ESTABLISHED)
                v4.close()  # (connected sockets on the port stay: none listens)
                assert helpers.listens_on(me, port) is False
                assert client.getpeername()[1] == port
                client.close()  # (the server's end: CLOSE_WAIT)
                helpers.wait_for(
                    lambda: helpers.tcp_ends(port, {8}) == 1, 10, "the server's end in CLOSE_WAIT"
                )
                assert helpers.tcp_ends(port, {1, 10}) == 0
    try:
        v6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        return  # (no IPv6 loopback here)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with v6:
            port6 = v6.getsockname()[1]
            assert helpers._listening_inodes(port6) == {str(os.fstat(v6.fileno()).st_ino)}
            assert helpers.listens_on(me, port6) is True
            assert helpers.listens_on(child.pid, port6) is False  # (another process: not its socket)
    finally:
        stop_process(child)
