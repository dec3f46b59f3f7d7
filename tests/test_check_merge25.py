"""kvb check and kvb salvage beside a merge in another process.

A merge rotates the active file (cutting off the zeros reserved after its data), renames its outputs into
place, then unlinks its inputs (data file, then hint file), oldest first, while kvb check and kvb salvage,
which take no store lock, list and read the files. These tests run a merge at the worst moments: right
after each call of check or salvage that names a file of the store, in turn, and while the directory is
being listed (a listing is no snapshot: ext4 lists by the names' hashes, so a listing across the unlinks
holds an older input and misses a newer one). The stress test runs a writer that merges in a loop beside
repeated checks and salvages.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from kv_backend import DB
from kv_backend import store_id as kv_store_id
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files, parse_data_name
from kv_backend.salvage import SalvageError, salvage
from tests.helpers import child_env, spawn_python

_VALUE = b"v" * 300

#: The notes a merge must never cause: each says something is wrong with the store.
_FALSE_ALARMS = ("missing", "damaged page", "damaged or stale hint", "changed too often")


def _false_alarms(notes: list[str]) -> list[str]:
    return [n for n in notes if any(word in n for word in _FALSE_ALARMS)]


def _build(path: str) -> None:
    """Make at ``path`` a store merged once (outputs with hint files, several of one major), then written
    to across a few more 4 KiB files."""
    with DB(path, max_file_size=4096) as db:
        for i in range(40):
            db.put(b"k%02d" % i, _VALUE)
        db.merge(wait=True)
        for i in range(20):
            db.put(b"n%02d" % i, _VALUE)


@pytest.fixture
def merged(store_path):
    """A writer of the store :func:`_build` makes, open."""
    _build(store_path)
    assert sum(1 for fid in list_data_files(store_path) if fid[1] > 0) >= 3
    with DB(store_path, max_file_size=4096) as db:
        yield db


#: The calls that name a file (or the directory) of the store: where a merge can run in between.
_FILE_CALLS = ((os, "listdir"), (os, "open"), (os, "stat"), (os, "lstat"), (builtins, "open"))


def _merge_after_call(monkeypatch, store: str, db: DB | None, k: int) -> list[str]:
    """Make the ``k``-th call (from 1; 0: before the first) that names the directory ``store`` or a file in
    it run a merge of ``db`` right after it; with ``db`` None, only count the calls. Returns the calls
    made, ``name(file)`` each, and ``merge`` where the merge ran."""
    calls: list[str] = []
    busy: list[bool] = []

    def hook(name: str, real):  # type: ignore[no-untyped-def]
        def call(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if busy or not isinstance(path, (str, bytes)):
                return real(path, *args, **kwargs)
            text = os.fsdecode(path)
            if text != store and os.path.dirname(text) != store:
                return real(path, *args, **kwargs)
            if k == 0 and not calls and db is not None:
                _merge(db, calls, busy)
            try:
                return real(path, *args, **kwargs)
            finally:
                calls.append(f"{name}({os.path.basename(text)})")
                if len(calls) == k and db is not None:
                    _merge(db, calls, busy)

        return call

    for module, name in _FILE_CALLS:
        monkeypatch.setattr(module, name, hook(name, getattr(module, name)))
    taken = kv_store_id.lock_file_taken

    @contextlib.contextmanager
    def lock_taken(path, **options):  # type: ignore[no-untyped-def]
        # (Salvage reads its source's id again under the source's write lock: a merge run by this
        # thread meanwhile would wait for that lock, its own. Another process's merge waits its turn.)
        with taken(path, **options) as held:
            busy.append(True)
            try:
                yield held
            finally:
                busy.clear()

    monkeypatch.setattr(kv_store_id, "lock_file_taken", lock_taken)
    return calls


def _merge(db: DB, calls: list[str], busy: list[bool]) -> None:
    busy.append(True)
    try:
        db.merge(wait=True)
    finally:
        busy.clear()
    calls.append("merge")


@pytest.mark.parametrize("tool", ["check", "salvage"])
def test_a_merge_between_any_two_file_calls_of_check_or_salvage(tmp_path, monkeypatch, tool):
    """A merge runs right after each call of kvb check (or kvb salvage) that names a file of the store, in
    turn (a fresh copy of the same store each time): every report says the store is sound, without a
    false alarm, and the salvage copies every key. Before, where the merge ran between check's test that
    an input's hint file exists and its reading of it, check noted 'damaged or stale hint file'; between
    its test that the hint file checks out and its reading of it entry by entry, it failed with
    FileNotFoundError; salvage failed ('cannot read ...: No such file or directory') where the merge
    ran between its listing and its reading of the files."""
    origin = str(tmp_path / "origin")
    _build(origin)
    with DB(origin, read_only=True) as db:
        items = dict(db.items())

    def run(store: str, k: int, db: DB | None) -> list[str]:
        calls = _merge_after_call(monkeypatch, store, db, k)
        try:
            if tool == "check":
                report = check(store)
                assert report.ok, (k, calls, report.problems)
                notes = report.notes
            else:
                copy = salvage(store, store + "-copy")
                assert copy.clean, (k, calls, copy)
                notes = copy.notes
        finally:
            monkeypatch.undo()
        assert not _false_alarms(notes), (k, calls, notes)
        if tool == "salvage":
            with DB(store + "-copy", read_only=True) as copy_db:
                assert dict(copy_db.items()) == items, (k, calls)
        return calls

    counted = run(_fresh(origin, tmp_path / "count"), 0, None)
    assert sum(c.endswith(".hint)") for c in counted) >= 3, counted
    for k in range(len(counted) + 1):
        store = _fresh(origin, tmp_path / f"k{k}")
        with DB(store, max_file_size=4096) as db:
            calls = run(store, k, db)
            assert "merge" in calls, (k, calls)


def _fresh(origin: str, where) -> str:  # type: ignore[no-untyped-def]
    """A copy of the closed store ``origin`` at ``where``."""
    shutil.copytree(origin, str(where))
    return str(where)


def _listing_across_unlinks(monkeypatch, store: str, db: DB) -> list[str]:
    """Make the first listing of ``store`` run a merge of ``db`` while it lists, as one in the order of
    the names' hashes sees it: the names there before the merge and its new active file (made by the
    rotation it starts with), less the merge's outputs (listed before they were renamed) and less the
    second of the previous merge's outputs (listed after it was unlinked; the first and the third,
    listed before, are in it). Every later listing is the directory's own. Returns the name left out."""
    real = os.listdir
    left_out: list[str] = []

    def listing(path=".", *args, **kwargs):  # type: ignore[no-untyped-def]
        names = real(path, *args, **kwargs)
        if left_out or not isinstance(path, str) or os.path.abspath(path) != os.path.abspath(store):
            return names
        before = set(names)
        outputs = sorted(fid for fid in map(parse_data_name, names) if fid is not None and fid[1] > 0)
        left_out.append(data_name(outputs[1]))
        db.merge(wait=True)
        after = real(path)
        active = max(fid for fid in map(parse_data_name, after) if fid is not None)
        assert data_name(outputs[0]) not in after and data_name(outputs[2]) not in after
        return sorted((before - {left_out[0]}) | {data_name(active)})

    monkeypatch.setattr(os, "listdir", listing)
    return left_out


def test_check_does_not_note_a_file_missing_that_a_merge_removed_while_it_listed(
    store_path, merged, monkeypatch
):
    """The listing holds two inputs of the merge and misses the one between them: check noted it missing
    from the sequence of names (a deleted file, whose keys read older values: restore from a backup). It
    checks the store as the merge left it instead."""
    left_out = _listing_across_unlinks(monkeypatch, store_path, merged)
    report = check(store_path)
    assert left_out, "check did not list the store"
    assert not _false_alarms(report.notes), report.notes
    assert report.ok, report.problems
    assert report.files == len(list_data_files(store_path))


def test_salvage_beside_a_merge_that_removed_files_while_it_listed(store_path, merged, monkeypatch, tmp_path):
    """kvb salvage, listing so, noted the file missing, and failed on the first listed file the merge had
    removed ('cannot read ...: No such file or directory'); it copies every key of the store."""
    left_out = _listing_across_unlinks(monkeypatch, store_path, merged)
    report = salvage(store_path, str(tmp_path / "copy"))
    monkeypatch.undo()
    assert left_out, "salvage did not list the store"
    assert not _false_alarms(report.notes), report.notes
    assert report.clean
    with DB(str(tmp_path / "copy"), read_only=True) as copy:
        assert dict(copy.items()) == dict(merged.items())


_WRITER = """
import sys, time
from kv_backend import DB
path, seconds = sys.argv[1], float(sys.argv[2])
with DB(path, max_file_size=4096) as db:
    deadline = time.monotonic() + seconds
    i = merges = 0
    print("ready", flush=True)
    while time.monotonic() < deadline:
        for _ in range(30):
            db.put(b"k%03d" % (i % 97), b"v" * 200)
            i += 1
        db.merge(wait=True)
        merges += 1
    print(merges, flush=True)
"""


def test_check_and_salvage_beside_a_process_that_writes_and_merges_in_a_loop(store_path, tmp_path):
    """A writer in another process rotates 4 KiB files and merges the store over and over while kvb check
    runs again and again (the command, and check() in this process meanwhile), and kvb salvage now and
    then: every report says the store is sound, with no false alarm. Before, in 20 seconds of this, 31 of
    7,252 checks failed with FileNotFoundError (a hint file gone between two readings of it) and 4 noted
    a sound hint file 'damaged or stale'; salvage was killed by SIGBUS (it read its map of the active file
    past the end the merge's rotation had cut it to)."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(97):
            db.put(b"k%03d" % i, b"v" * 200)
    seconds = 4.0
    writer = spawn_python(_WRITER, store_path, str(seconds), stdout=subprocess.PIPE, text=True)
    command: subprocess.Popen | None = None
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        checks = commands = salvages = refused = 0
        start = time.monotonic()
        while (now := time.monotonic()) < start + seconds - 0.5:
            if command is None or command.poll() is not None:
                if command is not None:
                    _assert_sound_json(command)
                    commands += 1
                command = subprocess.Popen(
                    [sys.executable, "-m", "kv_backend", "check", store_path, "--json"],
                    env=child_env(),
                    stdout=subprocess.PIPE,
                    text=True,
                )
            if now > start + 0.5 * salvages:
                # Each salvage copies the store, or, where a merge removed files it listed on each of
                # its passes (a busy machine slows its reads, not the merges), refuses with the error
                # docs/engine.md gives for it: never a false alarm, never a crash.
                try:
                    copy = salvage(store_path, str(tmp_path / f"copy{salvages}"))
                except SalvageError as exc:
                    assert "changed too often" in str(exc), exc
                    refused += 1
                else:
                    assert copy.clean and not _false_alarms(copy.notes), copy
                salvages += 1
            report = check(store_path)
            checks += 1
            assert report.ok, report.problems
            assert not _false_alarms(report.notes), report.notes
        merges = int(writer.stdout.readline())
    finally:
        writer.wait(timeout=60)
        if command is not None:
            command.wait(timeout=60)
    assert command is not None
    _assert_sound_json(command)
    assert writer.returncode == 0
    assert commands >= 1 and salvages >= 3 and merges >= 3, (checks, commands, salvages, merges)
    counts = f"{checks} checks, {commands} kvb check runs, {salvages} salvages ({refused} refused)"
    print(f"{counts}, {merges} merges")


def _assert_sound_json(command: subprocess.Popen) -> None:
    """Assert that the ``kvb check --json`` run by ``command`` (ended) found the store sound, without a
    false alarm."""
    out = command.stdout.read() if command.stdout is not None else ""
    assert command.wait() == 0, out
    doc = json.loads(out)
    assert doc["ok"] and not _false_alarms(doc["notes"]), doc
