"""sudo manage.py kv_merge (or root's crontab) on a cache of the site's user: root may write every
file, so the merge ran, and left its merged data and hint files, the merge lock and the next active
data file root's. The site's workers could then no longer open the store (permission denied on the
active data file). The files root adds to a store are now given the owner of its files (the engine
does it, for kvb's commands too: tests/test_root_commands16.py), so the merge runs and the site's
workers go on."""

from __future__ import annotations

import os
import shutil
import tempfile
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
    reason="runs as root and drops to the nobody user",
)

KV = "kv_backend_django.cache.KVCache"
NOBODY = 65534


def test_kv_merge_as_root_on_a_cache_the_site_user_owns_leaves_the_site_users_files():
    from helpers import run_as_nobody
    from kv_backend_django.cache import close_all

    base = tempfile.mkdtemp(prefix="kvb-django-root-merge-")
    try:
        os.chmod(base, 0o755)
        location = os.path.join(base, "cache")
        os.mkdir(location, 0o700)
        os.chown(location, NOBODY, NOBODY)
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):

            def site_writes(first: int) -> dict[str, int]:
                cache = caches["c"]
                for i in range(first, first + 200):
                    cache.set(f"k{i % 20}", i, None)  # 180 overwritten records: a merge has work
                got = cache.get_many(["k0", "k19"])
                close_all()
                return got

            run_as_nobody(lambda: site_writes(0))
            out = StringIO()
            call_command("kv_merge", "--cache", "c", stdout=out)  # as root
            close_all()
            assert "Merge finished" in out.getvalue()
            assert any(n.endswith(".hint") for n in os.listdir(location))
            assert {os.stat(os.path.join(location, n)).st_uid for n in os.listdir(location)} == {NOBODY}
            # The site's workers go on writing (the new active data file the merge made too).
            assert run_as_nobody(lambda: site_writes(200)) == {"k0": 380, "k19": 399}
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)


def test_kv_merge_as_root_on_a_store_of_root_files_merges():
    """A site that runs as root merges as before, also where another uid owns LOCATION itself (a
    container's volume, where the store the site makes is that uid's, as its later files)."""
    from kv_backend_django.cache import close_all

    base = tempfile.mkdtemp(prefix="kvb-django-root-merge-")
    try:
        for owner in (0, NOBODY):
            location = os.path.join(base, f"cache{owner}")
            os.mkdir(location)
            os.chown(location, owner, owner)
            with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):
                for i in range(100):
                    caches["c"].set(f"k{i % 10}", i + owner, None)
                close_all()
                out = StringIO()
                call_command("kv_merge", "--cache", "c", stdout=out)
                assert "Merge finished" in out.getvalue()
                assert caches["c"].get("k9") == 99 + owner
                close_all()
            assert {os.stat(os.path.join(location, n)).st_uid for n in os.listdir(location)} == {owner}
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)
