"""uvloop before 0.23 holds a transport's small writes until the loop's next turn, which a script that
runs long holds up: clients got no BUSY reply while it ran (make test-oldest, uvloop 0.19). The
server passes such a uvloop over for the standard loop, and refuses it when asked for it by name."""

from __future__ import annotations

import sys
import types

import pytest

from kv_backend.errors import ConfigurationError
from kv_backend.server import resp


def _fake_uvloop(monkeypatch: pytest.MonkeyPatch, version: str) -> object:
    module = types.ModuleType("uvloop")
    factory = object()
    module.__version__ = version  # type: ignore[attr-defined]
    module.new_event_loop = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uvloop", module)
    return factory


@pytest.mark.parametrize("version", ["0.19.0", "0.21.0", "0.22.1"])
def test_an_older_uvloop_is_passed_over_and_refused_by_name(monkeypatch, version):
    _fake_uvloop(monkeypatch, version)
    monkeypatch.delenv("KVB_EVENT_LOOP", raising=False)
    assert resp._loop_factory() is None  # the standard loop
    monkeypatch.setenv("KVB_EVENT_LOOP", "uvloop")
    with pytest.raises(ConfigurationError, match=rf"uvloop {version} is older than 0\.23.*upgrade it"):
        resp._loop_factory()


@pytest.mark.parametrize("version", ["0.23.0", "0.23.2", "0.24.0", "1.0.0rc1"])
def test_uvloop_023_and_newer_is_used(monkeypatch, version):
    factory = _fake_uvloop(monkeypatch, version)
    monkeypatch.delenv("KVB_EVENT_LOOP", raising=False)
    assert resp._loop_factory() is factory
    monkeypatch.setenv("KVB_EVENT_LOOP", "uvloop")
    assert resp._loop_factory() is factory
