"""Merge and hint files: correctness alone, with other processes, and across crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest
from helpers import fingerprint, run_python, spawn_python

from kv_backend import DB, MergeInProgressError, record
from kv_backend.errors import CorruptionError
from kv_backend.files import MERGE_LOCK_FILE, data_name, hint_name, list_data_files
from kv_backend.locking import MergeLock
from kv_backend.merge import MergeReport

SMALL = 16 * 1024


def _fill(db: DB, model: dict[bytes, bytes], rounds: int = 2000, keys: int = 300, seed: int = 1) -> None:
    rnd = random.Random(seed)
    for i in range(rounds):
        key = b"key%04d" % rnd.randrange(keys)
        if rnd.random() < 0.2:
            db.delete(key)
            model.pop(key, None)
        else:
            value = b"v%d-" % i * rnd.randrange(1, 20)
            db.put(key, value)
            model[key] = value


def test_merge_keeps_exactly_the_live_data(store_path):
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=SMALL) as db:
        _fill(db, model)
        db.put(b"short", b"lived", ttl=0.05)
        time.sleep(0.1)
        before = db.stats()
        report = db.merge()
        assert isinstance(report, MergeReport)
        assert report.files_before == before["files"]
        assert report.bytes_after < report.bytes_before
        assert report.records_kept == len(model)
        assert dict(db.items()) == model
        after = db.stats()
        assert after["dead_bytes"] < before["dead_bytes"]
        assert "merged" in str(report)
    with DB(store_path) as db:
        assert dict(db.items()) == model


def test_deleted_key_does_not_come_back(store_path):
    with DB(store_path, max_file_size=SMALL) as db:
        db.put(b"gone", b"old value")
        for i in range(500):
            db.put(b"filler%d" % i, b"x" * 40)
        db.delete(b"gone")
        db.merge()
        assert b"gone" not in db
        db.put(b"other", b"1")
        db.merge()
        assert b"gone" not in db
    with DB(store_path) as db:
        assert b"gone" not in db


def test_two_merges_in_a_row_then_reopen_leaves_no_old_files(store_path):
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=SMALL) as db:
        _fill(db, model)
        db.merge()
        db.merge()
        db.merge()
        names = sorted(os.listdir(store_path))
    # Only the outputs of the last merge, their hints and the active file remain.
    data = [n for n in names if n.endswith(".data")]
    assert len(data) <= 3, names
    assert not [n for n in names if n.endswith(".tmp")]
    with DB(store_path) as db:
        assert dict(db.items()) == model


def test_merge_does_not_keep_deleted_files_open(store_path):
    with DB(store_path, max_file_size=SMALL) as db:
        _fill(db, {})
        db.merge()
        db.merge()
        db.get(b"key0001")
        fd_dir = f"/proc/{os.getpid()}/fd"
        if not os.path.isdir(fd_dir):
            pytest.skip("needs /proc to list open files")
        targets = []
        for fd in os.listdir(fd_dir):
            try:
                targets.append(os.readlink(os.path.join(fd_dir, fd)))
            except OSError:
                pass
        assert not [t for t in targets if store_path in t and "(deleted)" in t]


def test_merge_refuses_a_file_it_cannot_read_to_the_end(store_path):
    """A damaged length field hides every record after it: merging would delete them (and could
    bring back older values they replaced), so merge refuses and changes nothing."""

    with DB(store_path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % i, b"v%02d" % i * 30)
        db.put(b"k00", b"newest")  # in a later file: must never fall back to the old value
    first = os.path.join(store_path, data_name(list_data_files(store_path)[0]))
    with open(first, "rb") as f:
        buf = f.read()
    second = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries[1][2]
    with open(first, "r+b") as f:  # the value length of the file's second record
        f.seek(second + 10)
        f.write(b"\xff\xff\x00\x00")

    with DB(store_path, max_file_size=4096) as db:
        before = fingerprint(store_path)
        active = data_name(list_data_files(store_path)[-1])
        with pytest.raises(CorruptionError, match="cannot be read past offset") as info:
            db.merge()
        assert info.value.path == first and info.value.offset == second
        after = fingerprint(store_path)
        # Merge may have rotated the active file first; every other file is as it was.
        assert {n: h for n, h in after.items() if n in before and n not in ("STATE", active)} == {
            n: h for n, h in before.items() if n not in ("STATE", active)
        }
        assert db.get(b"k00") == b"newest" and db.get(b"k59") == b"v59" * 30


def test_a_failed_auto_merge_is_logged(store_path, monkeypatch, caplog):
    import kv_backend.merge as merge_module

    monkeypatch.setattr(merge_module, "AUTO_MERGE_MIN_BYTES", 1)

    def refuse(db, progress=None, *, wait=False):
        raise CorruptionError("cannot merge: damaged", None, None)

    monkeypatch.setattr(merge_module, "merge", refuse)
    with (
        caplog.at_level("WARNING", logger="kv_backend.merge"),
        DB(store_path, max_file_size=4096, auto_merge=0.1) as db,
    ):
        for i in range(200):
            db.put(b"same-key", b"%d" % i * 100)
            if db._merge_thread is not None:
                db._merge_thread.join(10)
                break
        assert db._merge_thread is not None
    assert "auto-merge of" in caplog.text and "cannot merge: damaged" in caplog.text


def test_hint_files_are_used_and_a_damaged_hint_falls_back(store_path):
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=SMALL) as db:
        _fill(db, model)
        db.merge()
    hints = [n for n in os.listdir(store_path) if n.endswith(".hint")]
    assert hints
    with DB(store_path) as db:
        assert dict(db.items()) == model
    for name in hints:
        path = os.path.join(store_path, name)
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
    with DB(store_path) as db:
        assert dict(db.items()) == model


def test_second_merge_is_refused_while_one_runs(store_path):
    with DB(store_path) as db:
        db.put(b"a", b"1")
        lock = MergeLock(os.path.join(store_path, MERGE_LOCK_FILE))
        assert lock.try_acquire()
        try:
            with pytest.raises(MergeInProgressError, match="merging"):
                db.merge()
        finally:
            lock.release()
        db.merge()


def test_merge_while_other_processes_write_and_read(store_path):
    DB(store_path, max_file_size=SMALL).close()
    writer = spawn_python(
        """
        import sys, json
        from kv_backend import DB
        db = DB(sys.argv[1], max_file_size=16384)
        acked = {}
        for i in range(3000):
            key = b"w%03d" % (i % 200)
            if i % 7 == 0:
                db.delete(key); acked[key.decode()] = None
            else:
                db.put(key, b"%d" % i); acked[key.decode()] = str(i)
        print(json.dumps(acked))
        """,
        store_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    merges = 0
    with DB(store_path, max_file_size=SMALL) as db:
        while writer.poll() is None:
            try:
                db.merge()
                merges += 1
            except MergeInProgressError:
                pass
        out, _ = writer.communicate(timeout=60)
        assert writer.returncode == 0
        acked = json.loads(out)
        db.merge()
        expected = {k.encode(): v.encode() for k, v in acked.items() if v is not None}
        got = {k: v for k, v in db.items() if k.startswith(b"w")}
        assert got == expected
    assert merges >= 1
    with DB(store_path) as db:
        assert {k: v for k, v in db.items() if k.startswith(b"w")} == expected


_MERGER = """
import sys
from kv_backend import DB
db = DB(sys.argv[1], max_file_size=8192)
print("ready", flush=True)
while True:
    db.merge(wait=True)
"""


@pytest.mark.parametrize("seed", range(12))
def test_sigkill_during_merge_loses_nothing(store_path, seed):
    rnd = random.Random(seed)
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=8192) as db:
        _fill(db, model, rounds=1500, keys=200, seed=seed)
    proc = spawn_python(_MERGER, store_path, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(rnd.uniform(0.0, 0.25))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with DB(store_path, max_file_size=8192) as db:
        assert dict(db.items()) == model
        # The store keeps working and merging after the crash.
        db.put(b"after", b"crash")
        db.merge()
        assert db[b"after"] == b"crash"
    assert not [n for n in os.listdir(store_path) if n.endswith(".tmp")]


def test_auto_merge_runs_in_the_background(store_path, monkeypatch):
    import kv_backend.merge as merge_module

    monkeypatch.setattr(merge_module, "AUTO_MERGE_MIN_BYTES", 1)
    written = 0
    with DB(store_path, max_file_size=8192, auto_merge=0.5) as db:
        generation = db.stats()["generation"]
        for i in range(3000):
            value = b"%d" % i * 10
            db.put(b"same-key", value)
            written += 22 + 8 + len(value)
        thread = db._merge_thread
        assert thread is not None
        thread.join(30)
        assert db.stats()["generation"] > generation  # background merges ran (each bumps it)
        # Files closed while a merge was running wait for the next trigger; pull it once more.
        db._maybe_auto_merge()
        if db._merge_thread is not None:
            db._merge_thread.join(30)
        assert db[b"same-key"] == b"2999" * 10
        stats = db.stats()
    assert stats["total_bytes"] < written / 4
    assert len(list_data_files(store_path)) < written // 8192


def test_read_only_process_sees_merged_store(store_path):
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=SMALL) as db:
        _fill(db, model)
        reader = DB(store_path, read_only=True)
        try:
            assert dict(reader.items()) == model
            db.merge()
            db.put(b"new", b"value")
            model[b"new"] = b"value"
            assert dict(reader.items()) == model
        finally:
            reader.close()


def test_merge_from_cli_and_other_process(store_path):
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=SMALL) as db:
        _fill(db, model)
        code = "import sys; from kv_backend.cli import main; sys.exit(main(['merge', sys.argv[1]]))"
        proc = run_python(code, store_path)
        assert "merged" in proc.stdout
        assert dict(db.items()) == model


def test_hint_locations_are_checked_against_the_data_file(tmp_path):
    """A hint whose record would end past its data file is refused (the store replays instead)."""
    from kv_backend.hint import load, write_hints

    path = str(tmp_path / "x.hint")
    keys = [b"a", b"bb", b"ccc"]
    locs = [(16 << 32) | 30, (46 << 32) | 31, (77 << 32) | 23]  # offset << 32 | size, ending at 100
    write_hints(path, 100, keys, locs, [0.0, 0.0, 5.5])
    hints = load(path, 100)
    assert hints is not None
    assert hints.keys == keys and list(hints.locations) == locs and list(hints.sizes) == [30, 31, 23]
    assert hints.entries()[2] == (b"ccc", 77, 23, 5.5)
    write_hints(path, 100, keys, [*locs[:2], (77 << 32) | 24], [0.0, 0.0, 0.0])  # one byte too far
    assert load(path, 100) is None
    assert load(path, 99) is None  # a hint for another size of the data file


def test_live_bytes_are_the_same_through_hints_and_replay(store_path):
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=SMALL) as db:
        _fill(db, model)
        db.merge()
        for i in range(50):  # records after the merge, replayed on top of the hinted files
            db.put(b"k%d" % i, b"after merge")
    with DB(store_path) as db:
        hinted = db.stats()["live_bytes"]
    for name in os.listdir(store_path):
        if name.endswith(".hint"):
            os.remove(os.path.join(store_path, name))
    with DB(store_path) as db:
        assert db.stats()["live_bytes"] == hinted


def test_hinted_keys_replace_older_entries_in_the_live_count(tmp_path):
    from kv_backend.hint import load, write_hints
    from kv_backend.keydir import KeyDir, pack

    path = str(tmp_path / "x.hint")
    write_hints(path, 100, [b"a", b"b"], [(16 << 32) | 40, (56 << 32) | 44], [0.0, 0.0])
    hints = load(path, 100)
    assert hints is not None
    ix = KeyDir()
    ix.apply(0, 0, [(1, b"a", 16, 10, 0.0), (1, b"z", 26, 7, 0.0)])  # PUT records of an older file
    assert ix.live == 17
    ix.apply_hints(1, hints)
    assert ix.live == 7 + 40 + 44  # a's old 10 bytes are replaced
    assert ix.kd[b"a"] == pack(1, 16, 40) and ix.kd[b"z"] == pack(0, 26, 7)


def test_hint_files_are_laid_out_as_file_format_md_says(store_path):
    """Read a merge's hint file with nothing but the layout docs/file-format.md gives."""
    import struct
    import zlib

    with DB(store_path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % i, b"v" * (i + 1), ttl=1000 if i % 2 else None)
        db.merge()
    hints = sorted(n for n in os.listdir(store_path) if n.endswith(".hint"))
    assert hints
    seen = {}
    for name in hints:
        with open(os.path.join(store_path, name), "rb") as f:
            buf = f.read()
        with open(os.path.join(store_path, name[: -len(".hint")] + ".data"), "rb") as f:
            data = f.read()
        magic, version, n, data_size, crc, reserved, key_bytes = struct.unpack_from("<8sIIQIIQ", buf)
        assert (magic, version, reserved) == (b"KVBHINT\0", 3, 0)
        assert data_size == len(data) and len(buf) == 40 + 20 * n + key_bytes
        assert zlib.crc32(buf[40:]) == crc
        klens = struct.unpack_from(f"<{n}I", buf, 40)
        locs = struct.unpack_from(f"<{n}Q", buf, 40 + 4 * n)
        exps = struct.unpack_from(f"<{n}d", buf, 40 + 12 * n)
        assert sum(klens) == key_bytes
        pos = 40 + 20 * n
        for klen, loc, exp in zip(klens, locs, exps, strict=True):
            key = buf[pos : pos + klen]
            pos += klen
            off, size = loc >> 32, loc & 0xFFFFFFFF
            rec = data[off : off + size]
            assert struct.unpack_from("<I", rec)[0] == zlib.crc32(rec[4:])
            assert struct.unpack_from("<BBIId", rec, 4) == (1, 0, klen, size - 22 - klen, exp)
            assert rec[22 : 22 + klen] == key
            seen[key] = rec[22 + klen :]
    assert seen == {b"k%02d" % i: b"v" * (i + 1) for i in range(60)}


def test_merge_outputs_stay_within_what_hint_offsets_can_hold(store_path, monkeypatch):
    """Hint locations keep a record's offset in 32 bits: with max_file_size above 4 GiB a merge
    of more live data than that failed with OverflowError when it wrote the hints; outputs are
    now cut at MAX_OUTPUT_SIZE (here made small, so as not to write 4 GiB)."""
    from kv_backend import merge as merge_mod
    from kv_backend.merge import _Output

    os.makedirs(store_path, exist_ok=True)
    out = _Output(store_path, (1, 1), False)  # the limit itself: an offset of 4 GiB does not fit
    out.end = merge_mod.MAX_OUTPUT_SIZE
    out.add(b"k", b"x" * 30, 0.0)
    with pytest.raises(OverflowError):
        out.finish()
    out.abandon()

    monkeypatch.setattr(merge_mod, "MAX_OUTPUT_SIZE", 4096)
    values = {b"k%03d" % i: os.urandom(200) for i in range(100)}
    with DB(store_path, max_file_size=1 << 20) as db:
        for k, v in values.items():
            db.put(k, v)
        db.merge()
        outputs = [f for f in list_data_files(store_path) if f[1] > 0]
        assert len(outputs) > 1
        for fid in outputs:
            assert os.path.getsize(os.path.join(store_path, data_name(fid))) <= 4096
            assert os.path.exists(os.path.join(store_path, hint_name(fid)))
        assert dict(db.items()) == values
    with DB(store_path) as db:
        assert dict(db.items()) == values
