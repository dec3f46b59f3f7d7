"""kv_backend as pip installs it: what a bare install (no extra) says of what needs an extra, and
what the built wheel holds (packages, markers, metadata, entry points)."""

from __future__ import annotations

import os
import sys

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)


def _without(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make ``packages`` unimportable (as in an install without the extra that brings them) and
    forget kv_backend.http's modules, so that the next import of it runs again. All of it is undone
    at the test's end: the modules, and kv_backend's ``http`` attribute, which a new import replaces
    (other tests reach kv_backend.http through it)."""
    import kv_backend.http

    monkeypatch.setattr(sys.modules["kv_backend"], "http", kv_backend.http)
    for name in packages:
        monkeypatch.setitem(sys.modules, name, None)
    for name in list(sys.modules):
        if name == "kv_backend.http" or name.startswith("kv_backend.http."):
            monkeypatch.delitem(sys.modules, name)


def test_kvb_http_without_starlette_names_the_extra_not_a_traceback(monkeypatch, capsys, store_path):
    """`pip install kv-backend` (no [server]) then `kvb http`: a ModuleNotFoundError traceback for
    starlette. Now one line that says which extra to install, exit 2, as other configuration errors."""
    _without(monkeypatch, "starlette")
    code, out, err = run(capsys, "http", "--dir", store_path)
    assert (code, out) == (2, "")
    assert err == (
        "kvb: kv_backend.http (kvb http) needs the starlette package: pip install 'kv-backend[server]'\n"
    )
    assert not os.path.exists(store_path)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'kv-backend\[server\]'") as info:
        import kv_backend.http  # noqa: F401
    assert info.value.name == "starlette"


def test_kvb_http_without_uvicorn_names_the_extra(monkeypatch, capsys, store_path):
    _without(monkeypatch, "uvicorn")
    code, out, err = run(capsys, "http", "--dir", store_path)
    assert (code, out) == (2, "")
    assert err == (
        "kvb: serving kv_backend.http (kvb http) needs the uvicorn package: "
        "pip install 'kv-backend[server]'\n"
    )
    assert not os.path.exists(store_path)
