"""Store ids (the second line of ``KVB_FORMAT``), gaps found in review.

* A backup whose reader may read ``KVB_FORMAT`` but not open ``LOCK`` (made by the store's owner since the
  reader opened the store) trusted an id the owner's process may be adding under that lock, and take
  back: it names none now (salvage and ``DB.store_id`` keep the id read first, as where another holds the
  lock past the wait).
* ``add_store_id`` reads the file through ``files.read_format``, exactly as the bytes it read before (a
  ``\\r\\n`` file put back as it was, a lone ``\\r`` file left alone), and without waiting on a FIFO.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from helpers import fail_store_id_fsync, one_key_store
from test_format_fifo27 import _within

from kv_backend import locking as locking_module
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT, LOCK_FILE
from kv_backend.store_id import add_store_id, read_store_id, trusted_format

ID = "0123456789abcdef0123456789abcdef"


# ----------------------------------------------------------------- 3: a LOCK this user may not open


def _lock_refused(monkeypatch, store: str) -> None:
    real = locking_module.open_regular_in_store
    refused = os.path.join(store, LOCK_FILE)

    def open_regular_in_store(path: str, flags: int) -> int:
        if path == refused and os.path.lexists(path):  # (as a file of another user's, mode 0600)
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path, flags)

    monkeypatch.setattr(locking_module, "open_regular_in_store", open_regular_in_store)


def test_a_backup_names_no_id_where_lock_exists_but_may_not_be_opened(tmp_path, monkeypatch):
    """The store's owner may be adding the id under that lock, and take it back: a backup cannot tell,
    so it names none (as where another holds the lock past the wait); salvage and DB.store_id keep the
    id read first, as they do then."""
    store = one_key_store(tmp_path)
    lock = os.path.join(store, LOCK_FILE)
    _lock_refused(monkeypatch, store)
    assert trusted_format(store, lock, keep_first=False) is None
    assert trusted_format(store, lock) == Path(store, FORMAT_FILE).read_text()
    os.unlink(lock)  # no lock file: no process can be adding an id (it makes LOCK before the rename)
    assert trusted_format(store, lock, keep_first=False) == Path(store, FORMAT_FILE).read_text()


# ----------------------------------------------------------------- 4: add_store_id's read


def test_add_store_id_puts_a_crlf_file_back_byte_for_byte(tmp_path, monkeypatch):
    old = FORMAT_TEXT.replace("\n", "\r\n").encode()
    store = one_key_store(tmp_path, old)
    fail_store_id_fsync(monkeypatch)
    assert add_store_id(store) is None
    assert Path(store, FORMAT_FILE).read_bytes() == old
    monkeypatch.undo()
    given = add_store_id(store)
    assert given is not None and read_store_id(store) == given


def test_add_store_id_leaves_a_lone_cr_file_alone_as_before(tmp_path):
    """No line feed: one line, which is not the format's first line (as the bytes read had it)."""
    old = f"{FORMAT_TEXT.rstrip()}\rid {ID}\r".encode()
    store = one_key_store(tmp_path, old)
    assert add_store_id(store) is None
    assert Path(store, FORMAT_FILE).read_bytes() == old


def test_add_store_id_does_not_wait_on_a_fifo(tmp_path):
    store = one_key_store(tmp_path)
    os.unlink(os.path.join(store, FORMAT_FILE))
    os.mkfifo(os.path.join(store, FORMAT_FILE))
    assert _within(lambda: add_store_id(store)) == ("returned", None)
