"""kvb salvage copied a store whose directory keeps other users out into a directory they could read:
an empty target prepared as 0700 was replaced by a 0755 one (restore keeps such a directory's mode),
and a new target got the umask's 0755 and 0644 whatever the source's directory withheld."""

from __future__ import annotations

import os
import stat

import pytest

from kv_backend import DB
from kv_backend.salvage import salvage


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _source(tmp_path, mode: int) -> str:
    src = tmp_path / "src"
    src.mkdir()
    os.chmod(src, mode)
    with DB(str(src)) as db:
        db.put(b"secret", b"hunter2")
    return str(src)


@pytest.mark.parametrize(("prepared", "file_mode"), [(0o700, 0o600), (0o2770, 0o660), (0o750, 0o640)])
def test_an_empty_target_keeps_its_mode(tmp_path, umask_022, prepared, file_mode):
    src = _source(tmp_path, 0o755)
    dst = tmp_path / "dst"
    dst.mkdir()
    os.chmod(dst, prepared)
    assert salvage(src, dst).keys_copied == 1
    assert _mode(dst) == prepared
    assert {_mode(dst / n) for n in os.listdir(dst)} == {file_mode}
    with DB(str(dst), read_only=True) as db:
        assert db.get(b"secret") == b"hunter2"


@pytest.mark.parametrize(("source", "dir_mode", "file_mode"), [(0o700, 0o700, 0o600), (0o755, 0o755, 0o644)])
def test_a_new_target_withholds_what_the_source_directory_withholds(
    tmp_path, umask_022, source, dir_mode, file_mode
):
    src = _source(tmp_path, source)
    dst = tmp_path / "new" / "dst"
    assert salvage(src, dst).keys_copied == 1
    assert _mode(dst) == dir_mode
    assert {_mode(dst / n) for n in os.listdir(dst)} == {file_mode}
    with DB(str(dst)) as db:  # its owner writes on
        db.put(b"more", b"x")


def test_nobody_else_can_read_a_salvage_while_it_is_built(tmp_path, umask_022):
    src = _source(tmp_path, 0o700)
    dst = tmp_path / "dst"
    seen = []

    def look(done: int, total: int) -> None:
        building = [n for n in os.listdir(tmp_path) if n.startswith(".dst.salvage-")]
        seen.extend(_mode(tmp_path / n) for n in building)

    salvage(src, dst, progress=look)
    assert seen and set(seen) == {0o700}
