"""kv_restore --replace: defects found by the twelfth backup review (a swap interrupted midway)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

from kv_backend.files import exchange_paths


@contextmanager
def _backed_up_cache(tmp_path):
    """The cache alias "swap" at tmp_path/cache, backed up (key "k": "backed up") to
    tmp_path/backups as backup "b" and then changed ("k": "newer"): (LOCATION, backup URL)."""
    location = str(tmp_path / "cache")
    url = (tmp_path / "backups").as_uri()
    conf = {"swap": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": location}}
    with override_settings(CACHES=conf):
        caches["swap"].set("k", "backed up")
        call_command("kv_backup", url, "--cache", "swap", "--name", "b", stdout=StringIO())
        caches["swap"].set("k", "newer")
        yield location, url


class Killed(BaseException):
    """Stands for SIGKILL: no handler of the command runs, nothing is cleaned up."""


def test_kv_restore_replace_killed_mid_swap_leaves_a_store_at_location(tmp_path, monkeypatch):
    """--replace renamed LOCATION aside, then the restored store into it: killed between the two, it
    left no store at LOCATION (the next worker started a new, empty cache, the old store sat beside it
    under another name). The swap is one exchange where the system has one, so LOCATION holds the old
    store or the restored one at every moment."""
    pytest.importorskip("kv_backend.backup")
    probe_a, probe_b = tmp_path / "probe-a", tmp_path / "probe-b"
    probe_a.mkdir()
    probe_b.mkdir()
    if not exchange_paths(str(probe_a), str(probe_b)):
        pytest.skip("this system cannot exchange two paths in one step")
    with _backed_up_cache(tmp_path) as (location, url):
        real_rename = os.rename

        def rename(src, dst, *args, **kwargs):
            real_rename(src, dst, *args, **kwargs)
            if os.fspath(src) == location:  # the old store moved aside: die before the next step
                raise Killed

        monkeypatch.setattr(os, "rename", rename)
        try:
            call_command("kv_restore", url, "--cache", "swap", "--replace", stdout=StringIO())
        except Killed:
            pass
        monkeypatch.undo()
        assert os.path.isfile(os.path.join(location, "KVB_FORMAT")), os.listdir(tmp_path)
        assert caches["swap"].get("k") == "backed up"
    assert sorted(os.listdir(tmp_path)) == ["backups", "cache", "probe-a", "probe-b"]


def test_kv_restore_replace_leaves_the_old_store_when_the_exchange_fails(tmp_path, monkeypatch):
    """The one-step swap fails (an I/O error): the old store is untouched and in place, the restored
    copy is removed, and the command says why in one line."""
    pytest.importorskip("kv_backend.backup")
    from django.core.management.base import CommandError

    with _backed_up_cache(tmp_path) as (_location, url):

        def failing(a, b):
            raise OSError(5, "Input/output error")

        monkeypatch.setattr("kv_backend_django.management.commands.kv_restore.exchange_paths", failing)
        with pytest.raises(CommandError, match=r"cannot move the restored store into .*Input/output"):
            call_command("kv_restore", url, "--cache", "swap", "--replace", stdout=StringIO())
        monkeypatch.undo()
        assert caches["swap"].get("k") == "newer"
    assert sorted(os.listdir(tmp_path)) == ["backups", "cache"]


def test_kv_backup_of_a_cache_with_damaged_records_fails(tmp_path):
    """kv_backup of a cache holding a damaged record said "Backup finished." and exited 0, while
    kv_restore refuses every such backup: a nightly cron job made unusable backups for as long as
    the damage stayed, unnoticed. Like kvb backup, it makes the copy but fails, saying what to do."""
    pytest.importorskip("kv_backend.backup")
    from django.core.management.base import CommandError
    from kv_backend_django.cache import close_all

    location = str(tmp_path / "cache")
    url = (tmp_path / "backups").as_uri()
    conf = {"c": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": location}}
    with override_settings(CACHES=conf):
        for i in range(20):
            caches["c"].set(f"k{i}", "x" * 50, None)
        close_all()
        with open(os.path.join(location, "0000000001-000.data"), "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 1]))
        out = StringIO()
        with pytest.raises(
            CommandError, match=r"holds 1 damaged record\(s\), and so does backup b, .*kvb salvage"
        ):
            call_command("kv_backup", url, "--cache", "c", "--name", "b", stdout=out)
        assert "Backup finished" not in out.getvalue()
        with pytest.raises(CommandError, match="damaged at offset"):
            call_command("kv_restore", url, "--cache", "c", "--replace", stdout=StringIO())


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root gives files away")
def test_kv_restore_replace_by_root_keeps_the_owner_of_location(tmp_path):
    """sudo manage.py kv_restore --replace over a cache owned by the site's user: the store was built
    in a new directory of root's and swapped in, so LOCATION and its files became root's and the
    site's workers could no longer open the cache. They keep the owner and group of LOCATION."""
    pytest.importorskip("kv_backend.backup")
    from kv_backend_django.cache import close_all

    location = tmp_path / "cache"
    url = (tmp_path / "backups").as_uri()
    conf = {"c": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    with override_settings(CACHES=conf):
        caches["c"].set("k", "backed up")
        call_command("kv_backup", url, "--cache", "c", stdout=StringIO())
        close_all()
        for path in [location, *location.iterdir()]:
            os.chown(path, 4321, 4322)
        call_command("kv_restore", url, "--cache", "c", "--replace", stdout=StringIO())
        owners = {(p.name, p.stat().st_uid, p.stat().st_gid) for p in [location, *location.iterdir()]}
        assert owners == {(p.name, 4321, 4322) for p in [location, *location.iterdir()]}, owners
        assert caches["c"].get("k") == "backed up"
