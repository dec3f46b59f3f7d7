"""Engine defects found by the randomized multi-process soak harness (benchmarks/soak.py), or while
working out the crash states it reaches, reduced to deterministic cases."""

from __future__ import annotations

import os
import signal

import pytest
from helpers import exit_code, fork_child

import kv_backend.db as D
import kv_backend.db_write as W
from kv_backend import DB, CorruptionError
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.salvage import salvage


def _kill_in_rotation(store: str, step: str) -> None:
    """In a child: fill the active file so the next put rotates, and SIGKILL the child at ``step``
    of the rotation: before the next file has its header, or just after (before it is published)."""

    def child() -> None:
        db = DB(store, max_file_size=4096)

        def die(*args: object) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        if step == "before-header":
            W.write_all = die
        else:
            real = D.DB._new_data_file

            def new_data_file(self, fid):
                real(self, fid)
                die()

            D.DB._new_data_file = new_data_file
        db.put(b"doomed", b"r" * 3600)

    assert exit_code(fork_child(child)) == -signal.SIGKILL


@pytest.mark.parametrize("step", ["before-header", "after-header"])
def test_check_does_not_call_an_interrupted_rotation_damage(store_path, step):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(5):
            db.put(b"k%d" % i, b"v" * 100)
    _kill_in_rotation(store_path, step)
    fids = list_data_files(store_path)
    assert len(fids) == 2
    newest = os.path.getsize(os.path.join(store_path, data_name(fids[-1])))
    assert newest == (0 if step == "before-header" else 16)
    report = check(store_path)
    # It reported the zeros reserved in the first file, and the empty second file, as damage.
    assert report.ok, report.problems
    assert report.records == 5
    with DB(store_path) as db:  # the next writer clears the leftovers up
        assert dict(db.items()) == {b"k%d" % i: b"v" * 100 for i in range(5)}
    report = check(store_path)
    assert report.ok and report.notes == [], (report.problems, report.notes)


def test_check_still_reports_damage_in_the_file_before_an_interrupted_rotation(store_path):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(5):
            db.put(b"k%d" % i, b"v" * 100)
    _kill_in_rotation(store_path, "after-header")
    first = os.path.join(store_path, data_name(list_data_files(store_path)[0]))
    with open(first, "r+b") as f:
        f.seek(16 + 22 + 2 + 50)
        f.write(b"garbage")  # inside the first record, which others follow: damage
    report = check(store_path)
    assert [(p.path, p.offset, p.what) for p in report.problems] == [(first, 16, "checksum mismatch")]


@pytest.mark.parametrize("step", ["before-header", "after-header"])
def test_salvage_does_not_call_an_interrupted_rotation_damage(tmp_path, step):
    store = str(tmp_path / "store")
    with DB(store, max_file_size=4096) as db:
        for i in range(5):
            db.put(b"k%d" % i, b"v" * 100)
    _kill_in_rotation(store, step)
    report = salvage(store, str(tmp_path / "copy"))
    # It reported the empty file a rotation killed before its header left as a damaged region.
    assert report.clean, [str(r) for r in report.regions]
    assert report.keys_copied == 5
    with DB(str(tmp_path / "copy")) as db:
        assert dict(db.items()) == {b"k%d" % i: b"v" * 100 for i in range(5)}


def test_a_data_file_that_vanished_before_it_was_opened_leaves_no_noise(store_path, monkeypatch):
    """A reader catching up opens a data file that a merge removed meanwhile: the FileNotFoundError
    is handled (it reloads), and the half-made DataFile must not print "Exception ignored in
    DataFile.__del__ ... AttributeError" on stderr when it is dropped."""
    import gc
    import sys

    from kv_backend.files import DataFile

    with DB(store_path):
        pass
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(FileNotFoundError):
        DataFile(store_path, (99, 0))
    gc.collect()
    assert unraisable == []


@pytest.mark.parametrize("state", ["kept", "lost"])
def test_a_write_torn_after_an_interrupted_rotation_does_not_hide_the_acknowledged_value(tmp_path, state):
    """Writer A dies in a rotation after creating the next file (header only, unpublished); then
    writer B, open since before and still appending to the old file, dies half-way through a put.
    Recovery finished A's rotation but cut only reserved zeros off the old file, so B's torn record
    stayed in a now closed file, where it reads as a damaged record: the key raised CorruptionError
    instead of returning its acknowledged value, kvb check reported damage and a merge dropped the
    key. Everything after the old file's published end is unpublished: it is cut as tail recovery
    cuts it. Without the STATE page (``lost``: deleted, or the store copied without it) there is
    no published end, and the torn last write before the reserved zeros is cut."""
    store = str(tmp_path / "store")
    with DB(store, max_file_size=4096) as db:
        db.put(b"k", b"v1")
        db.put(b"filler", b"f" * 2500)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def writer_b() -> None:
        db = DB(store, max_file_size=4096)  # open before A dies: its view ends in the first file
        os.write(ready_w, b"r")
        os.read(go_r, 1)
        real = W._pwrite

        def pwrite(fd, data, off):
            real(fd, bytes(data)[: len(data) // 2], off)
            os.kill(os.getpid(), signal.SIGKILL)

        W._pwrite = pwrite
        db.put(b"k", b"v2" * 20)  # fits in the first file

    pid_b = fork_child(writer_b)
    assert os.read(ready_r, 1) == b"r"
    _kill_in_rotation(store, "after-header")
    os.write(go_w, b"g")
    assert exit_code(pid_b) == -signal.SIGKILL
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)
    assert [f[0] for f in list_data_files(store)] == [1, 2]
    if state == "lost":
        os.unlink(os.path.join(store, "STATE"))
    # As the kills left it (nothing recovered yet), the torn write is an unfinished write, not damage.
    report = check(store)
    assert report.ok, report.problems
    assert not salvage(store, str(tmp_path / "copy")).regions
    with DB(store, max_file_size=4096) as db:
        assert db.get(b"k") == b"v1"  # raised CorruptionError
        assert db.stats()["corrupt_records"] == 0
        db.merge()
        assert db.get(b"k") == b"v1"
    report = check(store)
    assert report.ok and report.notes == [], (report.problems, report.notes)


def _records_then_state_lost(store: str, n: int) -> tuple[str, int, int]:
    """``n`` records in the active file, then the STATE page deleted (as when the store was
    copied without it); return the active file's path, the size of a record and where data ends."""
    with DB(store) as db:
        for i in range(n):
            db.put(b"k%d" % i, b"v" * 50)
        end = db.stats()["active_end"]
    os.unlink(os.path.join(store, "STATE"))
    return os.path.join(store, data_name(list_data_files(store)[-1])), 22 + 2 + 50, end


def test_without_the_state_page_recovery_keeps_the_records_after_a_damaged_one(store_path):
    """Found while reviewing recovery for the soak harness: with no STATE page, the first writer
    scans the active file from its start and cut it at the first record failing its CRC, taking
    every sound record after it along (docs/protocol.md: recovery only ever cuts reserved zeros
    or a torn tail)."""
    path, size, end = _records_then_state_lost(store_path, 10)
    with open(path, "r+b") as f:
        f.seek(16 + 3 * size + 30)
        f.write(b"X")  # one damaged byte in the value of k3
    with DB(store_path) as db:
        with pytest.raises(CorruptionError):
            db.get(b"k3")
        assert [db.get(b"k%d" % i) for i in range(10) if i != 3] == [b"v" * 50] * 9  # k4.. were cut
        assert db.stats()["active_end"] == end
        db.put(b"after", b"1")
    with DB(store_path, read_only=True) as db:
        assert db.get(b"after") == b"1" and db.get(b"k9") == b"v" * 50
    assert [(p.offset, p.what) for p in check(store_path).problems] == [(16 + 3 * size, "checksum mismatch")]


def test_without_the_state_page_recovery_still_cuts_a_torn_last_write(store_path):
    path, _, end = _records_then_state_lost(store_path, 5)
    record = rec.encode(rec.PUT, b"torn", b"t" * 500)
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(record[: len(record) // 2])  # a write killed half-way, zeros after it
    with DB(store_path) as db:
        assert db.get(b"torn") is None and len(db) == 5
        assert db.stats()["active_end"] == end
    assert os.path.getsize(path) == end
    report = check(store_path)
    assert report.ok and report.notes == [], (report.problems, report.notes)
