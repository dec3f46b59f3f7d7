"""A rotation over the next data file that a writer killed in its own rotation left (created, its header
written, the file never published) rewrites that file in place: it is never shorter than its header.

Such a file is copied by a backup taken meanwhile (it reads as the header of a rotation that died, which
recovery adopts). The rotation made the file anew (``O_TRUNC``), so for a moment it held no byte, and a
backup reading its copy then failed with "... ended at 0 bytes, before its snapshot length 16" (seen in
tests/django/test_commands_killed23.py, under load).
"""

from __future__ import annotations

import os

import kv_backend.db_write as db_write
from kv_backend import DB
from kv_backend import record as rec
from kv_backend.files import data_name, list_data_files
from kv_backend.snapshot import store_snapshot


def test_a_backup_reads_a_leftover_next_file_whole_while_a_rotation_takes_it(tmp_path, monkeypatch):
    path = str(tmp_path / "kv")
    with DB(path, max_file_size=4096) as db:
        db.put(b"k", b"v")
        ((major, _),) = list_data_files(path)
        leftover = os.path.join(path, data_name((major + 1, 0)))
        with open(leftover, "wb") as f:  # what a writer killed after creating its next file leaves
            f.write(rec.FILE_HEADER_BYTES)
        seen: list[bytes] = []
        with store_snapshot(path) as files:
            (copy,) = [f for f in files if f.name == data_name((major + 1, 0))]
            assert copy.length == rec.FILE_HEADER_SIZE
            real = db_write.write_all

            def write_all(fd: int, data: bytes, offset: int) -> None:
                if not seen:  # the rotation's header write: what a backup reads of its copy meanwhile
                    seen.append(copy.read(0, copy.length))
                real(fd, data, offset)

            monkeypatch.setattr(db_write, "write_all", write_all)
            while list_data_files(path)[-1] == (major + 1, 0) and db._tail[0][0] == major:
                db.put(b"fill", b"x" * 500)  # until the rotation
            monkeypatch.undo()
            assert copy.read(0, copy.length) == rec.FILE_HEADER_BYTES
        assert seen == [rec.FILE_HEADER_BYTES]
        assert os.path.getsize(leftover) >= rec.FILE_HEADER_SIZE
        assert db.get(b"k") == b"v"
    with DB(path) as db:
        assert db.get(b"k") == b"v" and db.get(b"fill") == b"x" * 500
