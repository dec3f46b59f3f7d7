"""salvage(src, "") (a target left empty) built the copy in the working directory when that was empty
(``abspath("")`` is the working directory), and a target or a source holding a NUL character failed
with a bare ValueError. They are refused with a ConfigurationError, as an open of a store given such a
path is, before anything is read or made."""

from __future__ import annotations

import os

import pytest

from kv_backend.errors import ConfigurationError
from kv_backend.salvage import salvage


def test_empty_target_is_refused_not_the_working_directory(one_key_store, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(ConfigurationError, match=r"the path to salvage into is empty: name a new or empty"):
        salvage(one_key_store, "")
    assert os.listdir(cwd) == []
    assert sorted(os.listdir(tmp_path)) == ["cwd", "store"], "no temporary directory was made"


@pytest.mark.parametrize("which", ["src", "dst"])
def test_nul_in_a_path_is_a_configuration_error(one_key_store, tmp_path, which):
    bad = str(tmp_path / "new\x00store")
    args = (bad, str(tmp_path / "new")) if which == "src" else (one_key_store, bad)
    with pytest.raises(ConfigurationError, match="holds a NUL character, which no path can"):
        salvage(*args)
    assert sorted(os.listdir(tmp_path)) == ["store"]
