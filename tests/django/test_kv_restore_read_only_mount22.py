"""``manage.py kv_restore --replace`` on a cache whose filesystem is mounted read-only says so.

It said "kv_restore may not use the cache at PATH as user root: permission denied on PARENT ... run it
as the site's user (root, who owns LOCATION)", advice that cannot help; it now says the filesystem is
mounted read-only, as kv_merge does, and what --replace needs. A real read-only mount: a tmpfs
mounted for the test (root only; skipped elsewhere).
"""

from __future__ import annotations

import os
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from kv_backend import DB
from kv_backend.backup import backup

KV = "kv_backend_django.cache.KVCache"
pytestmark = pytest.mark.xdist_group("mounts")


@pytest.fixture
def read_only_volume(tmp_path):
    where = tmp_path / "volume"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        with DB(str(where / "cache")) as db:
            db.put(b"old", b"1")
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_kv_restore_replace_says_the_filesystem_is_read_only(tmp_path, read_only_volume):
    with DB(str(tmp_path / "src")) as db:
        db.put(b"k", b"v")
        backup(db, str(tmp_path / "bk"), name="b1")
    location = read_only_volume / "cache"
    caches = {"default": {"BACKEND": KV, "LOCATION": str(location)}}
    with override_settings(CACHES=caches), pytest.raises(CommandError) as info:
        call_command("kv_restore", str(tmp_path / "bk"), "--replace", "-v", "0", stdout=StringIO())
    msg = str(info.value)
    assert msg.startswith(
        f"kv_restore cannot change the cache at {location}: its filesystem is mounted read-only, and "
        f"kv_restore needs write permission on LOCATION and on its parent directory {read_only_volume}"
    ), msg
    assert "permission denied" not in msg and "run it as" not in msg, msg
    with DB(str(location), read_only=True) as db:
        assert db.get(b"old") == b"1"
