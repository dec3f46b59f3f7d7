"""manage.py kv_merge from cron (umask 022) on a 2770 LOCATION shared by a group's workers (the site
as one user, Celery as another): the files the merge added, the next active data file among them,
were 0644, and the other user's workers could no longer write the store. They now get the read and
write bits LOCATION grants, whatever the umask, and no more than it (and the format file) grant."""

from __future__ import annotations

import os
import stat
from io import StringIO

from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

KV = "kv_backend_django.cache.KVCache"


def _modes(location) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in location.iterdir()}


def _merge_under_umask(location, location_mode: int, umask: int) -> tuple[dict[str, int], dict[str, int]]:
    """A cache made at ``location`` (of ``location_mode``) by workers with umask 002, then merged by
    kv_merge under ``umask``: (modes before, modes of the files the merge added)."""
    from kv_backend_django.cache import close_all

    location.mkdir()
    os.chmod(location, location_mode)
    old = os.umask(0o002)
    try:
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
            for i in range(200):
                caches["c"].set(f"k{i % 20}", i, None)
            close_all()
            before = _modes(location)
            os.umask(umask)
            out = StringIO()
            call_command("kv_merge", "--cache", "c", stdout=out)
            assert "Merge finished" in out.getvalue()
            assert os.umask(umask) == umask  # the command's own umask is gone
            os.umask(0o002)
            assert caches["c"].get("k19") == 199
            close_all()
    finally:
        os.umask(old)
    after = _modes(location)
    added = {n: m for n, m in after.items() if n not in before}
    assert any(n.endswith(".hint") for n in added) and sum(n.endswith(".data") for n in added) >= 2
    return before, added


def test_kv_merge_under_cron_umask_gives_a_group_store_group_writable_files(tmp_path):
    before, added = _merge_under_umask(tmp_path / "shared", 0o2770, 0o022)
    assert before["KVB_FORMAT"] & 0o060 == 0o060
    assert set(added.values()) == {0o660}, {n: oct(m) for n, m in added.items()}


def test_kv_merge_gives_no_more_than_location_grants(tmp_path):
    """A private LOCATION (0700) stays private whatever the umask of kv_merge (000 here)."""
    _, added = _merge_under_umask(tmp_path / "private", 0o700, 0o000)
    assert set(added.values()) == {0o600}, {n: oct(m) for n, m in added.items()}
