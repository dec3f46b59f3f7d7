"""The warning for a closed data file cut inside its header said which keys it held "cannot be
known" even where its hint file still names them (their reads raise CorruptionError); a writer that
filled such a file with zeros said nothing at all (#2)."""

from __future__ import annotations

import logging
import os

import pytest
from helpers import data_files
from test_backup_hint_damage18 import _merged_store  # (closed files a merge wrote, with hints)

from kv_backend import DB
from kv_backend.errors import CorruptionError


def _merged_then_cut(path: str) -> str:
    _merged_store(path)
    first = data_files(path)[0]
    assert os.path.exists(first[: -len(".data")] + ".hint")
    with open(first, "r+b") as f:
        f.truncate(9)
    return path


@pytest.mark.parametrize("read_only", [True, False])
def test_the_warning_says_the_hint_file_names_the_keys(store_path, caplog, read_only):
    _merged_then_cut(store_path)
    with caplog.at_level(logging.WARNING), DB(store_path, read_only=read_only) as db:
        with pytest.raises(CorruptionError):
            db.get(b"k00")
        assert db.get(b"after") == b"merge"
    text = caplog.text
    if read_only:  # (read as filled with zeros)
        assert "shorter than its header" in text and "its hint file names the keys they held" in text
    else:  # (a writer fills it, saying so)
        assert "filled with zeros, and its hint file names the keys it held" in text
    assert "cannot be known" not in text


def test_without_a_hint_file_it_says_they_cannot_be_known(store_path, caplog):
    _merged_then_cut(store_path)
    os.unlink(data_files(store_path)[0][: -len(".data")] + ".hint")
    with caplog.at_level(logging.WARNING), DB(store_path, read_only=True):
        pass
    assert "cannot be known" in caplog.text
