"""The management commands on a cache copied without its LOCK file (rsync excluding it, a restore by
hand), run under umask 000 (a container's default): the LOCK their open made was 0666 in a store of
0600 files (kv_stats, kv_backup), where any local user could hold the store's write lock and stop
the site's workers. It gets the bits of the store's format file, as every file a process adds."""

from __future__ import annotations

import os
import stat
from io import StringIO

import pytest
from conftest import KV
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings


@pytest.mark.parametrize(
    ("command", "args"),
    [("kv_stats", ()), ("kv_backup", ("{backups}",)), ("kv_merge", ())],
)
def test_a_command_makes_a_missing_lock_with_the_store_s_bits_under_umask_000(tmp_path, command, args):
    from kv_backend_django.cache import close_all

    location = tmp_path / "cache"
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
        caches["c"].set("k", 1)
        close_all()
        for path in location.iterdir():
            path.chmod(0o600)
        (location / "LOCK").unlink()
        old = os.umask(0)
        try:
            given = [a.format(backups=f"file://{tmp_path / 'backups'}") for a in args]
            call_command(command, *given, "--cache", "c", stdout=StringIO())
        finally:
            os.umask(old)
        assert stat.S_IMODE((location / "LOCK").stat().st_mode) == 0o600
        assert caches["c"].get("k") == 1
        close_all()
