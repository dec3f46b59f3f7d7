"""kvb check reads the STATE page without the write lock: a writer that rotated and wrote between its read
of the tail word and its read of the intent word left an intent (in the new file, past its header) that
does not vouch for the tail it had read, and check took the page for a damaged one (read the store as
without a page, and said so). It reads the tail again after the intent now, until it stood still."""

from __future__ import annotations

import os
import struct

from kv_backend import DB, state
from kv_backend import check as check_module
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import FILE_HEADER_BYTES, FILE_HEADER_SIZE
from kv_backend.state import published_tail


def test_a_rotation_between_the_reads_of_the_tail_and_the_intent(store_path, monkeypatch):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    major, _ = published_tail(store_path)
    real = state.page_intent
    rotated: list[bool] = []

    def intent_after_a_rotation(store: str) -> tuple[int, int] | None:
        if not rotated:
            rotated.append(True)  # (a writer rotates, then stores the intent of its next write)
            with open(os.path.join(store, data_name((major + 1, 0))), "wb") as f:
                f.write(FILE_HEADER_BYTES)
            with open(os.path.join(store, "STATE"), "r+b") as f:
                f.seek(16)
                f.write(struct.pack("=Q", (major + 1) << 40 | FILE_HEADER_SIZE))
                f.seek(32)
                f.write(struct.pack("=Q", (major + 1) << 40 | 60))
        return real(store)

    monkeypatch.setattr(state, "page_intent", intent_after_a_rotation)
    monkeypatch.setattr(check_module, "page_intent", intent_after_a_rotation, raising=False)
    report = check(store_path)
    assert rotated
    assert not any("damaged page" in note for note in report.notes), report.notes
    assert report.problems == []
