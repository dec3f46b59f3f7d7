"""kv_restore --replace called (call_command) from a process whose other threads use the cache (a
running site, a Celery worker) refuses, as it must: those threads open the store again at once. It
said the store was open "in another process" and to stop those, where there was none to find; it
names this process now, and what to do."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from kv_backend_django.cache import close_all

KV = "kv_backend_django.cache.KVCache"


def _use_from_another_thread(alias: str) -> None:
    t = threading.Thread(target=lambda: caches[alias].get("k"))
    t.start()
    t.join()


@pytest.mark.parametrize("when", ["before", "during"])
def test_kv_restore_names_this_process_when_its_threads_use_the_store(tmp_path, monkeypatch, when):
    pytest.importorskip("kv_backend.backup")
    import kv_backend_django.management.commands.kv_restore as command

    import kv_backend.check

    url = (tmp_path / "backups").as_uri()
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(tmp_path / "c")}}):
        caches["c"].set("k", 1)
        call_command("kv_backup", url, "--cache", "c", stdout=StringIO())
        if when == "before":  # (a thread opens it again right after the command closed it)
            close_store = command.close_store
            monkeypatch.setattr(
                command, "close_store", lambda path: (close_store(path), _use_from_another_thread("c"))
            )
        else:  # while the backup is restored (whose store restore() checks with check_kept)
            check = kv_backend.check.check_kept
            monkeypatch.setattr(
                kv_backend.check,
                "check_kept",
                lambda *a, **k: (_use_from_another_thread("c"), check(*a, **k))[1],
            )
        with pytest.raises(
            CommandError, match=r"open(ed by| in) this process \(another of its threads"
        ) as info:
            call_command("kv_restore", url, "--cache", "c", "--replace", stdout=StringIO())
        assert "manage.py kv_restore in a shell" in str(info.value)
        assert caches["c"].get("k") == 1
        close_all()
    assert not [p for p in tmp_path.iterdir() if ".restoring-" in p.name or ".restore-" in p.name]
