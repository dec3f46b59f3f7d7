"""A read-only open of a store whose closed data file lost bytes (cut below its published end before a
newer file, or below the size its hint file gives) reads it as recovery fills it, with zeros up to
there: it copied the whole file into memory to do so (twice, for a moment), a memory spike
proportional to the file. The file is now mapped over zeros that take no memory, and readers report
exactly what they reported (reads, stats, kvb check, salvage), as a writer's open does once its
recovery filled the file.

And data files held a descriptor each (the mapping's duplicate, before Python 3.13), and during an
open all of them at once: a store of more data files than the open-file limit could not be opened.
Maps now keep no descriptor (see kv_backend.filemaps), and a closed file is let go of as soon as it
is mapped."""

from __future__ import annotations

import errno
import os
import re
import resource
import tracemalloc

import pytest
from helpers import exit_code, fork_child

import kv_backend.filemaps as filemaps
from kv_backend import DB, CorruptionError
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import DataFile, data_name, hint_name, list_data_files
from kv_backend.salvage import salvage
from kv_backend.state import published_tail

pytestmark = pytest.mark.skipif(
    filemaps.MAPS_HOLD_FD, reason="this platform maps files as Python does (see kv_backend.filemaps)"
)

_VALUE = 60_000
_TAIL = b"q" + bytes(100)  # a value ending in zeros: filled, its cut record checks out again


def _write(db: DB, n: int) -> None:
    for i in range(n):
        db.put(b"k%03d" % i, os.urandom(_VALUE))
    db.put(b"z", _TAIL)


def _cut_before_dead_rotation(store: str, below: int) -> str:
    """A ~18 MiB file that the STATE page names, followed by a rotation that died (a file holding its
    header), cut ``below`` the zeros that end its last record (see :func:`_cut`)."""
    with DB(store, max_file_size=64 << 20) as db:
        _write(db, 300)
    major, _ = published_tail(store)
    with open(os.path.join(store, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    return _cut(os.path.join(store, data_name((major, 0))), below)


def _cut_below_hint_size(store: str, below: int) -> str:
    """A ~18 MiB merge output read through its hint file, cut as above."""
    with DB(store, max_file_size=64 << 20) as db:
        _write(db, 300)
        db.merge(wait=True)
        db.put(b"after", b"merge")
    fid = list_data_files(store)[0]
    assert fid[1] > 0 and os.path.exists(os.path.join(store, hint_name(fid)))
    return _cut(os.path.join(store, data_name(fid)), below)


def _cut(path: str, below: int) -> str:
    """Cut the file at ``path`` ``below`` bytes before the middle of the zeros that end z's value: 0
    loses zeros alone, which the fill gives back; more loses records (damage)."""
    with open(path, "rb") as f:
        data = f.read()
    os.truncate(path, data.index(b"z" + _TAIL) + 1 + len(_TAIL) - 50 - below)
    return path


def _view(store: str, *, read_only: bool) -> tuple[dict, int]:
    out: dict = {}
    with DB(store, read_only=read_only) as db:
        for key in db.unordered_keys():
            try:
                value = db.get(key)
                out[key] = value if key == b"z" or value is None else len(value)
            except CorruptionError:
                out[key] = "damaged"
        return out, db.stats()["corrupt_records"]


def _peak_open(store: str) -> int:
    tracemalloc.start()
    try:
        DB(store, read_only=True).close()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _problems(store: str) -> list[tuple[str, int, str]]:
    return [(p.path, p.offset, p.what) for p in check(store).problems]


@pytest.mark.parametrize("below", [0, 3_000_101], ids=["zeros", "records"])
@pytest.mark.parametrize("damage", [_cut_before_dead_rotation, _cut_below_hint_size], ids=["page", "hint"])
def test_a_read_only_open_fills_a_file_that_lost_bytes_without_copying_it(
    store_path, tmp_path, monkeypatch, damage, below
):
    path = damage(store_path, below)
    size = os.path.getsize(path)
    assert size > 8 << 20
    view = _view(store_path, read_only=True)
    values, corrupt = view
    assert sum(v == _VALUE for v in values.values()) > 100
    problems = _problems(store_path)
    if not below:  # (the zeros it lost are back: z checks out, as once recovery filled the file)
        assert values[b"z"] == _TAIL and not problems and not corrupt and "damaged" not in values.values()
    else:  # (a record cut, and the records after it lost: the keys a hint file names read as damaged)
        assert problems and (corrupt or list(values.values()).count("damaged") > 40)
    peak = _peak_open(store_path)
    assert peak < size // 2, (peak, size)  # (the copy was the file, twice for a moment)
    salvaged = salvage(store_path, str(tmp_path / "new"))
    assert salvaged.clean == (not below)
    with monkeypatch.context() as m:
        # Where maps cannot be placed over zeros (see kv_backend.filemaps): the copy, as before.
        m.setattr(filemaps, "_place", None)
        assert _view(store_path, read_only=True) == view
        assert _peak_open(store_path) > size  # (what the measure above sees: the file copied)
        copied = salvage(store_path, str(tmp_path / "copied"))
        assert (copied.keys_copied, copied.regions) == (salvaged.keys_copied, salvaged.regions)
    assert _view(str(tmp_path / "new"), read_only=True)[0] == {
        k: v for k, v in values.items() if v != "damaged"
    }
    assert os.path.getsize(path) == size  # a read-only open and salvage change nothing
    assert _view(store_path, read_only=False) == view  # recovery fills it: the same reads
    assert os.path.getsize(path) > size
    # What an open reads in chunks: the same once the file is filled, so the fill took nothing.
    assert peak < _peak_open(store_path) + (1 << 20)
    # The same damage (kvb check says the file lost bytes only while it is short: not once filled).
    short = re.compile(r"; the file lost bytes below the size its hint file gives \(\d+ of \d+ bytes left\)")
    assert _problems(store_path) == [(p, at, short.sub("", what)) for p, at, what in problems]


def test_a_sealed_file_replaced_under_its_name_is_filled_from_its_mapping(tmp_path):
    """A closed data file keeps no descriptor, so filling it opens it again by name: where a merge
    removed it since (the name gone, or given to another file), the mapping is copied instead."""
    with DB(str(tmp_path), max_file_size=4096) as db:
        db.put(b"a", b"x" * 100)
    fid = list_data_files(str(tmp_path))[0]
    f = DataFile(str(tmp_path), fid)
    f.seal()
    assert f.fd == -1
    size = f.size()
    want = bytes(f.mm[:size]) + bytes(1000)
    assert bytes(f.filled(size, size + 1000)) == want
    os.replace(f.path, f.path + ".old")
    with open(f.path, "wb") as other:
        other.write(b"\xff" * (size + 2000))
    assert f.filled(size, size + 1000) == want
    os.unlink(f.path)
    assert f.filled(size, size + 1000) == want
    f.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_store_of_more_data_files_than_the_descriptor_limit_opens_follows_and_merges(store_path):
    """~150 data files open, read-only and for writing, with room for 40 more descriptors; a reader
    follows another handle's rotations and merge without taking any, and lets go of the merged
    files' mappings once it reloaded."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(300):
            db.put(b"k%03d" % i, b"%d" % i * 600)  # ~6 records a file

    def maps_of_removed_files() -> int:
        with open("/proc/self/maps") as f:
            return sum(".data (deleted)" in line for line in f)

    def child() -> None:
        # (The limit bounds descriptor numbers: 40 past the highest this process inherited, which
        # depends on what the test process had open when it forked.)
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        assert len(list_data_files(store_path)) > 100
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 41, hard))
        before = len(os.listdir("/proc/self/fd"))
        reader = DB(store_path, read_only=True)
        writer = DB(store_path, max_file_size=4096)
        assert len(os.listdir("/proc/self/fd")) - before <= 10
        assert all(reader[b"k%03d" % i] == b"%d" % i * 600 for i in range(300))
        for i in range(300, 400):  # rotations the reader follows
            writer.put(b"k%03d" % i, b"%d" % i * 600)
        assert reader[b"k399"] == b"399" * 600 and len(reader) == 400
        assert len(os.listdir("/proc/self/fd")) - before <= 10
        for i in range(0, 400, 2):
            writer.delete(b"k%03d" % i)
        writer.merge(wait=True)
        assert dict(reader.items()) == {b"k%03d" % i: b"%d" % i * 600 for i in range(1, 400, 2)}
        assert len(os.listdir("/proc/self/fd")) - before <= 10
        assert maps_of_removed_files() == 0
        reader.close()
        writer.close()
        assert len(os.listdir("/proc/self/fd")) == before

    assert exit_code(fork_child(child)) == 0


def test_where_the_system_refuses_to_place_a_map_files_are_mapped_as_python_does(store_path, monkeypatch):
    """A sandbox may refuse to map a file over another map: the process then maps files as Python does
    (a descriptor each before Python 3.13), and reads all the same."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(50):
            db.put(b"k%02d" % i, b"%02d" % i * 100)
    calls = []

    def refused(mm, fd, size):
        calls.append(size)
        raise OSError(errno.EINVAL, "refused")

    monkeypatch.setattr(filemaps, "_place", refused)
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == {b"k%02d" % i: b"%02d" % i * 100 for i in range(50)}
    if filemaps.MMAP_NO_FD:  # (Python 3.13+: a sound file is mapped with trackfd=False, never placed)
        assert calls == [] and filemaps._place is refused
    else:
        assert len(calls) == 1 and filemaps._place is None
    with DB(store_path) as db:
        db.put(b"more", b"x" * 5000)
        assert db[b"more"] == b"x" * 5000 and len(db) == 51
