"""KVB_HTTP_MAX_VALUE_SIZE (and create_app's max_value_size) of 0 is refused at start.

A limit of 0 was taken: the server then answered every PUT of a non-empty value and every
transaction with 413, a setting no one wants and a trap for whoever reads 0 as "no limit".
"""

from __future__ import annotations

import pytest

from kv_backend.errors import ConfigurationError
from kv_backend.http import app_from_env, create_app
from tests.helpers import run_kvb


def test_kvb_http_refuses_a_limit_of_zero(store_path, monkeypatch):
    monkeypatch.setenv("KVB_HTTP_MAX_VALUE_SIZE", "0")
    done = run_kvb("http", "--dir", store_path, "--port", "0", timeout=30)
    assert done.returncode == 2, done.stderr
    assert "KVB_HTTP_MAX_VALUE_SIZE must be a number of bytes >= 1, not 0" in done.stderr
    assert "64 MiB" in done.stderr


def test_app_from_env_and_create_app_refuse_zero(store_path, monkeypatch, db):
    monkeypatch.setenv("KVB_HTTP_DIR", store_path + "-env")
    monkeypatch.setenv("KVB_HTTP_MAX_VALUE_SIZE", "0")
    with pytest.raises(ConfigurationError, match="KVB_HTTP_MAX_VALUE_SIZE"):
        app_from_env()
    with pytest.raises(ConfigurationError, match=">= 1"):
        create_app(db, max_value_size=0)
    monkeypatch.setenv("KVB_HTTP_MAX_VALUE_SIZE", "1")
    app_from_env().state.db.close()  # one byte is a limit, if a strange one
