"""An option no filesystem of a chain over local or memory storage takes is said to be left out.

``anon=`` for ``simplecache::file:///bk`` was refused with the advice to give it as
``file={'anon': ...}``, which was then refused in turn, the local filesystem taking no ``anon``. For
such a chain the first message now says to leave the option out, naming what the storage takes; for a
chain over S3, and for an option the storage does take, the advice to give it under its protocol stays.
"""

from __future__ import annotations

import inspect

import pytest
from fsspec.implementations.memory import MemoryFileSystem
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups
from kv_backend.errors import ConfigurationError


@pytest.mark.parametrize("first", ["simplecache", "dir"])
@pytest.mark.parametrize("storage", ["file://{}/bk", "{}/bk"])
def test_an_option_the_local_storage_does_not_take_is_said_to_be_left_out(tmp_path, first, storage):
    url = f"{first}::{storage.format(tmp_path)}"
    with pytest.raises(ConfigurationError) as info:
        list_backups(url, anon=True)
    message = str(info.value)
    assert message == (
        f"the storage option anon= is not one that fsspec's local filesystem takes, which holds the backups "
        f"of the chained URL {url!r} (it takes auto_mkdir), nor one of {first!r} in front of it: leave it "
        "out; credentials and endpoints are for the storage of a URL such as s3://bucket/path"
    )
    assert "file=" not in message
    assert not (tmp_path / "bk").exists()


def test_kvb_backup_says_so_too(tmp_path, store_path, capsys):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    url = f"simplecache::file://{tmp_path}/bk"
    code, out, err = run(capsys, "backup", store_path, url, "--storage-option", "anon=true")
    assert (code, out) == (2, ""), err
    assert err.startswith("kvb: the storage option anon= is not one that fsspec's local filesystem takes"), (
        err
    )
    assert "leave it out" in err and "file=" not in err
    assert not (tmp_path / "bk").exists()


def test_the_memory_storage_is_named_with_what_it_takes(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    # (fsspec's memory filesystem takes global_store since 2023.9; older releases take no option of its own)
    own = inspect.signature(MemoryFileSystem.__init__).parameters
    takes = "global_store" if "global_store" in own else "none of its own"
    with pytest.raises(
        ConfigurationError, match=rf"memory filesystem takes.*\(it takes {takes}\).*leave it out"
    ):
        backup_store(store_path, "simplecache::memory://bk22", anon=True)


def test_an_option_the_local_storage_takes_is_still_said_to_go_under_its_protocol(tmp_path):
    with pytest.raises(
        ConfigurationError, match=r"give it under the protocol.*file=\{'auto_mkdir': \.\.\.\}"
    ):
        list_backups(f"simplecache::file://{tmp_path}/bk", auto_mkdir=True)


def test_an_s3_chain_keeps_the_advice_to_give_it_under_s3(tmp_path):
    # (refused before any filesystem is made: no s3fs call, no network)
    with pytest.raises(ConfigurationError) as info:
        list_backups("simplecache::s3://bucket/kv", anon=True)
    message = str(info.value)
    assert "would go to 'simplecache'" in message and "s3={'anon': ...}" in message, message
    assert "leave it out" not in message
