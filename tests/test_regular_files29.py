"""One way to open "a regular file, without waiting" (kv_backend.regular) for the four places that each
had their own: a store's files (files.read_format, locking.lock_file_taken), kvb http's PEM files
(http.tls._read), kvb serve's CA directory (server.tlscadir) and kvb serve's TLS files
(server.tls._read). The last looked at the path (stat) and then opened it by name: a FIFO put in
its place in between held kvb serve in the open for ever, waiting for a writer. Each place still says
what it said of a file that is not a regular one; none waits on one, nor reads it."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_format_fifo27 import _within

from kv_backend.errors import ConfigurationError
from kv_backend.files import FORMAT_FILE, read_format
from kv_backend.http import tls as http_tls
from kv_backend.locking import lock_file_taken
from kv_backend.regular import NotRegularFileError, open_regular, read_regular
from kv_backend.server import tls as serve_tls
from kv_backend.server.tlscadir import load_ca_dir

#: What the regular file holds (no certificate OpenSSL takes: the places read it, nothing more).
CONTENT = b"-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n"
#: What a writer of the FIFO has put in it: still there after each place has refused the FIFO.
IN_THE_FIFO = b"-----BEGIN CERTIFICATE-----\nfrom the FIFO\n"

STORE_REFUSAL = (
    "not a regular file (a FIFO, a device or a socket), as every file kv_backend makes in a store is: "
    "remove it, and restore the store from a backup or copy its data out with kvb salvage"
)


def _store(path: Path) -> tuple[Any, ...]:
    try:
        return ("read", read_format(str(path.parent), -1).encode())
    except OSError as exc:
        return ("refused", exc.strerror, exc.filename)


def _http(path: Path) -> tuple[Any, ...]:
    try:
        return ("read", http_tls._read(str(path), "--ssl-certfile"))
    except ConfigurationError as exc:
        return ("refused", str(exc))


def _serve(path: Path) -> tuple[Any, ...]:
    try:
        return ("read", serve_tls._read("--tls-cert-file", str(path)))
    except ConfigurationError as exc:
        return ("refused", str(exc))


def _ca_dir(path: Path) -> tuple[Any, ...]:
    logged: list[str] = []
    load_ca_dir(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), "--tls-ca-cert-dir", str(path.parent), logged.append)
    [line] = logged
    if "not a regular file" in line:
        return ("refused", line)
    return ("read", CONTENT if "holds a certificate OpenSSL cannot read" in line else line)


#: place: (the file's name, how it is read, what it says of a file that is not a regular one)
PLACES: dict[str, tuple[str, Callable[[Path], tuple[Any, ...]], Callable[[Path], tuple[Any, ...]]]] = {
    "store": (FORMAT_FILE, _store, lambda p: ("refused", STORE_REFUSAL, str(p))),
    "kvb http": (
        "cert.pem",
        _http,
        lambda p: ("refused", f"cannot read {p} (--ssl-certfile): not a regular file; give a PEM file"),
    ),
    "kvb serve": (
        "cert.pem",
        _serve,
        lambda p: ("refused", f"cannot read --tls-cert-file {p}: not a regular file; give a PEM file"),
    ),
    "kvb serve's CA dir": (
        "0123abcd.0",
        _ca_dir,
        lambda p: (
            "refused",
            f"--tls-ca-cert-dir {p.parent}: {p.name}: not a regular file (a FIFO, a device or a directory), "
            "skipped",
        ),
    ),
}


def _target(tmp_path: Path, place: str) -> Path:
    (tmp_path / "d").mkdir()
    return tmp_path / "d" / PLACES[place][0]


@pytest.mark.parametrize("place", PLACES)
def test_a_fifo_with_a_writer_is_neither_waited_on_nor_read(tmp_path, place):
    path = _target(tmp_path, place)
    os.mkfifo(path)
    writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # (a writer: a read would take what it wrote)
    try:
        os.write(writer, IN_THE_FIFO)
        assert _within(lambda: PLACES[place][1](path)) == ("returned", PLACES[place][2](path))
        assert os.read(writer, 4096) == IN_THE_FIFO  # (nothing of it read)
    finally:
        os.close(writer)


@pytest.mark.parametrize("place", PLACES)
def test_a_device_is_refused_as_before(tmp_path, place):
    path = _target(tmp_path, place)
    os.symlink(os.devnull, path)
    assert _within(lambda: PLACES[place][1](path)) == ("returned", PLACES[place][2](path))


@pytest.mark.parametrize("place", PLACES)
def test_a_directory_is_refused_as_before(tmp_path, place):
    path = _target(tmp_path, place)
    path.mkdir()
    # (The store's and kvb http's reads let the system refuse it, as they did.)
    expected = {
        "store": ("refused", "Is a directory", str(path)),
        "kvb http": (
            "refused",
            f"cannot read {path} (--ssl-certfile): Is a directory; give a file this user may read",
        ),
    }.get(place, PLACES[place][2](path))
    assert _within(lambda: PLACES[place][1](path)) == ("returned", expected)


@pytest.mark.parametrize("place", PLACES)
def test_a_fifo_swapped_in_after_any_look_by_name_is_not_waited_on(tmp_path, place):
    """A regular file at each look at the path by name (stat, lstat: os.path's too), a FIFO (no writer:
    its open would wait) from the first such look on: kvb serve's check looked, then opened by name."""
    path = _target(tmp_path, place)
    path.write_bytes(CONTENT)
    aside = tmp_path / "fifo"
    os.mkfifo(aside)

    def swapping() -> tuple[Any, ...]:
        for name in ("stat", "lstat"):
            real = getattr(os, name)

            def look(p: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
                st = _real(p, *args, **kwargs)
                if os.fspath(p) == str(path) and os.path.lexists(aside):
                    os.replace(aside, path)
                return st

            setattr(os, name, look)  # (in the forked child alone)
        return PLACES[place][1](path)

    outcome = _within(swapping)
    assert outcome in (("returned", ("read", CONTENT)), ("returned", PLACES[place][2](path))), outcome


def test_open_regular_and_read_regular(tmp_path):
    regular = tmp_path / "f"
    regular.write_bytes(b"x")
    assert read_regular(regular) == b"x"
    fd = open_regular(str(tmp_path), directories=True)
    os.close(fd)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kw in ((fifo, {}), (fifo, {"directories": True}), (tmp_path, {})):
        with pytest.raises(NotRegularFileError) as info:
            open_regular(path, **kw)
        assert (info.value.errno, info.value.strerror, info.value.filename) == (
            22,
            "not a regular file",
            str(path),
        )
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing")


def test_a_lock_file_that_is_no_regular_file_is_not_taken(tmp_path):
    fifo = tmp_path / "LOCK"
    os.mkfifo(fifo)

    def taken() -> bool | None:
        with lock_file_taken(str(fifo), wait=0) as held:
            return held

    assert _within(taken) == ("returned", False)
