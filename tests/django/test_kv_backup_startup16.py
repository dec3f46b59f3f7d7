"""manage.py kv_backup opened the cache's store before copying it, so a store never merged (no hint
files) had its whole log replayed in the manage.py process, into a key directory the backup never
used. It now backs up LOCATION as kvb backup does (kv_backend.backup.backup_store): the file list and
the active file's published end, taken under the write lock, without opening the store."""

from __future__ import annotations

import os
import stat
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

from kv_backend import DB
from kv_backend.files import LOCK_FILE, STATE_FILE
from kv_backend.keydir import KeyDir

pytest.importorskip("kv_backend.backup")

KV = "kv_backend_django.cache.KVCache"


def _indexed_records(monkeypatch) -> list[int]:
    """Count the records indexed into any key directory of this process from now on (a replay's)."""
    counts: list[int] = []
    real = KeyDir.apply

    def apply(self, file_index, base, entries):
        counts.append(len(entries))
        return real(self, file_index, base, entries)

    monkeypatch.setattr(KeyDir, "apply", apply)
    return counts


def _restored(url: str, dest: str) -> dict[bytes, bytes]:
    from kv_backend.backup import restore

    restore(url, dest)
    with DB(dest, read_only=True) as db:
        return {k: db.get(k) for k in db}


def test_kv_backup_of_an_unmerged_cache_replays_nothing(tmp_path, monkeypatch):
    """300 keys never merged: the backup indexed every record of the log (a key directory built for
    nothing) before it copied a byte; it now indexes none, and the copy holds every key."""
    from kv_backend_django.cache import close_all

    location = tmp_path / "cache"
    url = (tmp_path / "backups").as_uri()
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
        caches["c"].set_many({f"k{i}": "v" * 20 for i in range(300)}, None)
        close_all()  # as in a fresh manage.py process
        assert not [n for n in os.listdir(location) if n.endswith(".hint")]
        indexed = _indexed_records(monkeypatch)
        out = StringIO()
        call_command("kv_backup", url, "--cache", "c", "--name", "nightly", stdout=out)
        assert "Backup finished" in out.getvalue()
        assert indexed == []
        monkeypatch.undo()
        with DB(str(location), read_only=True) as db:
            before = set(db.keys())
    assert len(before) == 300
    assert set(_restored(url, str(tmp_path / "copy"))) == before


def test_kv_backup_holds_what_the_cache_open_in_this_process_acknowledged(tmp_path):
    """call_command("kv_backup") in a process whose cache is open and written to (a task, a shell):
    the backup takes the store's lock beside the open store's, and copies every write acknowledged
    before it; writes after it go on."""
    location = tmp_path / "cache"
    url = (tmp_path / "backups").as_uri()
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
        cache = caches["c"]
        for i in range(50):
            cache.set(f"k{i}", i, None)
        cache.delete("k0")
        call_command("kv_backup", url, "--cache", "c", "-v", "0", stdout=StringIO())
        cache.set("after", 1, None)
        assert cache.get("k49") == 49 and cache.get("after") == 1
    copy = tmp_path / "copy"
    from kv_backend.backup import restore

    restore(url, str(copy))
    with override_settings(CACHES={"copy": {"BACKEND": KV, "LOCATION": str(copy)}}):
        got = caches["copy"].get_many([f"k{i}" for i in range(50)] + ["after"])
    assert got == {f"k{i}": i for i in range(1, 50)}


def test_kv_backup_refuses_the_storage_options_kvb_backup_refuses(tmp_path):
    """backup_store takes the store's path: a storage option named path would collide with it (a
    TypeError traceback), and db, backup()'s, means nothing to fsspec either: both refused, as by
    kvb backup, before anything is made."""
    from django.core.management.base import CommandError

    location = tmp_path / "cache"
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
        caches["c"].set("k", 1)
        for key in ("path", "db"):
            with pytest.raises(CommandError, match=f"'{key}' is set by the command itself"):
                call_command(
                    "kv_backup", (tmp_path / "bk").as_uri(), "--cache", "c", "--storage-option", f"{key}=x"
                )
    assert not (tmp_path / "bk").exists()


def test_kv_backup_through_a_chained_local_url_is_no_more_open_than_the_store(tmp_path):
    """A URL that reaches the local disk through another fsspec filesystem (simplecache::file://)
    is not a local target to the backup, which creates its files through fsspec, under the umask:
    the command's own umask keeps them from those the cache's 0700 LOCATION keeps out."""
    location = tmp_path / "cache"
    backups = tmp_path / "backups"
    old_umask = os.umask(0o022)
    try:
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
            caches["c"].set("session", "secret")
            assert stat.S_IMODE(os.stat(location).st_mode) == 0o700
            call_command("kv_backup", f"simplecache::{backups.as_uri()}", "--cache", "c", stdout=StringIO())
        assert os.umask(0o022) == 0o022  # the command restores the umask
    finally:
        os.umask(old_umask)
    made = [backups, *backups.rglob("*")]
    assert any(p.name.endswith(".json") for p in made) and any(".data" in p.name for p in made)
    assert {oct(stat.S_IMODE(os.stat(p).st_mode) & 0o077) for p in made} == {"0o0"}, made


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="drops to the nobody user")
def test_kv_backup_by_a_reader_of_a_store_without_lock_or_state_page():
    """A store copied by hand (no LOCK file, no state page) backed up by a user who may read it but
    not write it: nothing can be created in it, nothing is, and the copy holds every key."""
    # (imported here: the child, nobody, may not read the standard library or site-packages, and the
    # backup reads the boot id as ascii)
    import encodings.ascii  # noqa: F401
    import shutil
    import tempfile

    import fsspec.implementations.local  # noqa: F401
    from helpers import run_as_nobody
    from kv_backend_django.cache import close_all

    base = tempfile.mkdtemp(prefix="kvb-django-reader-")  # (pytest's tmp_path: nobody may not search it)
    try:
        os.chmod(base, 0o755)
        location = os.path.join(base, "cache")
        backups = os.path.join(base, "backups")
        os.mkdir(backups)
        os.chown(backups, 65534, 65534)
        url = "file://" + backups
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):
            caches["c"].set_many({f"k{i}": i for i in range(20)}, None)
            close_all()
            for name in (LOCK_FILE, STATE_FILE):
                if os.path.exists(os.path.join(location, name)):
                    os.unlink(os.path.join(location, name))
            os.chmod(location, 0o755)
            files = sorted(os.listdir(location))

            def backup() -> str:
                out = StringIO()
                call_command("kv_backup", url, "--cache", "c", stdout=out)
                return out.getvalue()

            assert "Backup finished" in run_as_nobody(backup)
        assert sorted(os.listdir(location)) == files
        assert len(_restored(url, os.path.join(base, "copy"))) == 20
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="drops to the nobody user")
def test_kv_backup_by_a_user_who_may_not_read_a_file_of_the_store_says_what_it_needs():
    """The store is no longer opened, but its files are still read (the format file, the lock and
    state page the snapshot is taken under, the data files): one this user may not read is the
    operator's permission error, naming the file, and nothing is written to the backup URL."""
    import encodings.ascii  # noqa: F401  (the child, nobody, may not read the standard library)
    import shutil
    import tempfile

    import fsspec.implementations.local  # noqa: F401  (nor site-packages)
    from django.core.management.base import CommandError
    from helpers import run_as_nobody
    from kv_backend_django.cache import close_all

    base = tempfile.mkdtemp(prefix="kvb-django-unreadable-")
    try:
        os.chmod(base, 0o755)
        location = os.path.join(base, "cache")
        backups = os.path.join(base, "backups")
        os.mkdir(backups)
        os.chown(backups, 65534, 65534)
        with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):
            caches["c"].set("k", 1)
            close_all()
            os.chmod(location, 0o755)
            names = sorted(os.listdir(location))
            assert {LOCK_FILE, STATE_FILE} <= set(names) and any(n.endswith(".data") for n in names)

            def backup() -> str:
                try:
                    call_command("kv_backup", "file://" + backups, "--cache", "c", stdout=StringIO())
                except CommandError as exc:
                    return str(exc)
                return "no error"

            for name in names:
                for other in names:
                    os.chmod(os.path.join(location, other), 0o600 if other == name else 0o644)
                said = run_as_nobody(backup)
                denied = f"permission denied on {os.path.join(location, name)}. It needs read and search"
                assert said.startswith(f"kv_backup may not use the cache at {location} as user nobody: ")
                assert denied in said, said
                assert os.listdir(backups) == []
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)
