"""kvb merge, backup, restore and salvage draw a progress bar on stderr when it is a terminal (with
tqdm, which the backup extra installs), and write none into a pipe or a log file."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
from helpers import child_env, run_kvb

from kv_backend import DB

pytest.importorskip("tqdm", reason="the progress bars are tqdm's (the backup extra)")


def _on_terminal(*args: str) -> tuple[int, str]:
    """Run ``kvb ARGS`` with a 100-column terminal as stdin, stdout and stderr: its status and output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kv_backend", *args],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=child_env(),
        )
    finally:
        os.close(follower)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # (EIO: the child closed the terminal's last descriptor)
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
    return proc.wait(timeout=60), out.decode("utf-8", "replace")


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "s")
    with DB(path, max_file_size=64 * 1024) as db:
        for i in range(2000):
            db.put(b"k%05d" % i, b"v" * 100)
        for i in range(0, 2000, 2):
            db.put(b"k%05d" % i, b"w" * 100)  # something for the merge to drop
    return path


def test_long_commands_draw_a_bar_on_a_terminal(store, tmp_path):
    backups, restored, salvaged = str(tmp_path / "bk"), str(tmp_path / "r"), str(tmp_path / "sv")
    for args, label, done in (
        (("merge", store), "merging", "merged "),
        (("backup", store, backups), "backing up", "complete at"),
        (("restore", backups, restored), "restoring", "restored backup"),
        (("salvage", store, salvaged), "salvaging", ""),
    ):
        status, out = _on_terminal(*args)
        assert status == 0, out
        assert f"{label}: 100%|" in out, out
        assert done in out
    with DB(restored, read_only=True) as db:
        assert len(db) == 2000


def test_no_bar_into_a_pipe(store, tmp_path):
    for args in (("merge", store), ("backup", store, str(tmp_path / "bk"))):
        done = run_kvb(*args)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert "\r" not in done.stdout and "%|" not in done.stdout
