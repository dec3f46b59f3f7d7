"""Bad arguments to kv_backend.dbm.open and kv_backend.shelve.open raise the project's errors (#4).

A bad flag (``"C"``, ``"rw"``) raised a bare ``ValueError``, a ``mode`` that is not an
int and a ``protocol`` that is not one a bare ``TypeError``, a path of another type
(``dbm.open(5)``) the ``TypeError`` of ``os.fspath``, and a path with a NUL character
the ``ValueError`` of the first system call: none of them a ``KVError``, unlike the
same mistakes made with ``Store``. Each is now a ``ConfigurationError`` (a
``ValueError``) or an ``InvalidArgumentError`` (a ``TypeError``), so code catching
the stdlib's exception keeps working, and nothing is created.
"""

from __future__ import annotations

import os

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend.errors import ConfigurationError, InvalidArgumentError


@pytest.mark.parametrize("flag", ["C", "rw", "", "cx", None, b"c"])
def test_a_bad_flag_raises_configuration_error(tmp_path, flag):
    path = str(tmp_path / "db")
    with pytest.raises(ConfigurationError, match="flag must be") as info:
        kv_dbm.open(path, flag)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigurationError, match="flag must be"):
        kv_shelve.open(path, flag)
    assert not os.path.exists(path)


@pytest.mark.parametrize("mode", ["0o666", 1.5, None, True])
def test_a_mode_that_is_not_an_int_raises_invalid_argument_error(tmp_path, mode):
    path = str(tmp_path / "db")
    with pytest.raises(InvalidArgumentError, match="mode must be an int") as info:
        kv_dbm.open(path, "c", mode)
    assert isinstance(info.value, TypeError)
    assert not os.path.exists(path)


@pytest.mark.parametrize("file", [5, None, ["db"]])
def test_a_path_of_another_type_raises_invalid_argument_error(file):
    with pytest.raises(InvalidArgumentError, match=r"str, bytes or os\.PathLike") as info:
        kv_dbm.open(file, "c")
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("file", ["a\x00b", b"a\x00b"])
def test_a_path_with_a_nul_character_raises_configuration_error(tmp_path, file):
    path = os.fsencode(tmp_path) + b"/" + file if isinstance(file, bytes) else f"{tmp_path}/{file}"
    for flag in "rc":
        with pytest.raises(ConfigurationError, match="NUL") as info:
            kv_dbm.open(path, flag)
        assert isinstance(info.value, ValueError)
    assert os.listdir(tmp_path) == []


def test_a_shelf_protocol_that_is_not_an_int_raises_invalid_argument_error(tmp_path):
    path = str(tmp_path / "shelf")
    with pytest.raises(InvalidArgumentError, match="protocol must be an int") as info:
        kv_shelve.open(path, protocol="5")
    assert isinstance(info.value, TypeError)
    assert not os.path.exists(path)
