"""A chained URL whose first filesystem wraps none (``memory::x``, ``memory::file:///x``,
``local::s3://bucket/x``) was taken by fsspec for that first filesystem alone, the rest ignored:
``kvb backup DIR memory::file:///backups`` reported a backup complete (exit 0) that was in the memory
of kvb and gone when it exited, nothing under /backups. Such URLs are refused, naming the URL to
write."""

from __future__ import annotations

import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups
from kv_backend.errors import ConfigurationError


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "store")
    with DB(path) as db:
        db.put(b"k", b"v")
    return path


def _known(protocol: str) -> bool:
    from fsspec.registry import known_implementations, registry

    return protocol in known_implementations or protocol in registry


@pytest.mark.parametrize(
    "form",
    [
        "memory::file://{}",
        pytest.param(
            "local::file://{}",
            marks=pytest.mark.skipif(not _known("local"), reason="this fsspec release has no local://"),
        ),
        "memory::memory://bk",
        "file::s3://bucket/bk",
    ],
)
def test_a_chain_the_first_filesystem_ignores_is_refused(store, tmp_path, form):
    url = form.format(tmp_path / "bk")
    rest = url.partition("::")[2]
    with pytest.raises(ConfigurationError, match="which fsspec ignores") as e:
        backup_store(store, url)
    assert str(e.value).endswith(f"write the URL of the storage alone ({rest})")
    with pytest.raises(ConfigurationError, match="which fsspec ignores"):
        list_backups(url)
    assert sorted(os.listdir(tmp_path)) == ["store"]


def test_kvb_backup_to_memory_chained_in_front_of_a_directory_fails(store, tmp_path, capsys):
    url = f"memory::file://{tmp_path / 'bk'}"
    code, out, err = run(capsys, "backup", store, url)
    assert (code, out) == (2, ""), err
    assert "which fsspec ignores" in err and "complete" not in err
    assert sorted(os.listdir(tmp_path)) == ["store"]
