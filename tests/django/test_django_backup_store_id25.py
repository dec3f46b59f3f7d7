"""manage.py kv_backup of two caches (two stores) to one URL: the second is refused with a CommandError
that names the other store, and nothing is written to the URL."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings


def test_kv_backup_of_a_second_cache_to_one_url_is_refused(tmp_path):
    pytest.importorskip("kv_backend.backup")
    url = str(tmp_path / "backups")
    conf = {
        alias: {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(tmp_path / alias)}
        for alias in ("one", "two")
    }
    with override_settings(CACHES=conf):
        caches["one"].set("k", "1")
        caches["two"].set("k", "2")
        call_command("kv_backup", url, "--cache", "one", "--name", "b1", stdout=StringIO())
        before = sorted(os.path.join(d, f) for d, _dirs, files in os.walk(url) for f in files)
        with pytest.raises(CommandError, match="holds the backups of another store"):
            call_command("kv_backup", url, "--cache", "two", "--name", "b2", stdout=StringIO())
        after = sorted(os.path.join(d, f) for d, _dirs, files in os.walk(url) for f in files)
        assert after == before
        call_command("kv_backup", url, "--cache", "one", "--name", "b3", stdout=StringIO())
