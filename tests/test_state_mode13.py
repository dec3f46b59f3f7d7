"""The state file a store's open makes is no more open than the store's other files (#2).

A restored store has no STATE file (backups do not copy it): its first open makes one. With
umask 022 it came out 0644 while the format file, and every data file the engine adds, were
0600, so a store meant for its owner alone exposed its state page to every user.
"""

from __future__ import annotations

import os
import stat

from kv_backend import DB
from kv_backend.files import FORMAT_FILE, STATE_FILE


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_state_file_made_again_gets_no_more_than_the_format_file_grants(tmp_path):
    path = str(tmp_path / "kv")
    old = os.umask(0o077)
    try:
        with DB(path) as db:
            db.put(b"k", b"v")
    finally:
        os.umask(old)
    assert _mode(os.path.join(path, FORMAT_FILE)) == 0o600
    os.unlink(os.path.join(path, STATE_FILE))  # as after a restore: no STATE yet
    old = os.umask(0o022)
    try:
        with DB(path) as db:
            assert db.get(b"k") == b"v"
            db.put(b"k2", b"v2")
    finally:
        os.umask(old)
    assert _mode(os.path.join(path, STATE_FILE)) == 0o600
    assert all(_mode(os.path.join(path, n)) & 0o077 == 0 for n in os.listdir(path))


def test_a_group_store_keeps_its_group_bits_for_the_state_file(tmp_path):
    path = str(tmp_path / "kv")
    old = os.umask(0o002)
    try:
        DB(path).close()
        assert _mode(os.path.join(path, STATE_FILE)) == 0o664
    finally:
        os.umask(old)
