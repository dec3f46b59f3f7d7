"""kvb serve and kvb http load into OpenSSL the TLS files' bytes they read and checked, not the paths.

Both read their certificate, key and CA files as regular files, without waiting (kv_backend.regular),
then gave OpenSSL the paths (load_cert_chain, load_verify_locations(cafile=)), which it opened again:
a FIFO put there in between held the load for ever, at start or in a reload's build (CONFIG SET
tls-*, SIGHUP). Now CA files go in as cadata and the chain and key through kv_backend.tlsload: a
memfd on Linux, a file in a private temporary directory elsewhere, removed once loaded.
"""

from __future__ import annotations

import errno
import os
import ssl
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from test_format_fifo27 import _within

from kv_backend import regular, tlsload
from kv_backend.errors import ConfigurationError
from kv_backend.http import tls as http_tls
from kv_backend.server import tls as serve_tls
from kv_backend.server import tlsreload


def _swap_after_the_check(path: str, fifo: Path) -> None:
    """From now on (in the forked child alone), the first check of ``path`` by kv_backend.regular is
    followed at once by a FIFO without a writer put in its place: any later open of the path waits."""
    real = regular.open_regular

    def checked_then_swapped(p: Any, *args: Any, **kwargs: Any) -> int:
        fd = real(p, *args, **kwargs)
        if os.fspath(p) == path and fifo.exists():
            os.replace(fifo, path)
        return fd

    regular.open_regular = checked_then_swapped  # type: ignore[assignment]  # (read_regular's)
    if hasattr(serve_tls, "open_regular"):  # (where the check opened the file itself)
        serve_tls.open_regular = checked_then_swapped


def _copies(certs: Any, tmp_path: Path) -> dict[str, str]:
    """Copies of the certificate files that a test may swap for a FIFO."""
    out = {}
    for name in ("cert", "key", "both", "ca_file"):
        copy = tmp_path / f"copy-{name}.pem"
        copy.write_bytes(Path(getattr(certs, name)).read_bytes())
        out[name] = str(copy)
    return out


def _serve_settings(files: dict[str, str]) -> serve_tls.TLSSettings:
    return serve_tls.TLSSettings(
        port=1, cert_file=files["cert"], key_file=files["key"], ca_cert_file=files["ca_file"]
    )


#: which server, which of its files turns into a FIFO after its check
SWAPS = [
    ("kvb serve", "cert"),
    ("kvb serve", "key"),
    ("kvb serve", "ca_file"),
    ("kvb http", "cert"),
    ("kvb http", "key"),
    ("kvb http", "both"),
    ("kvb http", "ca_file"),
]


def _build(server: str, files: dict[str, str], swapped: str) -> Any:
    if server == "kvb serve":
        context = serve_tls.configure(_serve_settings(files), log=lambda line: None)
    elif swapped == "both":  # the key inside the certificate's file (no --ssl-keyfile)
        context = http_tls.server_context(files["both"], None, None, files["ca_file"], "required")
    else:
        context = http_tls.server_context(files["cert"], files["key"], None, files["ca_file"], "required")
    assert context is not None
    return ("built", len(context.get_ca_certs()))


@pytest.mark.parametrize(("server", "swapped"), SWAPS)
def test_a_file_turned_into_a_fifo_after_its_check_is_not_opened_again(certs, tmp_path, server, swapped):
    files = _copies(certs, tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def run() -> Any:
        _swap_after_the_check(files[swapped], fifo)
        return _build(server, files, swapped)

    assert _within(run) == ("returned", ("built", 1))
    assert stat.S_ISFIFO(os.stat(files[swapped]).st_mode)  # (the swap was made: the path is a FIFO now)


@pytest.mark.parametrize("swapped", ["cert", "key", "ca_file"])
def test_a_reload_builds_from_what_it_checked(certs, tmp_path, swapped):
    """The build a CONFIG SET tls-* runs in its thread (tlsreload.build) loads what it read: a file
    turned into a FIFO after that neither holds the build up nor fails it."""
    files = _copies(certs, tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def run() -> Any:
        _swap_after_the_check(files[swapped], fifo)
        built = tlsreload.build(_serve_settings(files), log=lambda line: None)
        return (built.context is not None, built.error)

    assert _within(run) == ("returned", (True, None))


@pytest.mark.parametrize("server", ["kvb serve", "kvb http"])
@pytest.mark.parametrize("which", ["cert", "key"])
def test_a_fifo_given_as_certificate_or_key_is_refused_at_once(certs, tmp_path, server, which):
    files = _copies(certs, tmp_path)
    os.unlink(files[which])
    os.mkfifo(files[which])

    def run() -> Any:
        if server == "kvb serve":
            serve_tls.configure(_serve_settings(files), log=lambda line: None)
        else:
            http_tls.server_context(files["cert"], files["key"])
        return "built"

    option = {
        ("kvb serve", "cert"): "--tls-cert-file",
        ("kvb serve", "key"): "--tls-key-file",
        ("kvb http", "cert"): "--ssl-certfile",
        ("kvb http", "key"): "--ssl-keyfile",
    }[server, which]
    path = files[which]
    said = (
        f"cannot read {option} {path}: not a regular file; give a PEM file"
        if server == "kvb serve"
        else f"cannot read {path} ({option}): not a regular file; give a PEM file"
    )
    assert _within(run) == ("raised", "ConfigurationError", said)


def test_errors_name_the_users_files_not_the_loaded_bytes(certs, tmp_path):
    encrypted = certs.encrypted_key(b"hush")
    settings = serve_tls.TLSSettings(port=1, cert_file=certs.cert, key_file=certs.other_key)
    with pytest.raises(ConfigurationError) as mismatch:
        serve_tls.configure(settings)
    assert f"--tls-key-file {certs.other_key} does not match" in str(mismatch.value)
    for password, says in ((None, "is encrypted; give its passphrase"), ("wrong", "wrong passphrase")):
        settings = serve_tls.TLSSettings(
            port=1, cert_file=certs.cert, key_file=encrypted, key_file_pass=password
        )
        with pytest.raises(ConfigurationError, match=says) as refused:
            serve_tls.configure(settings)
        assert encrypted in str(refused.value)
    with pytest.raises(ConfigurationError) as wrong:
        http_tls.server_context(certs.cert, encrypted, "wrong")
    assert f"{encrypted} (--ssl-keyfile) with the password" in str(wrong.value)
    with pytest.raises(ConfigurationError) as other:
        http_tls.server_context(certs.cert, certs.other_key)
    assert f"{certs.other_key} (--ssl-keyfile) is not the key of the certificate in {certs.cert}" in str(
        other.value
    )
    for refusal in (mismatch, wrong, other):
        assert "/proc/self/fd" not in str(refusal.value) and "kvb-tls" not in str(refusal.value)
    # and the passphrase, the key inside the certificate's file, still load
    assert serve_tls.configure(
        serve_tls.TLSSettings(port=1, cert_file=certs.cert, key_file=encrypted, key_file_pass="hush")
    )
    assert http_tls.server_context(certs.cert, encrypted, "hush") is not None
    assert http_tls.server_context(certs.both) is not None


class _Seen(ssl.SSLContext):
    """An SSL context that notes the paths it was given to load, and what they were then."""

    seen: list[tuple[str, int, bool]]

    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        for path in (certfile, keyfile):
            if path is not None:
                where = os.path.dirname(path)
                self.seen.append((path, stat.S_IMODE(os.stat(where).st_mode), os.path.exists(path)))
        super().load_cert_chain(certfile, keyfile, password)


def _context() -> _Seen:
    context = _Seen(ssl.PROTOCOL_TLS_SERVER)
    context.seen = []
    return context


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd_create is Linux's")
def test_on_linux_the_bytes_go_through_a_memfd(certs):
    context = _context()
    before = set(os.listdir("/proc/self/fd"))
    tlsload.load_cert_chain(context, Path(certs.cert).read_bytes(), Path(certs.key).read_bytes(), None)
    assert [p.startswith("/proc/self/fd/") for p, _, _ in context.seen] == [True, True]
    assert set(os.listdir("/proc/self/fd")) == before  # (closed once loaded)


def test_elsewhere_through_a_private_directory_removed_once_loaded(certs, tmp_path, monkeypatch):
    monkeypatch.delattr(os, "memfd_create", raising=False)  # (as on macOS)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cert, key = Path(certs.cert).read_bytes(), Path(certs.key).read_bytes()
    context = _context()
    tlsload.load_cert_chain(context, cert, key, None)
    assert [(mode, there) for _, mode, there in context.seen] == [(0o700, True), (0o700, True)]
    assert all(p.startswith(str(tmp_path)) for p, _, _ in context.seen)
    assert os.listdir(tmp_path) == []  # removed
    with pytest.raises(ssl.SSLError):  # a key that does not match: removed all the same
        tlsload.load_cert_chain(_context(), cert, Path(certs.other_key).read_bytes(), None)
    assert os.listdir(tmp_path) == []
    tlsload.load_cert_chain(
        _context(), Path(certs.both).read_bytes(), None, None
    )  # (the key in the cert's file)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd_create is Linux's")
def test_a_memfd_the_system_refuses_falls_back_to_a_private_directory(certs, tmp_path, monkeypatch):
    def refused(name: str, flags: int = 0) -> int:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # (a sandbox's seccomp filter)

    monkeypatch.setattr(os, "memfd_create", refused)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    context = _context()
    tlsload.load_cert_chain(context, Path(certs.cert).read_bytes(), Path(certs.key).read_bytes(), None)
    assert [(mode, there) for _, mode, there in context.seen] == [(0o700, True), (0o700, True)]
    assert os.listdir(tmp_path) == []


def test_a_ca_file_loads_as_openssl_reads_a_file(certs):
    ca = Path(certs.ca).read_bytes()
    for data in (b"Subject: \xe9t\xe9 \xc3\xa9\n" + ca + b"\ntrailing\n", ca):  # (any text skipped)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tlsload.load_ca(context, data)
        assert context.cert_store_stats()["x509_ca"] == 1
        assert tlsload.holds_certificates(data)
    for data in (b"", b"no certificate\n", Path(certs.key).read_bytes()):
        with pytest.raises(ssl.SSLError) as raised:
            tlsload.load_ca(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), data)
        assert raised.value.reason == tlsload.NO_CERTIFICATE
        assert not tlsload.holds_certificates(data)
    damaged = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert not tlsload.holds_certificates(ca + damaged)
