"""sudo manage.py kv_merge (or root's crontab) on a cache of the site's user: root may write every
file, so the merge ran, and left its merged data and hint files, the merge lock and the next active
data file root's. The site's workers could then no longer open the store (permission denied on the
active data file). kv_merge now refuses where the store's files are another user's, naming that user
to run it as, and changes nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
    reason="runs as root and drops to the nobody user",
)

KV = "kv_backend_django.cache.KVCache"
NOBODY = 65534


def test_kv_merge_as_root_on_a_cache_the_site_user_owns_refuses_and_changes_nothing():
    from helpers import run_as_nobody
    from kv_backend_django.cache import close_all

    base = tempfile.mkdtemp(prefix="kvb-django-root-merge-")
    try:
        os.chmod(base, 0o755)
        location = os.path.join(base, "cache")
        os.mkdir(location, 0o700)
        os.chown(location, NOBODY, NOBODY)
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):

            def site_writes(first: int) -> int:
                cache = caches["c"]
                for i in range(first, first + 200):
                    cache.set(f"k{i % 20}", i, None)  # 180 overwritten records: a merge has work
                close_all()
                return len(os.listdir(location))

            run_as_nobody(lambda: site_writes(0))
            before = {n: os.stat(os.path.join(location, n)).st_mtime_ns for n in os.listdir(location)}
            with pytest.raises(CommandError, match=r"as root, but its files are nobody's") as caught:
                call_command("kv_merge", "--cache", "c", stdout=StringIO())
            assert "sudo -u nobody python manage.py kv_merge" in str(caught.value)
            assert {n: os.stat(os.path.join(location, n)).st_mtime_ns for n in os.listdir(location)} == before
            assert {os.stat(os.path.join(location, n)).st_uid for n in before} == {NOBODY}

            def merge_then_write() -> str:
                out = StringIO()
                call_command("kv_merge", "--cache", "c", stdout=out)
                site_writes(200)
                return out.getvalue()

            assert "Merge finished" in run_as_nobody(merge_then_write)  # as the owner, it runs
            assert any(n.endswith(".hint") for n in os.listdir(location))
            assert caches["c"].get_many(["k0", "k19"]) == {"k0": 380, "k19": 399}
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)


def test_kv_merge_as_root_on_a_store_of_root_files_merges():
    """A site that runs as root merges as before, also where another uid owns LOCATION itself (a
    container's volume): the store's files are root's, and so are its workers."""
    from kv_backend_django.cache import close_all

    base = tempfile.mkdtemp(prefix="kvb-django-root-merge-")
    try:
        location = os.path.join(base, "cache")
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):
            for owner in (0, NOBODY):
                os.makedirs(location, exist_ok=True)
                os.chown(location, owner, owner)
                for i in range(100):
                    caches["c"].set(f"k{i % 10}", i + owner, None)
                close_all()
                out = StringIO()
                call_command("kv_merge", "--cache", "c", stdout=out)
                assert "Merge finished" in out.getvalue()
                assert caches["c"].get("k9") == 99 + owner
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)
