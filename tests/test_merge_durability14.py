"""A merge's switch-over is durable in the order a crash (or a power failure) needs: every output
(data and hint file) is on disk before the rename that makes it live, the renames are on disk
(the directory fsynced) before any input is removed, and the removals are made durable too."""

from __future__ import annotations

import os

from kv_backend import DB


def _events(monkeypatch) -> list[tuple[str, str]]:
    """Record every fsync (of a file or a directory, by path), rename and unlink of this process."""
    events: list[tuple[str, str]] = []
    real = {name: getattr(os, name) for name in ("fsync", "fdatasync", "replace", "unlink")}

    def syncing(name):
        def sync(fd):
            events.append(("fsync", os.path.realpath(os.readlink(f"/proc/self/fd/{fd}"))))
            return real[name](fd)

        return sync

    def replace(src, dst, *args, **kwargs):
        events.append(("replace", os.path.realpath(src)))
        return real["replace"](src, dst, *args, **kwargs)

    def unlink(path, *args, **kwargs):
        events.append(("unlink", os.path.realpath(path)))
        return real["unlink"](path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", syncing("fsync"))
    monkeypatch.setattr(os, "fdatasync", syncing("fdatasync"))
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "unlink", unlink)
    return events


def test_merge_fsyncs_outputs_before_their_renames_and_renames_before_removing_inputs(
    store_path, monkeypatch
):
    with DB(store_path, max_file_size=8192) as db:
        for i in range(600):
            db.put(b"k%d" % (i % 150), b"v%d" % i * 10)
        inputs = {
            os.path.realpath(os.path.join(store_path, n))
            for n in os.listdir(store_path)
            if n.endswith(".data")
        }
        events = _events(monkeypatch)
        db.merge()
    directory = os.path.realpath(store_path)
    renamed = [i for i, (what, _) in enumerate(events) if what == "replace"]
    removed = [i for i, (what, path) in enumerate(events) if what == "unlink" and path in inputs]
    assert len(renamed) >= 4 and removed  # several outputs, each a hint and a data file
    for i in renamed:
        tmp = events[i][1]
        assert ("fsync", tmp) in events[:i], f"{tmp} renamed before it was fsynced"
        # ... and its directory entry too, before any rename can make it live
        assert ("fsync", directory) in events[events.index(("fsync", tmp)) : i]
    between = events[max(renamed) : min(removed)]
    assert ("fsync", directory) in between, "inputs removed before the renames were durable"
    assert ("fsync", directory) in events[max(removed) :], "the removals were never made durable"
    with DB(store_path, read_only=True) as db:
        assert len(db) == 150
