"""An expired newest value hides the older values of its key, through merges and replays: the
merge drops it with them, and no order of replay (hint files, the active file, a second merge, a
process that had the store open all along) brings an older value back."""

from __future__ import annotations

import os
import time

from helpers import run_python

from kv_backend import DB


def test_an_expired_value_never_brings_an_older_one_back(store_path):
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"k", b"oldest")
        db.put(b"pad1", b"x" * 3000)
        db.put(b"k", b"older", ttl=1000)
        db.put(b"pad2", b"y" * 3000)
        for ttl in (0.2, 1, 5):  # longer if a loaded machine took the whole ttl to get the watcher open
            expires = time.time() + ttl
            db.put(b"k", b"newest", expires_at=expires)  # in a file the merge takes
            db.put(b"pad3", b"z" * 3000)
            db.put(b"pad4", b"w" * 3000)  # so that the newest value lies in a closed file
            watcher = DB(store_path, read_only=True)
            seen = watcher.get(b"k")
            if seen == b"newest" or time.time() < expires:
                break
            watcher.close()
        assert seen == b"newest"
        time.sleep(max(expires - time.time(), 0) + 0.05)
        assert db.get(b"k") is None and watcher.get(b"k") is None
        db.merge()
        assert any(n.endswith(".hint") for n in os.listdir(store_path))
        assert db.get(b"k") is None and watcher.get(b"k") is None
        db.put(b"other", b"after the merge")
        db.merge()  # the merged files merged again, with the active file's records
        assert db.get(b"k") is None and watcher.get(b"k") is None
        watcher.close()
    # A fresh process replays hint files and data files in their order.
    out = run_python(
        "import sys; from kv_backend import DB\n"
        "with DB(sys.argv[1], read_only=True) as db: print(db.get(b'k'), sorted(db.keys()))",
        store_path,
    ).stdout
    assert out.strip() == "None [b'other', b'pad1', b'pad2', b'pad3', b'pad4']"
