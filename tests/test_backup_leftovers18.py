"""Backup URLs and the HTTP backup route, made to agree with the rest.

``in_process_url("/x::memory://y")`` took a local path with ``::`` in it for a chain ending in fsspec's
memory filesystem, so ``kvb backup`` refused a directory that backup, listing, restore and prune take
as one (a path without ``scheme://`` in front is a path). It is now a directory there too."""

from __future__ import annotations

import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import in_process_url, list_backups


@pytest.mark.parametrize("url", ["/x::memory://y", "./a::memory://y", "/srv/memory::/y", "/x/memory://y"])
def test_a_path_with_double_colons_is_not_in_memory(url):
    assert not in_process_url(url)


@pytest.mark.parametrize("url", ["memory://y", "MEMORY://y", "simplecache::memory://y", "dir::memory://y"])
def test_memory_urls_are_in_memory(url):
    assert in_process_url(url)


def test_kvb_backup_takes_a_directory_named_like_a_memory_chain(tmp_path, capsys):
    store = str(tmp_path / "store")
    with DB(store) as db:
        db.put(b"k", b"v")
    target = f"{tmp_path}/x::memory://y"  # the directory y in x::memory: (fsspec would read a chain)
    code, _, err = run(capsys, "backup", store, target, "--name", "one")
    assert code == 0, err
    assert os.path.isfile(os.path.join(target, "backups", "one.json"))
    assert [b.name for b in list_backups(target)] == ["one"]

