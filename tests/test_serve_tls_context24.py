"""kvb serve builds its TLS context once: the one that checked the options (a certificate or key
that cannot be loaded is a usage error, exit 2, before the store opens) is the one served with."""

from __future__ import annotations

import os

import pytest
from helpers import free_port

from kv_backend import cli
from kv_backend.server import resp, tls

pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")
from tls_helpers import Certs


def test_serve_builds_its_tls_context_once_and_serves_with_it(tmp_path, monkeypatch):
    certs = Certs(str(tmp_path))
    built: list[object] = []
    served: list[object] = []
    configure = tls.configure

    def counting(settings):
        built.append(configure(settings))
        return built[-1]

    def run(coroutine, loop_factory):
        served.append(coroutine.cr_frame.f_locals["server"].tls_context)
        coroutine.close()

    monkeypatch.setattr(tls, "configure", counting)
    monkeypatch.setattr(resp, "_run_on_new_loop", run)
    store = str(tmp_path / "store")
    argv = ["serve", "--dir", store, "--port", "0", "--tls-port", str(free_port())]
    assert cli.main([*argv, "--tls-cert-file", certs.cert, "--tls-key-file", certs.key]) == 0
    assert len(built) == 1 and served == built


def test_serve_refuses_a_key_that_does_not_fit_before_the_store_opens(tmp_path, capsys):
    certs = Certs(str(tmp_path))
    store = str(tmp_path / "store")
    argv = [
        "serve",
        "--dir",
        store,
        "--port",
        "0",
        "--tls-port",
        str(free_port()),
        "--tls-cert-file",
        certs.cert,
    ]
    with pytest.raises(SystemExit) as stopped:
        cli.main([*argv, "--tls-key-file", certs.other_key])
    assert stopped.value.code == 2
    assert "kvb serve: error:" in capsys.readouterr().err
    assert not os.path.exists(store)
