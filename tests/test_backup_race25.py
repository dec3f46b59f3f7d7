"""Backups, merges, prunes and restores of one target, each in a process of its own, at the same time.

A writer process commits numbered batches (each overwrites a key of 40, adds one and deletes the one
added 20 batches before) and publishes how many it committed. The content of a store after ``M``
batches is known (:func:`expected`), so every restored backup must be exactly that for one ``M``,
between the batches acknowledged before the backup was called and those acknowledged after it
returned: the snapshot it took, no more, no less.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from helpers import exit_code, fork_child, wait_for

import kv_backend.backup as kvbackup
from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, prune_backups, restore
from kv_backend.cli import main as kvb

SLOTS, KEPT = 40, 20


def _batch(db: DB, i: int) -> None:
    with db.batch() as b:
        b.put(b"s%02d" % (i % SLOTS), b"%d" % i * 10)
        b.put(b"n%06d" % i, b"x%d" % i * 20)
        if i >= KEPT:
            b.delete(b"n%06d" % (i - KEPT))


def expected(m: int) -> dict[bytes, bytes]:
    """The content of the store after batches ``0..m-1``."""
    out = {b"s%02d" % (i % SLOTS): b"%d" % i * 10 for i in range(max(0, m - SLOTS), m)}
    out.update({b"n%06d" % i: b"x%d" % i * 20 for i in range(max(0, m - KEPT), m)})
    return out


def acked(ack: str) -> int:
    with open(ack, "rb") as f:
        data = f.read(8)
    return struct.unpack("<Q", data)[0] if len(data) == 8 else 0


def assert_snapshot(path: str, floor: int, ceiling: int) -> int:
    """The store at ``path`` holds exactly the first M batches, ``floor <= M <= ceiling + 1`` (a batch
    committed but not yet acknowledged may be in it); return M."""
    with DB(path, read_only=True) as db:
        items = dict(db.items())
    added = [int(k[1:]) for k in items if k.startswith(b"n")]
    m = max(added) + 1 if added else 0
    assert items == expected(m), f"not the content after {m} batches"
    assert floor <= m <= ceiling + 1, (floor, m, ceiling)
    return m


def _loop(step: Callable[[], object], pause: float = 0.0) -> Callable[[], None]:
    def run() -> None:
        while True:
            step()
            time.sleep(pause)

    return run


@contextmanager
def children(*loops: Callable[[], None]) -> Iterator[list[int]]:
    """Forked processes running ``loops`` (each forever), SIGKILLed at the end; each must still run."""
    pids = [fork_child(loop) for loop in loops]
    try:
        yield pids
        for pid in pids:
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), "a child process ended early"
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            exit_code(pid)


@pytest.fixture
def live(tmp_path, request) -> Iterator[tuple[str, str]]:
    """A store (``tmp_path/store``) that a writer process fills batch after batch while the test
    runs, and the file where it publishes how many it committed (after 30 of them). A test module
    may set ``WRITER_PAUSE`` (seconds between batches) and ``FILE_SIZE`` (the store's max_file_size)."""
    store, ack = str(tmp_path / "store"), str(tmp_path / "ack")
    pause = getattr(request.module, "WRITER_PAUSE", 0.001)
    size = getattr(request.module, "FILE_SIZE", 4096)
    DB(store, max_file_size=size).close()
    fd = os.open(ack, os.O_RDWR | os.O_CREAT)

    def write() -> None:
        with DB(store, max_file_size=size) as db:
            for i in range(10**7):
                _batch(db, i)
                os.pwrite(fd, struct.pack("<Q", i + 1), 0)
                time.sleep(pause)

    with children(write):
        wait_for(lambda: acked(ack) >= 30)
        yield store, ack
    os.close(fd)


def _backed_up(store: str, ack: str, url: str, name: str, **options: object) -> tuple[int, int]:
    """Back up ``store`` as ``name``; return the batches acknowledged before and after."""
    floor = acked(ack)
    backup_store(store, url, name=name, **options)
    return floor, acked(ack)


def _check_objects(url: str, name: str) -> None:
    """Every object the manifest of backup ``name`` names holds what the manifest says (size, sha256)."""
    root = url.removeprefix("file://")
    with open(os.path.join(root, "backups", f"{name}.json"), "rb") as f:
        entries = json.load(f)["files"]
    for e in entries:
        with open(os.path.join(root, e["stored_as"]), "rb") as f:
            data = f.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (e["size"], e["sha256"]), e["stored_as"]


def test_two_processes_back_up_one_live_store_to_one_url(live, tmp_path):
    store, ack = live
    url = str(tmp_path / "bk")
    bounds = str(tmp_path / "bounds")

    def backups(tag: str) -> Callable[[], None]:
        def run() -> None:
            for k in range(3):
                floor, ceiling = _backed_up(store, ack, url, f"{tag}{k}")
                with open(f"{bounds}-{tag}{k}", "w") as f:
                    json.dump([floor, ceiling], f)

        return run

    pids = [fork_child(backups(tag)) for tag in ("a", "b")]
    assert [exit_code(pid) for pid in pids] == [0, 0]
    names = sorted(i.name for i in list_backups(url))
    assert names == ["a0", "a1", "a2", "b0", "b1", "b2"]
    for n in names:
        with open(f"{bounds}-{n}") as f:
            floor, ceiling = json.load(f)
        restore(url, str(tmp_path / f"r-{n}"), name=n)
        assert_snapshot(str(tmp_path / f"r-{n}"), floor, ceiling)
        _check_objects(url, n)


def test_backups_while_kvb_merge_runs_again_and_again(live, tmp_path):
    store, ack = live
    url = str(tmp_path / "bk")
    merges = str(tmp_path / "merges")

    def merge() -> None:
        assert kvb(["merge", store]) in (0, 1)  # (1: another merge ran; there is none here)
        with open(merges, "a") as f:
            f.write("m")

    with children(_loop(merge, 0.01)):
        bounds = {}
        for k in range(4):
            ran = 2 * k  # (merges run between the backups)
            wait_for(lambda ran=ran: os.path.exists(merges) and os.path.getsize(merges) > ran)
            bounds[f"m{k}"] = _backed_up(store, ack, url, f"m{k}")
    for n, (floor, ceiling) in bounds.items():
        restore(url, str(tmp_path / f"r-{n}"), name=n)
        assert_snapshot(str(tmp_path / f"r-{n}"), floor, ceiling)
        assert any(f.endswith(".hint") for f in os.listdir(tmp_path / f"r-{n}"))  # (merged files)


def test_backups_while_another_process_prunes(live, tmp_path):
    store, ack = live
    url = str(tmp_path / "bk")
    _backed_up(store, ack, url, "first")

    with children(_loop(lambda: prune_backups(url, keep=1), 0.002)):
        for k in range(5):
            floor, ceiling = _backed_up(store, ack, url, f"p{k}")
            # The newest: kept by every prune (keep=1), its objects too, those it took from earlier
            # backups that prune removed meanwhile as well.
            restore(url, str(tmp_path / f"r{k}"), name=f"p{k}")
            assert_snapshot(str(tmp_path / f"r{k}"), floor, ceiling)
            _check_objects(url, f"p{k}")
    prune_backups(url, keep=1)
    root = tmp_path / "bk"
    assert [i.name for i in list_backups(url)] == ["p4"] and os.listdir(root / "pending") == []
    with open(root / "backups" / "p4.json", "rb") as f:
        named = {e["stored_as"].partition("/")[2] for e in json.load(f)["files"]}
    assert set(os.listdir(root / "files")) == named  # (what the pruned ones alone named: collected)


def test_restores_while_backups_write_new_manifests(live, tmp_path):
    store, ack = live
    url = str(tmp_path / "bk")
    bounds = {"b0": _backed_up(store, ack, url, "b0")}
    restored = tmp_path / "restored"
    restored.mkdir()
    count = [0]

    def restore_newest() -> None:
        count[0] += 1
        dest = str(restored / f"{count[0]:04d}")
        report = restore(url, dest)
        os.rename(dest, f"{dest}-{report.name}")

    def restored_from(name: str) -> bool:
        return any(d.endswith(f"-{name}") for d in os.listdir(restored))

    with children(_loop(restore_newest)):  # (each restore succeeds: a failed one ends the child)
        wait_for(lambda: restored_from("b0"))
        for k in range(1, 6):
            bounds[f"b{k}"] = _backed_up(store, ack, url, f"b{k}")
            time.sleep(0.05)
        wait_for(lambda: restored_from("b5"))
    done = sorted(d for d in os.listdir(restored) if not d.startswith("."))  # (not a restore's copy)
    batches = {}
    for n in bounds:
        restore(url, str(tmp_path / f"own-{n}"), name=n)
        batches[n] = assert_snapshot(str(tmp_path / f"own-{n}"), *bounds[n])
    for d in done:
        if "-" not in d:
            continue  # (the one killed midway, not renamed yet)
        n = d.partition("-")[2]
        # The whole of one complete backup: the very snapshot it took.
        assert assert_snapshot(str(restored / d), *bounds[n]) == batches[n]


def _kill_at_fsync(where: str, n: int) -> None:
    """In a forked child: SIGKILL this process at its ``n``-th fsync of a path matching ``where`` (a
    regular expression), before it runs."""
    real, seen = os.fsync, [0]

    def fsync(fd: int) -> None:
        if re.search(where, os.readlink(f"/proc/self/fd/{fd}")):
            seen[0] += 1
            if seen[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        real(fd)

    os.fsync = fsync


@pytest.mark.parametrize(
    ("where", "n", "reused"),
    [
        ("/files/", 1, False),  # its first object written, not synced, named by no journal
        ("/files/", 3, True),  # two objects named by its journal, the third half made
        ("/pending/[^/]*tmp$", 3, True),  # its journal named one object, then two: not fsynced
        ("/backups/", 1, True),  # every object sent, its manifest not yet in place
    ],
)
def test_a_backup_after_one_killed_midway_reuses_only_sound_objects(live, tmp_path, where, n, reused):
    store, ack = live
    url = str(tmp_path / "bk")
    wait_for(lambda: acked(ack) >= 100)  # (five data files or so: the kill comes before the last)

    def killed() -> None:
        kvbackup.JOURNAL_INTERVAL = 0  # (its journal names each object as soon as it is sent)
        _kill_at_fsync(where, n)
        backup_store(store, url, name="killed")

    assert exit_code(fork_child(killed)) == -signal.SIGKILL
    assert list_backups(url) == []
    floor = acked(ack)
    report = backup_store(store, url, name="next")
    ceiling = acked(ack)
    assert (report.files_skipped > 0) == reused
    restore(url, str(tmp_path / "r"), name="next")
    assert_snapshot(str(tmp_path / "r"), floor, ceiling)
    _check_objects(url, "next")


def test_a_prune_after_a_killed_backup_keeps_what_the_next_one_reuses(live, tmp_path):
    store, ack = live
    url = str(tmp_path / "bk")
    wait_for(lambda: acked(ack) >= 100)

    def killed() -> None:
        kvbackup.JOURNAL_INTERVAL = 0
        _kill_at_fsync("/files/", 3)  # (two objects named by its journal, the third cut short)
        backup_store(store, url, name="killed")

    assert exit_code(fork_child(killed)) == -signal.SIGKILL
    (journal,) = os.listdir(tmp_path / "bk" / "pending")
    with open(tmp_path / "bk" / "pending" / journal, "rb") as f:
        named = {e["stored_as"].partition("/")[2] for e in json.load(f)["files"]}
    assert len(named) == 2 and len(os.listdir(tmp_path / "bk" / "files")) == 3
    # In another process on this machine: the backup is known to be dead, and what it did not name
    # is collected at once.
    assert exit_code(fork_child(lambda: prune_backups(url, keep=1))) == 0
    assert set(os.listdir(tmp_path / "bk" / "files")) == named
    floor = acked(ack)
    report = backup_store(store, url, name="next")
    ceiling = acked(ack)
    assert report.files_skipped >= 1
    restore(url, str(tmp_path / "r"), name="next")
    assert_snapshot(str(tmp_path / "r"), floor, ceiling)
    _check_objects(url, "next")


def _static_store(path: str, tag: bytes) -> dict[bytes, bytes]:
    """A store whose data files have the names and sizes of any other made with another ``tag`` (of the
    same length), and other bytes; return its content."""
    with DB(path, max_file_size=4096) as db:
        for i in range(300):
            db.put(b"k%03d" % (i % 120), tag + b"%04d" % i * 8)
        return dict(db.items())


def test_backups_of_two_stores_to_one_url_at_once_are_kept_apart(tmp_path):
    # Two stores backed up to one URL at once, three backups each: a backup that finds the other
    # store's backups there is refused (BackupOfAnotherStoreError), before it writes anything or, where
    # the other's manifest came while it ran, before its own manifest. Those that got in (both stores'
    # first ones, where they ran side by side) share no object (files of the same names and sizes,
    # other bytes); each restores, by its name, into its own store's content, and the listing says
    # which store each came from.
    url = str(tmp_path / "bk")
    stores = {tag: str(tmp_path / f"store-{tag}") for tag in ("a", "b")}
    content = {tag: _static_store(path, tag.encode()) for tag, path in stores.items()}

    def backups(tag: str) -> Callable[[], None]:
        def run() -> None:
            for k in range(3):
                try:
                    backup_store(stores[tag], url, name=f"{tag}{k}")
                except kvbackup.BackupOfAnotherStoreError:
                    pass

        return run

    pids = [fork_child(backups(tag)) for tag in stores]
    assert [exit_code(pid) for pid in pids] == [0, 0]
    infos = list_backups(url)
    assert infos and all(i.source == stores[i.name[0]] for i in infos)
    assert len({i.name[0] for i in infos}) == 1 or {i.name for i in infos} <= {"a0", "b0"}
    objects: dict[str, set[str]] = {"a": set(), "b": set()}
    for info in infos:
        tag = info.name[0]
        with open(tmp_path / "bk" / "backups" / f"{info.name}.json", "rb") as f:
            objects[tag].update(e["stored_as"] for e in json.load(f)["files"])
        restore(url, str(tmp_path / f"r-{info.name}"), name=info.name)
        with DB(str(tmp_path / f"r-{info.name}"), read_only=True) as db:
            assert dict(db.items()) == content[tag]
        _check_objects(url, info.name)
    assert not objects["a"] & objects["b"]


def test_backups_while_writers_are_killed_midway(tmp_path):
    # A writer SIGKILLed at any moment (mid-batch, mid-rotation) and the next one going on where it
    # stopped: each backup holds whole batches only, those acknowledged before it at least.
    store, ack = str(tmp_path / "store"), str(tmp_path / "ack")
    url = str(tmp_path / "bk")
    DB(store, max_file_size=4096).close()
    fd = os.open(ack, os.O_RDWR | os.O_CREAT)

    def write() -> None:
        with DB(store, max_file_size=4096) as db:
            i = max((int(k[1:]) + 1 for k in db.keys(prefix=b"n")), default=0)  # (where the last stopped)
            while True:
                _batch(db, i)
                i += 1
                os.pwrite(fd, struct.pack("<Q", i), 0)

    bounds = {}
    try:
        for k in range(6):
            pid = fork_child(write)
            wait_for(lambda k=k: acked(ack) > 40 * k + 20)
            if k % 2:
                bounds[f"k{k}"] = _backed_up(store, ack, url, f"k{k}")  # (while it writes)
            os.kill(pid, signal.SIGKILL)
            exit_code(pid)
            if not k % 2:
                bounds[f"k{k}"] = _backed_up(store, ack, url, f"k{k}")  # (after its death)
    finally:
        os.close(fd)
    for n, (floor, ceiling) in bounds.items():
        restore(url, str(tmp_path / f"r-{n}"), name=n)
        assert_snapshot(str(tmp_path / f"r-{n}"), floor, ceiling)
