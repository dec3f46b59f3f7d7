"""The example site builds its kvb:// result backend URL so that any directory name survives it."""

from __future__ import annotations

import os
import runpy

from kv_backend_celery.backend import parse_url

SETTINGS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_project", "mysite", "settings.py"
)


def test_a_data_directory_with_url_characters_keeps_its_name(tmp_path, monkeypatch):
    var = tmp_path / "site 100%41 #1?"
    monkeypatch.setenv("KVB_EXAMPLE_VAR", str(var))
    settings = runpy.run_path(SETTINGS)
    assert parse_url(settings["CELERY_RESULT_BACKEND"])[0] == str(var / "celery-results")
