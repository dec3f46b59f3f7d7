"""Backups served over plain HTTP (fsspec's http filesystem, read-only): listing and restoring work,
a backup fails saying what the server answered, and a prune failed with "cannot delete URL:
NotImplementedError: " and nothing more. It now says that the filesystem of this URL cannot do that
and what URL to use; nothing is deleted."""

from __future__ import annotations

import functools
import http.server
import os
import threading

import pytest

from kv_backend import DB, BackupError
from kv_backend.backup import backup_store, list_backups, prune_backups, restore


@pytest.fixture
def served(tmp_path):
    """A backup URL with one backup ("one"), served read-only over HTTP: (url, its directory, the store)."""
    pytest.importorskip("aiohttp")
    store = str(tmp_path / "store")
    with DB(store) as db:
        db.put(b"k", b"v")
    root = tmp_path / "www"
    backup_store(store, str(root / "bk"), name="one")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bk", str(root / "bk"), store
    finally:
        server.shutdown()
        server.server_close()


def test_backups_over_http_list_and_restore(served, tmp_path):
    url, _root, _store = served
    assert [b.name for b in list_backups(url)] == ["one"]
    restore(url, str(tmp_path / "r"))
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert db.get(b"k") == b"v"


def test_a_prune_over_http_says_the_filesystem_cannot_delete(served):
    url, root, _store = served
    with pytest.raises(BackupError) as e:
        prune_backups(url, keep=0)
    message = str(e.value)
    assert "cannot delete" in message and "filesystem of this URL cannot do that" in message, message
    assert os.listdir(os.path.join(root, "backups")) == ["one.json"]


def _http_writes() -> bool:
    from fsspec.implementations.http import HTTPFileSystem

    return "_pipe_file" in HTTPFileSystem.__dict__


@pytest.mark.skipif(
    not _http_writes(),
    reason="this fsspec release's HTTP filesystem cannot write (no request is sent: no answer to report)",
)
def test_a_backup_over_http_fails_saying_what_the_server_answered(served):
    url, root, store = served
    with pytest.raises(BackupError, match=r"cannot write .*/pending/.*501"):
        backup_store(store, url, name="two")
    assert os.listdir(os.path.join(root, "backups")) == ["one.json"]
