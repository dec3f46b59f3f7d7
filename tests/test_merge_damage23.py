"""A merge keeps a damaged record whose lengths are sound: its key reads as damaged after it.

A merge dropped such a record (it cannot be copied as a value): afterwards its key read as absent,
not damaged, and no reader reported the damage any more (only that merge's report counted it). A
merge now copies the record's bytes as they are into its output, indexed by the key the store read
it under and never expiring: every reader (an open, a read-only open, ``kvb check``, ``kvb salvage``,
a backup, the format reader, a later merge) reports the same damage after it as before, and no older
version of the key comes back. Writing or deleting the key ends the damage; the next merge then
drops the old record as any record a newer one replaced.
"""

from __future__ import annotations

import json
import os
import random
import signal

import pytest
import test_format_reader11 as reader
from helpers import exit_code, fork_child, kill_at_call, run_kvb, spawn_python, wait_for

import kv_backend.merge as merge_module
from kv_backend import DB, CorruptionError
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.hint import load as load_hints
from kv_backend.record import HEADER_SIZE
from kv_backend.salvage import salvage

KEY = b"damaged"
#: Where in its record the damage goes: a byte of the value, the CRC, the type byte (an unknown type:
#: the CRC then fails too) and the expiry (its top byte, making a tiny time, long past: trusted, the
#: record would hide the key as expired).
WHERE = {"value": HEADER_SIZE + len(KEY) + 3, "crc": 1, "type": 4, "expiry": 21}


def _fill(db: DB, prefix: bytes, n: int) -> dict[bytes, bytes]:
    values = {b"%s%03d" % (prefix, i): prefix * 40 + b"%d" % i for i in range(n)}
    for key, value in values.items():
        db.put(key, value)
    return values


def _records_of(path: str, key: bytes) -> list[tuple[str, int, int]]:
    """(data file, offset, size) of each record of ``key`` in the store at ``path``, oldest first."""
    return [
        (f, off, HEADER_SIZE + klen + vlen)
        for f in reader.data_files(path)
        for off, _, _, k, klen, vlen in reader.records(f)
        if k == key
    ]


def _store_with_a_damaged_newest_record(path: str, where: str) -> tuple[dict[bytes, bytes], str]:
    """A store of small files: ``KEY``'s older value in the oldest file, its newest in a later closed
    file, damaged at ``where``; return the other keys' values and the damaged file's path."""
    with DB(path, max_file_size=4096) as db:
        db.put(KEY, b"old value, overwritten" * 3)
        values = _fill(db, b"a", 60)
        db.put(KEY, b"newest value" * 5)
        values.update(_fill(db, b"b", 60))
        active = data_name(db._tail[0])
    found = _records_of(path, KEY)
    assert len(found) == 2 and found[0][0] != found[1][0] and not found[1][0].endswith(active)
    damaged, offset, _ = found[1]
    with open(damaged, "r+b") as f:
        f.seek(offset + WHERE[where])
        byte = f.read(1)[0]
        f.seek(offset + WHERE[where])
        f.write(bytes([9 if where == "type" else 0x3F if where == "expiry" else byte ^ 0x5A]))
    return values, damaged


def _reads_damaged(path: str, values: dict[bytes, bytes], *, read_only: bool) -> None:
    with DB(path, read_only=read_only) as db:
        with pytest.raises(CorruptionError):
            db.get(KEY)
        assert KEY in list(db.keys())
        for key, value in values.items():
            assert db.get(key) == value, key


def _assert_damage_reported(path: str, values: dict[bytes, bytes], tmp: str) -> None:
    """Every reader (the format reader, opens, ``kvb check``, ``kvb salvage``, a backup) reads ``KEY`` as
    damaged, never absent nor its older value, and the rest as written."""
    assert reader.assert_same(path)[KEY] == reader.DAMAGED
    _reads_damaged(path, values, read_only=True)
    _reads_damaged(path, values, read_only=False)
    report = check(path)
    assert not report.ok and {p.path for p in report.problems} <= set(reader.data_files(path))
    salvaged = salvage(path, os.path.join(tmp, "salvaged"))
    assert salvaged.damaged_keys == [KEY]
    with DB(path, read_only=True) as db:
        # (A merge killed after its switch-over leaves the damaged record in an input and its copy.)
        assert db.backup(f"file://{os.path.join(tmp, 'backups')}").damaged_records >= 1


@pytest.mark.parametrize("where", sorted(WHERE))
def test_a_merge_keeps_a_damaged_record_and_no_older_value_comes_back(store_path, tmp_path, where):
    values, damaged = _store_with_a_damaged_newest_record(store_path, where)
    _assert_damage_reported(store_path, values, str(tmp_path / "before"))
    with DB(store_path) as db:
        report = db.merge()
        with pytest.raises(CorruptionError):
            db.get(KEY)  # (this process's view after its own merge)
        assert report.corrupt_kept == 1 and report.corrupt_dropped == 0
        assert "1 damaged record(s) kept as they are" in str(report)
    assert not os.path.exists(damaged)
    # The merge's hint files index the key (never expiring), as its output's records do.
    indexed = {}
    for fid in list_data_files(store_path):
        size = os.path.getsize(os.path.join(store_path, data_name(fid)))
        hints = load_hints(os.path.join(store_path, data_name(fid)[: -len("data")] + "hint"), size)
        if hints is not None:
            indexed.update(zip(hints.keys, hints.expiries, strict=True))
    assert indexed[KEY] == 0.0
    _assert_damage_reported(store_path, values, str(tmp_path / "after"))
    with DB(store_path) as db:  # merged again, through the first merge's hint files
        assert db.merge().corrupt_kept == 1
    _assert_damage_reported(store_path, values, str(tmp_path / "again"))
    with DB(store_path) as db:  # writing the key ends the damage, and the next merge drops the record
        db.put(KEY, b"written again")
        assert db.merge().corrupt_kept == 0
    assert check(store_path).ok
    assert reader.assert_same(store_path)[KEY] == (b"written again", 0.0)


@pytest.mark.parametrize("where", ["key", "value length", "zeros"])
def test_a_damaged_record_a_hint_file_points_to_is_kept_as_a_record_of_its_key(store_path, where):
    """A merge output read through its hint file, its record of ``KEY`` damaged in the key, in the value
    length, or zeroed (as where a file lost bytes): the hint file indexes ``KEY`` there (its reads
    raise), but a scan reads another key there, or a damaged region of no key. The next merge copies
    it as a damaged record of ``KEY`` with sound lengths: after it every reader, through hint files or
    scanning, reads ``KEY`` as damaged, and nothing else changes."""
    with DB(store_path, max_file_size=4096) as db:
        values = _fill(db, b"a", 30)
        db.put(KEY, b"newest value" * 5)
        values.update(_fill(db, b"b", 30))
        db.merge()
    found = _records_of(store_path, KEY)
    assert len(found) == 1 and not found[0][0].endswith("-000.data")
    path, offset, size = found[0]
    assert os.path.exists(path[: -len("data")] + "hint")
    damage = {"key": (HEADER_SIZE + 1, b"#"), "value length": (11, b"\x7f"), "zeros": (0, bytes(size))}
    at, data = damage[where]
    reader.patch(path, offset + at, data)
    with DB(store_path) as db:
        with pytest.raises(CorruptionError):
            db.get(KEY)
        assert db.merge().corrupt_kept == 1
    assert reader.assert_same(store_path)[KEY] == reader.DAMAGED
    _reads_damaged(store_path, values, read_only=True)
    assert [p.what for p in check(store_path).problems] == ["checksum mismatch"]


def test_kvb_merge_says_what_the_damage_is_and_what_to_do(store_path):
    values, _ = _store_with_a_damaged_newest_record(store_path, "value")
    proc = run_kvb("merge", store_path)
    assert proc.returncode == 1, proc.stderr  # (damage found, as kvb check and kvb salvage say)
    assert "1 damaged record(s) were kept as they are" in proc.stderr
    assert "kvb check" in proc.stderr and "kvb salvage" in proc.stderr
    proc = run_kvb("check", store_path)  # (names the key to restore)
    assert proc.returncode == 1 and "checksum mismatch (a record of the key b'damaged')" in proc.stdout
    proc = run_kvb("check", "--json", store_path)
    assert [(p["what"], p["key"]) for p in json.loads(proc.stdout)["problems"]] == [
        ("checksum mismatch", "b'damaged'")
    ]
    _reads_damaged(store_path, values, read_only=True)
    # What the operator does once the key's value is restored elsewhere, or not needed: delete it.
    assert run_kvb("delete", store_path, KEY.decode()).returncode == 0
    assert run_kvb("merge", store_path).returncode == 0
    assert run_kvb("check", store_path).returncode == 0


def test_auto_merge_goes_on_with_a_damaged_record(store_path, monkeypatch):
    """Automatic merges succeed over the damage, rotation after rotation, and keep it reported."""
    values, _ = _store_with_a_damaged_newest_record(store_path, "value")
    monkeypatch.setattr(merge_module, "AUTO_MERGE_MIN_BYTES", 1)
    real, reports = merge_module.merge, []

    def noted(db, progress=None, *, wait=False):
        reports.append(real(db, progress, wait=wait))
        return reports[-1]

    monkeypatch.setattr(merge_module, "merge", noted)
    with DB(store_path, max_file_size=4096, auto_merge=0.01) as db:
        for i in range(400):
            db.put(b"same-key", b"%d" % i * 100)
            thread = db._merge_thread
            if thread is not None:
                thread.join(30)
                if len(reports) == 3:
                    break
        assert len(reports) == 3 and [r.corrupt_kept for r in reports] == [1, 1, 1]
        with pytest.raises(CorruptionError):
            db.get(KEY)
        assert all(db.get(key) == value for key, value in values.items())
    assert not check(store_path).ok


READER = """
    import os, sys
    from kv_backend import DB, CorruptionError
    path, stop, ready, key = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
    reads = 0
    with DB(path, read_only=True) as db:
        while True:
            done = os.path.exists(stop)
            try:
                value = db.get(key)
            except CorruptionError:
                value = "damaged"
            if value != "damaged":
                print("read", repr(value))
                sys.exit(1)
            assert db.get(b"a000") == b"a" * 40 + b"0"
            reads += 1
            if reads == 1:
                open(ready + str(os.getpid()), "w").close()
            if done:
                break
    print(reads)
"""


def test_readers_in_other_processes_read_the_damage_through_merges(store_path, tmp_path):
    values, _ = _store_with_a_damaged_newest_record(store_path, "value")
    stop, ready = str(tmp_path / "stop"), str(tmp_path / "ready-")
    readers = [
        spawn_python(READER, store_path, stop, ready, KEY.decode(), stdout=-1, stderr=-1, text=True)
        for _ in range(3)
    ]
    try:
        wait_for(lambda: sum(n.startswith("ready-") for n in os.listdir(tmp_path)) == 3, what="readers")
        with DB(store_path, max_file_size=4096) as db:
            for round_ in range(4):
                values.update(_fill(db, b"d%d" % round_, 30))
                assert db.merge().corrupt_kept == 1
    finally:
        open(stop, "w").close()
        outputs = [proc.communicate(timeout=60) for proc in readers]
    for proc, (out, err) in zip(readers, outputs, strict=True):
        assert proc.returncode == 0, out + err
    _reads_damaged(store_path, values, read_only=True)


def _merge_killed(path: str, rnd: random.Random) -> int:
    """Merge ``path`` in a child killed at a random step of the merge; its exit code."""
    call, n = rnd.choice(
        [
            ("pread", rnd.randrange(1, 120)),  # reading the inputs, copying their records
            ("replace", rnd.randrange(1, 5)),  # the switch-over: renaming the outputs
            ("unlink", rnd.randrange(1, 6)),  # removing the inputs
            ("time", 0),
        ]
    )

    def merge() -> None:
        with DB(path, max_file_size=4096) as db:
            _fill(db, b"e", rnd.randrange(1, 40))
            if call == "time":
                # A kill at a time, not at a step: anywhere in the reading, copying or switch-over.
                timer = rnd.uniform(0.0, 0.05)
                signal.setitimer(signal.ITIMER_REAL, timer)
                signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGKILL))
            else:
                kill_at_call(call, n)
            db.merge()

    return exit_code(fork_child(merge))


def test_a_merge_killed_at_any_point_leaves_the_damage_reported(store_path, tmp_path):
    written, _ = _store_with_a_damaged_newest_record(store_path, "value")
    values = {**written, **{b"e%03d" % i: b"e" * 40 + b"%d" % i for i in range(40)}}  # (some, maybe)
    rnd = random.Random(23)
    killed = 0
    for run in range(20):
        code = _merge_killed(store_path, rnd)
        assert code in (0, -signal.SIGKILL), code
        killed += code == -signal.SIGKILL
        view = reader.assert_same(store_path, read_only_too=run % 2 == 0)
        assert view[KEY] == reader.DAMAGED
        assert all(view.get(key, (value,))[0] == value for key, value in values.items())
        assert not check(store_path).ok
    assert killed
    _assert_damage_reported(store_path, written, str(tmp_path))
