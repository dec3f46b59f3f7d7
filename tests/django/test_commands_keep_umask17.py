"""kv_merge, kv_restore and kv_backup changed the process's umask while they ran, to give their files
the modes LOCATION grants. The umask is one for the whole process: called with call_command from a
threaded server or a Celery task, they changed the mode of every file another thread created
meanwhile (0600 instead of 0644 under umask 022). Their files get those modes without it now (the
engine gives a file it adds the bits the store grants; restore sets its own); only a backup to a
filesystem that writes a local file itself (zip::file://), where nothing else can, still sets a
umask, one such block at a time."""

from __future__ import annotations

import os
import stat
import threading
import time
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from kv_backend_django._commands import umask_of
from kv_backend_django.cache import close_all
from kv_backend_django.management.commands.kv_backup import writes_local_files_itself

KV = "kv_backend_django.cache.KVCache"


@contextmanager
def process_umask(umask: int):
    old = os.umask(umask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class OtherThread:
    """Creates a file from another thread, as a request served meanwhile would, when ``create()`` is
    called (from inside a command's work), and keeps the mode it got."""

    def __init__(self, directory) -> None:
        self.directory = directory
        self.modes: list[int] = []

    def create(self) -> None:
        path = self.directory / f"made-by-another-thread-{len(self.modes)}"

        def run() -> None:
            with open(path, "w") as f:
                f.write("x")
            self.modes.append(_mode(path))

        t = threading.Thread(target=run)
        t.start()
        t.join()


def _hook(monkeypatch, module, name: str, before) -> None:
    """Call ``before()`` whenever ``module.name`` is called, then the original."""
    original = getattr(module, name)

    def hooked(*args, **kwargs):
        before()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, hooked)


def test_kv_merge_leaves_the_files_of_other_threads_alone(tmp_path, monkeypatch):
    import kv_backend.merge

    other = OtherThread(tmp_path)
    location = tmp_path / "cache"
    with process_umask(0o022), override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
        for i in range(100):
            caches["c"].set(f"k{i % 10}", i, None)
        close_all()
        before = set(os.listdir(location))
        _hook(monkeypatch, kv_backend.merge._Output, "finish", other.create)  # mid-merge
        call_command("kv_merge", "--cache", "c", stdout=StringIO())
        assert caches["c"].get("k9") == 99
        close_all()
    assert other.modes == [0o644]  # the umask of the process, not the one the merge's files follow
    added = set(os.listdir(location)) - before
    assert any(n.endswith(".hint") for n in added) and any(n.endswith(".data") for n in added)
    assert {_mode(location / n) for n in added} == {0o600}  # what the 0700 LOCATION grants


def test_kv_merge_gives_a_group_store_group_writable_files_without_the_umask(tmp_path, monkeypatch):
    """The files the merge adds still get what a 2770 LOCATION grants under cron's umask 022, and the
    merge lock made meanwhile too; the process's umask stays 022 throughout."""
    import kv_backend.merge

    location = tmp_path / "shared"
    location.mkdir()
    os.chmod(location, 0o2770)
    umasks = []
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}):
        with process_umask(0o002):
            for i in range(100):
                caches["c"].set(f"k{i % 10}", i, None)
            close_all()
        before = set(os.listdir(location))
        assert "MERGE.lock" not in before

        def read_umask() -> None:
            umasks.append(os.umask(0o022))
            os.umask(umasks[-1])

        _hook(monkeypatch, kv_backend.merge._Output, "finish", read_umask)
        with process_umask(0o022):
            call_command("kv_merge", "--cache", "c", stdout=StringIO())
        close_all()
    assert umasks and set(umasks) == {0o022}
    added = set(os.listdir(location)) - before
    assert "MERGE.lock" in added and any(n.endswith(".data") for n in added)
    assert {_mode(location / n) for n in added} == {0o660}, {n: oct(_mode(location / n)) for n in added}
    # A file the merge finds there is not one it adds: its mode stays as it is.
    os.chmod(location / "MERGE.lock", 0o640)
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}), process_umask(0o022):
        caches["c"].set("more", 1)
        call_command("kv_merge", "--cache", "c", stdout=StringIO())
        close_all()
    assert _mode(location / "MERGE.lock") == 0o640


@pytest.mark.parametrize("replace", [False, True], ids=["new-location", "replace"])
def test_kv_restore_leaves_the_files_of_other_threads_alone(tmp_path, monkeypatch, replace):
    import kv_backend.check

    other = OtherThread(tmp_path)
    url = (tmp_path / "backups").as_uri()
    source = tmp_path / "source"
    target = tmp_path / "cache" if replace else tmp_path / "new" / "cache"
    caches_conf = {
        "source": {"BACKEND": KV, "LOCATION": str(source)},
        "target": {"BACKEND": KV, "LOCATION": str(target)},
    }
    with process_umask(0o022), override_settings(CACHES=caches_conf):
        caches["source"].set("session", "secret")
        call_command("kv_backup", url, "--cache", "source", stdout=StringIO())
        if replace:
            caches["target"].set("old", 1)
            close_all()
        _hook(monkeypatch, kv_backend.check, "check_kept", other.create)  # restore() checks the copy
        args = ["--replace"] if replace else []
        call_command("kv_restore", url, "--cache", "target", *args, stdout=StringIO())
        assert other.modes == [0o644]
        assert caches["target"].get("session") == "secret"
        assert caches["target"].get("old") is None
        close_all()
    directories = [target] if replace else [tmp_path / "new", target]
    assert {_mode(d) for d in directories} == {0o700}
    assert {_mode(target / n) for n in os.listdir(target)} == {0o600}


def test_kv_restore_that_fails_leaves_no_directory_it_made(tmp_path):
    location = tmp_path / "new" / "deeper" / "cache"
    (tmp_path / "backups").mkdir()
    with (
        override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(location)}}),
        pytest.raises(CommandError, match=r"restore of .* failed"),
    ):
        call_command("kv_restore", (tmp_path / "backups").as_uri(), "--cache", "c", stdout=StringIO())
    assert sorted(os.listdir(tmp_path)) == ["backups"]


def test_kv_backup_to_a_local_directory_leaves_the_files_of_other_threads_alone(tmp_path, monkeypatch):
    import kv_backend.snapshot

    other = OtherThread(tmp_path)
    backups = tmp_path / "backups"
    conf = {"c": {"BACKEND": KV, "LOCATION": str(tmp_path / "c")}}
    with process_umask(0o022), override_settings(CACHES=conf):
        caches["c"].set("session", "secret")
        _hook(monkeypatch, kv_backend.snapshot, "store_snapshot", other.create)
        call_command("kv_backup", backups.as_uri(), "--cache", "c", stdout=StringIO())
    assert other.modes == [0o644]
    made = [backups, *backups.rglob("*")]
    assert any(".data" in p.name for p in made)
    assert {_mode(p) & 0o077 for p in made} == {0}  # nothing for the group and others, as LOCATION


@pytest.mark.parametrize(
    ("url", "storage", "expected"),
    [
        ("file:///backups/cache", {}, False),
        ("/backups/cache", {}, False),
        ("simplecache::file:///backups/cache", {}, False),
        ("dir::file:///backups", {}, False),
        ("s3://bucket/prefix", {}, False),
        ("simplecache::s3://bucket/prefix", {}, False),
        ("zip://cache::file:///backups/cache.zip", {}, True),
        ("zip://cache::/backups/cache.zip", {}, True),
        ("simplecache::zip://cache::file:///backups/cache.zip", {}, True),
        ("zip://cache", {"fo": "/backups/cache.zip"}, True),
        ("zip://cache", {"fo": "s3://bucket/cache.zip"}, False),
        ("zip://cache::s3://bucket/cache.zip", {}, False),
    ],
)
def test_which_backup_urls_have_fsspec_write_local_files(url, storage, expected):
    assert writes_local_files_itself(url, storage) is expected


def test_kv_backup_into_a_local_archive_is_refused_before_anything_is_written(tmp_path):
    """zip::file:// wrote its archive under the umask (the backup then failed: fsspec's zip filesystem
    cannot read back what it writes), a file holding the cache's data. A backup into an archive is
    now refused before the archive is opened (docs/backup.md): no file, the umask untouched."""
    archive = tmp_path / "cache.zip"
    conf = {"c": {"BACKEND": KV, "LOCATION": str(tmp_path / "c")}}
    with process_umask(0o022), override_settings(CACHES=conf):
        caches["c"].set("session", "secret")
        with pytest.raises(CommandError, match="archive"):
            call_command(
                "kv_backup",
                f"zip://cache::{archive.as_uri()}",
                "--cache",
                "c",
                "--storage-option",
                'zip={"mode": "w"}',
                stdout=StringIO(),
            )
        assert os.umask(0o022) == 0o022
    assert not archive.exists()


def test_umask_blocks_of_two_threads_do_not_interleave():
    """Interleaved, the second block saved the first one's umask and put it back last: the process
    kept 077 for good. One at a time, the umask is the process's own again at the end."""
    entered = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with umask_of(0o700):
            entered.set()
            time.sleep(0.2)  # the second thread tries to enter meanwhile

    def second() -> None:
        entered.wait(5)
        try:
            with umask_of(0o750):
                time.sleep(0.3)  # (interleaved: it would leave last, putting back the first one's umask)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with process_umask(0o022):
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors
        assert os.umask(0o022) == 0o022
