"""An OSError of a restore's steps after the download (the copy's format and lock files, its STATE
page, a damaged hint file dropped, its permissions, the move into place) came out as ``cannot restore
into PATH: [Errno N] ...``, which kvb and kv_restore print as it is. Each now names the file and says
what to do, as a BackupError; the temporary copy goes, and the backup restores once the cause is gone."""

from __future__ import annotations

import builtins
import errno
import os
import re

import pytest

import kv_backend.backup as kvbackup
import kv_backend.check as kvcheck
import kv_backend.state as kvstate
from kv_backend import DB, BackupError
from kv_backend.backup import restore
from kv_backend.check import Problem
from kv_backend.cli import main

COPY = ".new.restore-"  # the temporary directory a restore into tmp_path/new builds its copy in


def _fail_in_copy(real, error: int, ending: str):
    """``real`` (an os function, or open), failing with ``error`` for a path in the copy ending in
    ``ending``."""

    def call(path, *args, **kwargs):
        if isinstance(path, str) and COPY in path and path.endswith(ending):
            raise OSError(error, os.strerror(error), path)
        return real(path, *args, **kwargs)

    return call


def _report_hint_damage(monkeypatch) -> None:
    """A copy's first check finds a damaged entry of a hint file (which the restore then drops)."""
    real = kvcheck.check_kept  # (restore's check of the copy it holds: see check_kept)
    checked = set()

    def check(path):
        report = real(path)
        if path not in checked:
            checked.add(path)
            (data,) = [n for n in os.listdir(path) if n.endswith(".data")]
            report.problems = [Problem(os.path.join(path, data), 16, "no record there", hint="1.hint")]
        return report

    monkeypatch.setattr(kvcheck, "check_kept", check)


def _inject(step: str, monkeypatch) -> tuple[int, str]:
    """Make ``step`` fail with a plain OSError; return its errno and the file the message names."""
    if step == "format file":
        monkeypatch.setattr(
            kvbackup, "open", _fail_in_copy(builtins.open, errno.EIO, "KVB_FORMAT"), raising=False
        )
        return errno.EIO, "KVB_FORMAT"
    if step == "lock file":
        monkeypatch.setattr(os, "open", _fail_in_copy(os.open, errno.EIO, "LOCK"))
        return errno.EIO, "LOCK"
    if step == "STATE page":

        def page(path, *args, **kwargs):
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)

        monkeypatch.setattr(kvstate, "SharedState", page)
        return errno.EIO, "its STATE page"
    if step == "hint file dropped":
        _report_hint_damage(monkeypatch)
        monkeypatch.setattr(os, "unlink", _fail_in_copy(os.unlink, errno.EBUSY, "1.hint"))
        return errno.EBUSY, "1.hint"
    if step == "permissions":
        monkeypatch.setattr(os, "chmod", _fail_in_copy(os.chmod, errno.EPERM, ""))
        return errno.EPERM, "the permissions of"
    assert step == "move into place"
    monkeypatch.setattr(os, "rename", _fail_in_copy(os.rename, errno.EXDEV, ""))
    return errno.EXDEV, "cannot move the restored store into"


@pytest.fixture
def url(tmp_path):
    url = str(tmp_path / "bk")
    with DB(str(tmp_path / "store")) as db:
        for i in range(20):
            db.put(b"k%d" % i, b"v" * 100)
        db.backup(url, name="one")
    return url


@pytest.mark.parametrize(
    "step", ["format file", "lock file", "STATE page", "hint file dropped", "permissions", "move into place"]
)
def test_an_os_error_of_a_late_step_names_the_file_and_what_to_do(step, url, tmp_path, monkeypatch, capsys):
    dest = tmp_path / "new"
    dest.mkdir()  # an empty directory: the restore gives the copy its permissions
    error, named = _inject(step, monkeypatch)
    with pytest.raises(BackupError) as info:
        restore(url, str(dest))
    message = str(info.value)
    assert "[Errno" not in message, message
    assert message.startswith(("cannot restore into", "cannot move the restored store into")), message
    assert f"into {dest}: " in message and named in message and os.strerror(error) in message, message
    assert message.endswith(
        "nothing was restored (its temporary copy is removed): remedy that, then restore again"
    )
    assert os.listdir(dest) == [] and sorted(os.listdir(tmp_path)) == ["bk", "new", "store"]
    assert main(["restore", url, str(dest)]) != 0  # kvb prints it as it is
    said = capsys.readouterr().err.strip()
    assert re.sub(r"restore-[0-9a-f]+", "restore-*", said) == re.sub(
        r"restore-[0-9a-f]+", "restore-*", f"kvb: {message}"
    )
    monkeypatch.undo()
    restore(url, str(dest))
    with DB(str(dest), read_only=True) as db:
        assert db.get(b"k19") == b"v" * 100
