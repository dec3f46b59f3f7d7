"""kv_restore of a cache whose LOCATION lies inside another store's directory is refused.

Such a LOCATION (sessions in the directory of the default cache, check W003) put the restored store,
and the staging directory of ``--replace``, among that store's files.
"""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings

KV = "kv_backend_django.cache.KVCache"


def _listing(path):
    return sorted((os.path.relpath(r, path), sorted(d), sorted(f)) for r, d, f in os.walk(path))


@pytest.mark.parametrize("replace", [False, True])
def test_kv_restore_of_a_location_inside_another_store_is_refused(tmp_path, replace):
    pytest.importorskip("kv_backend.backup")
    outer = tmp_path / "site"
    inner = outer / "sessions"
    url = (tmp_path / "bk").as_uri()
    conf = {
        "main": {"BACKEND": KV, "LOCATION": str(outer)},
        "sessions": {"BACKEND": KV, "LOCATION": str(inner)},
    }
    with override_settings(CACHES=conf):
        caches["main"].set("m", "main value")
        call_command("kv_backup", url, "--cache", "main", "--name", "b", stdout=StringIO())
        if replace:  # the nested cache in use (the engine allows it): --replace would stage beside it
            caches["sessions"].set("s", "session")
            caches["sessions"].close()
        from kv_backend_django.cache import close_all

        close_all()
        before = _listing(outer)
        args = ["kv_restore", url, "--cache", "sessions"] + (["--replace"] if replace else [])
        with pytest.raises(CommandError) as info:
            call_command(*args, stdout=StringIO())
        msg = str(info.value)
        assert f"lies inside the kv_backend store {outer}" in msg and "outside any store" in msg, msg
        assert _listing(outer) == before  # nothing made inside the outer store, nothing replaced
        assert caches["main"].get("m") == "main value"
        if replace:
            assert caches["sessions"].get("s") == "session"
        # Side by side, the same backup restores.
        conf["beside"] = {"BACKEND": KV, "LOCATION": str(tmp_path / "sessions")}
        with override_settings(CACHES=conf):
            call_command("kv_restore", url, "--cache", "beside", stdout=StringIO())
            assert caches["beside"].get("m") == "main value"
