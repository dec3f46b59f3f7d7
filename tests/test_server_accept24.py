"""What ``kvb serve`` does when accepting a connection fails, on a plain and on a TLS listener.

Nothing waiting (``BlockingIOError``), a signal (``InterruptedError``) or a client gone before it was
accepted (``ConnectionAbortedError``) is no connection: ``accept`` answers None and ``accept_tls``
False, and the loop waits for the next. Any other ``OSError`` (out of file descriptors or memory, a
broken listener) is logged and raised, for the listener's reader to pause or stop accepting.
"""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from kv_backend.server.listen import accept, accept_tls

QUIET = [BlockingIOError, InterruptedError, ConnectionAbortedError]


class _Server:
    def __init__(self) -> None:
        self.logged: list[str] = []

    def log(self, message: str) -> None:
        self.logged.append(message)


class _Listener:
    def __init__(self, error: OSError) -> None:
        self.error = error

    def accept(self):
        raise self.error


def _accept(kind: str, server: _Server, listener) -> object:
    if kind == "tls":
        return accept_tls(server, listener, ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    return accept(server, listener, kind)


NONE = {"tcp": None, "unix": None, "tls": False}


@pytest.mark.parametrize("kind", ["tcp", "unix", "tls"])
@pytest.mark.parametrize("error", QUIET, ids=lambda e: e.__name__)
def test_no_connection_is_no_error(kind, error):
    server = _Server()
    assert _accept(kind, server, _Listener(error())) is NONE[kind]
    assert server.logged == []


@pytest.mark.parametrize("kind", ["tcp", "unix", "tls"])
def test_nothing_waiting_on_a_real_listener(kind, tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:  # (no port taken, whatever kind)
        listener.bind(str(tmp_path / "s"))
        listener.listen(1)
        listener.setblocking(False)
        server = _Server()
        assert _accept(kind, server, listener) is NONE[kind]
        assert server.logged == []


@pytest.mark.parametrize("kind", ["tcp", "unix", "tls"])
@pytest.mark.parametrize("code", [errno.EMFILE, errno.EBADF], ids=["EMFILE", "EBADF"])
def test_another_error_is_logged_and_raised(kind, code):
    server = _Server()
    error = OSError(code, "refused")
    with pytest.raises(OSError) as info:
        _accept(kind, server, _Listener(error))
    assert info.value is error
    assert server.logged == [f"cannot accept a connection: {error}"]
