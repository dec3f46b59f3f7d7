"""A process out of memory maps (Linux's ``vm.max_map_count``, 65,530 by default: each data file of an
open store takes one map) gets the project's StorageError saying what to do, at open, at rotation and
when it maps the files another process started, and loses nothing it acknowledged.

Nobody makes 65,530 files here: the maps :mod:`kv_backend.filemaps` makes are refused with ENOMEM, as
the system refuses them past the limit, once a given number of them have been made.
"""

from __future__ import annotations

import errno
import mmap
import types

import pytest

from kv_backend import DB, cli, filemaps
from kv_backend.errors import StorageError

FILE_SIZE = 4096
VALUE = b"v" * 200


class MapLimit:
    """Makes :mod:`kv_backend.filemaps`'s maps fail with ENOMEM once ``left`` more have been made
    (``None``: no limit)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.left: int | None = None
        self.refused = 0
        limit = self

        class LimitedMap(mmap.mmap):
            def __new__(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
                if limit.left is not None:
                    if limit.left <= 0:
                        limit.refused += 1
                        raise OSError(errno.ENOMEM, "Cannot allocate memory")
                    limit.left -= 1
                return super().__new__(cls, *args, **kwargs)

        module = types.SimpleNamespace(**{n: getattr(mmap, n) for n in dir(mmap) if not n.startswith("__")})
        module.mmap = LimitedMap
        monkeypatch.setattr(filemaps, "mmap", module)


@pytest.fixture
def limit(monkeypatch) -> MapLimit:
    return MapLimit(monkeypatch)


def _fill(path, n: int, first: int = 0) -> None:
    with DB(path, max_file_size=FILE_SIZE) as db:
        for i in range(first, first + n):
            db.put(b"k%d" % i, VALUE)


def _data_files(path) -> int:
    return sum(1 for p in path.iterdir() if p.name.endswith(".data"))


def _says_what_to_do(exc: StorageError) -> None:
    assert isinstance(exc, StorageError)
    assert exc.errno == errno.ENOMEM
    text = str(exc)
    assert "kvb merge" in text, text
    assert "vm.max_map_count" in text, text
    assert "memory map" in text, text


def test_opening_a_store_past_the_map_limit_says_to_merge_or_raise_the_limit(tmp_path, limit):
    path = tmp_path / "s"
    _fill(path, 60)
    assert _data_files(path) >= 4
    limit.left = 2
    with pytest.raises(StorageError) as caught:
        DB(path, max_file_size=FILE_SIZE)
    _says_what_to_do(caught.value)
    assert limit.refused
    # The advice works: kvb merge (a process with maps to spare) leaves fewer, fuller files, which the
    # same limit then opens, with everything in them.
    limit.left = None
    assert cli.main(["merge", str(path)]) == 0
    assert _data_files(path) <= 2
    limit.left = 2
    with DB(path) as db:
        assert all(db.get(b"k%d" % i) == VALUE for i in range(60))


def test_a_rotation_past_the_map_limit_fails_the_write_and_loses_nothing_acknowledged(tmp_path, limit):
    path = tmp_path / "s"
    acked: list[bytes] = []
    with DB(path, max_file_size=FILE_SIZE) as db:
        for i in range(5):  # (the active file has grown to its full size, mapped)
            db.put(b"a%d" % i, VALUE)
            acked.append(b"a%d" % i)
        limit.left = 0
        failed = None
        for i in range(200):  # (some 20 writes fill a file: the rotation comes well before the end)
            key = b"k%d" % i
            try:
                db.put(key, VALUE)
            except StorageError as exc:
                failed = key
                _says_what_to_do(exc)
                break
            acked.append(key)
        assert failed is not None, "no rotation was refused"
        assert len(acked) > 5  # (writes into the file already mapped went on until it was full)
        assert _data_files(path) == 1  # (the new file that could not be mapped is not left behind)
        assert all(db.get(k) == VALUE for k in acked)
        assert db.get(failed) is None
        limit.left = None  # maps to spare again (a merge, a raised limit): the store goes on
        db.put(failed, VALUE)
        acked.append(failed)
    with DB(path) as db:
        assert all(db.get(k) == VALUE for k in acked)
        assert len(db) == len(acked)


def test_growing_the_active_file_past_the_map_limit_fails_the_write_alone(tmp_path, limit):
    path = tmp_path / "s"
    with DB(path, max_file_size=FILE_SIZE) as db:
        limit.left = 0  # (the new store's first record grows its file, which is then mapped again)
        with pytest.raises(StorageError) as caught:
            db.put(b"first", VALUE)
        _says_what_to_do(caught.value)
        assert db.get(b"first") is None
        limit.left = None
        db.put(b"first", VALUE)
    with DB(path) as db:
        assert dict(db.items()) == {b"first": VALUE}


def test_the_files_another_process_started_past_the_map_limit(tmp_path, limit):
    path = tmp_path / "s"
    _fill(path, 10)
    with DB(path, max_file_size=FILE_SIZE) as reader, DB(path, max_file_size=FILE_SIZE) as writer:
        for i in range(10, 80):  # the writer rotates into new files the reader has not mapped
            writer.put(b"k%d" % i, VALUE)
        limit.left = 0
        with pytest.raises(StorageError) as caught:
            reader.get(b"k79")
        _says_what_to_do(caught.value)
        with pytest.raises(StorageError):
            reader.put(b"mine", b"1")
        limit.left = None
        assert all(reader.get(b"k%d" % i) == VALUE for i in range(80))
        reader.put(b"mine", b"1")
        assert writer.get(b"mine") == b"1"


def test_the_command_line_prints_the_advice_not_a_traceback(tmp_path, limit, capsys):
    path = tmp_path / "s"
    _fill(path, 60)
    limit.left = 1
    assert cli.main(["get", str(path), "k1"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "kvb merge" in err and "vm.max_map_count" in err, err


def test_salvage_past_the_map_limit_says_to_raise_it(tmp_path, limit, capsys):
    path = tmp_path / "s"
    _fill(path, 60)
    limit.left = 2  # (salvage maps every data file at once)
    assert cli.main(["salvage", str(path), str(tmp_path / "copy")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "memory map" in err and "vm.max_map_count" in err, err
    limit.left = None
    assert cli.main(["salvage", str(path), str(tmp_path / "copy")]) == 0
    with DB(tmp_path / "copy") as db:
        assert all(db.get(b"k%d" % i) == VALUE for i in range(60))
