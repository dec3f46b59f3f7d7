"""A store on a real full filesystem (a 2 MiB tmpfs, mounted for the test: needs root, else skipped):
what each refused write says to do, and that doing it works.

A store full of overwritten records (a cache, a counter) filled its disk: every write, the merge
that would reclaim the space and a clear all failed with "No space left on device" and nothing said
what would help (the merge could not even begin: it makes a new data file first). The errors now say
how much room a merge or a clear needs and what it frees; the merge needs room only for the live
records it copies, and once that much is free it gives the disk back.
"""

from __future__ import annotations

import pytest
from helpers import run_python
from test_real_filesystems import small_disk  # noqa: F401  (the fixture: a 2 MiB tmpfs)

pytestmark = pytest.mark.xdist_group("mounts")


def test_the_errors_of_a_full_disk_say_what_frees_it_and_that_works(small_disk):  # noqa: F811
    out = run_python(
        """
        import errno, os, sys
        from kv_backend import DB, Store
        from kv_backend.errors import StorageError

        base = sys.argv[1]
        path = os.path.join(base, "store")
        reserve = os.path.join(base, "reserve")
        with open(reserve, "wb") as f:
            f.write(b"r" * 200 * 1024)  # what the user frees later
        db = DB(path, max_file_size=64 * 1024)
        other = DB(path)
        acked, i = {}, 0
        try:
            while True:
                key, value = b"k%03d" % (i % 100), os.urandom(1000)
                db.put(key, value)
                acked[key] = value
                i += 1
        except StorageError as exc:
            assert exc.errno == errno.ENOSPC, exc
            said = str(exc)
        assert "no space left" in said and f"kvb merge {path}" in said, said

        def free():
            st = os.statvfs(base)
            return st.f_bavail * st.f_frsize

        for what in ("clear", "merge"):
            try:
                db.clear() if what == "clear" else db.merge()
                raise AssertionError(what + " worked on a full disk")
            except StorageError as exc:
                assert exc.errno == errno.ENOSPC, exc
                assert "nothing was" in str(exc) and path in str(exc), exc
            assert dict(db.items()) == dict(other.items()) == acked  # reads go on, nothing lost
            assert all(k in db for k in acked)
        os.remove(reserve)  # 200 KiB free: room for the ~100 KB of live records
        before = free()
        report = db.merge()
        assert report.bytes_before - report.bytes_after > 1024 * 1024, report
        assert dict(other.items()) == acked  # (the other process lets the old files go)
        assert free() > before + 1024 * 1024, (before, free())
        db.put(b"after", b"works again")  # without reopening
        acked[b"after"] = b"works again"
        assert dict(other.items()) == dict(db.items()) == acked
        other.close()
        db.close()
        with Store(path) as store:
            store.clear()
            assert len(store) == 0
        print("ok", i)
        """,
        small_disk,
    )
    assert out.stdout.startswith("ok"), out.stdout + out.stderr
