"""A cache used by root first (sudo manage.py shell, a root cron job calling cache.set) whose
LOCATION did not exist yet: the cache made it, and its missing parents, root's (0700), so the site's
workers, which run as the user owning the directory above, could not use the cache (permission
denied). Made by root under a directory of another user, they are that user's, as the store in them."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from django.core.cache import caches
from django.test import override_settings

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
    reason="runs as root and drops to the nobody user",
)

KV = "kv_backend_django.cache.KVCache"
NOBODY = 65534


@pytest.mark.parametrize("site_dir_owner", [NOBODY, 0])
def test_a_location_root_makes_under_the_site_users_directory_is_the_site_users(site_dir_owner):
    from helpers import run_as_nobody
    from kv_backend_django.cache import close_all

    base = tempfile.mkdtemp(prefix="kvb-django-root-location-")
    try:
        os.chmod(base, 0o755)
        site = os.path.join(base, "srv-app")
        os.mkdir(site, 0o755)
        os.chown(site, site_dir_owner, site_dir_owner)
        location = os.path.join(site, "var", "cache")
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):
            caches["c"].set("k", 1, None)  # as root
            close_all()
            owners = {
                os.stat(os.path.join(here, n)).st_uid
                for here, dirs, files in os.walk(os.path.join(site, "var"))
                for n in dirs + files
            } | {os.stat(os.path.join(site, "var")).st_uid}
            assert owners == {site_dir_owner}
            assert os.stat(location).st_mode & 0o777 == 0o700  # (private, as before)

            def site_uses_it() -> object:
                cache = caches["c"]
                cache.set("j", 2, None)
                got = cache.get("k")
                close_all()
                return got

            if site_dir_owner == NOBODY:
                assert run_as_nobody(site_uses_it) == 1
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)
