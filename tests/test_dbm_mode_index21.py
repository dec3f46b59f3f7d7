"""``kv_backend.dbm.open``'s ``mode`` may be any integer type, as the stdlib's dbm modules take it.

``kv_backend.dbm.open(path, "c", numpy.int64(0o640))`` (a mode read from an array, a config library's own
integer type) raised InvalidArgumentError, where ``dbm.gnu`` (which reads it as a C int) and ``dbm.dumb``
(which computes with it) create the database with it. ``True`` is still refused: as a mode it would be
``0o001``.
"""

from __future__ import annotations

import os
import stat

import pytest

import kv_backend.dbm as kv_dbm
from kv_backend.errors import InvalidArgumentError


class Integer:
    """An integer type that is not an int (as numpy.int64 is not)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


def _modes(directory: str) -> set[int]:
    return {stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) for name in os.listdir(directory)}


def test_an_integer_type_is_taken_as_its_int(tmp_path):
    umask = os.umask(0o022)
    try:
        with kv_dbm.open(str(tmp_path / "kv"), "c", Integer(0o640)) as db:
            db[b"k"] = b"v"
    finally:
        os.umask(umask)
    assert _modes(str(tmp_path / "kv")) == {0o640}
    assert stat.S_IMODE(os.stat(tmp_path / "kv").st_mode) == 0o750


@pytest.mark.parametrize("mode", [True, Integer, 0o640 + 0.0])
def test_a_flag_or_what_is_no_integer_is_still_refused(tmp_path, mode):
    with pytest.raises(InvalidArgumentError, match="mode must be an int"):
        kv_dbm.open(str(tmp_path / "kv"), "c", mode)
    assert not (tmp_path / "kv").exists()
