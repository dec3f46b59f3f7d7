"""`kvb` as an operator's scripts run it: errors as one line and an exit status, never a traceback."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest

import kv_backend.check  # noqa: F401 - imported before a child drops its privileges
from kv_backend import DB
from kv_backend.cli import build_parser, main

NOBODY = 65534


def _as_nobody(fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` in a forked child, as the ``nobody`` user if the tests run as root; return its result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            out: Any = ("ok", fn())
        except BaseException as exc:
            out = ("raised", repr(exc))
        try:
            data = pickle.dumps(out)
            while data:
                data = data[os.write(w, data) :]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    status, value = pickle.loads(b"".join(chunks))
    assert status == "ok", value
    return value


def _main_output(*args: str) -> tuple[int, str, str]:
    """``main(args)``: (exit code, stdout, stderr), for a child process that has no capsys."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_check_of_a_data_file_it_cannot_read_is_an_error_line_not_a_traceback():
    base = tempfile.mkdtemp(prefix="kvb-check-")
    try:
        os.chmod(base, 0o755)
        path = os.path.join(base, "db")
        with DB(path) as db:
            db.put(b"k", b"v")
        os.chmod(path, 0o755)
        data = [n for n in os.listdir(path) if n.endswith(".data")]
        for name in os.listdir(path):
            os.chmod(os.path.join(path, name), 0o644)
        os.chmod(os.path.join(path, data[0]), 0o000 if os.geteuid() else 0o600)
        build_parser().parse_args(["check", path])  # argparse's lazy imports, before dropping privileges
        code, out, err = _as_nobody(lambda: _main_output("check", path))
        assert code == 2, (out, err)
        assert err.startswith("kvb: ") and data[0] in err and "Permission denied" in err
        assert "Traceback" not in err
    finally:
        for root, _dirs, files in os.walk(base):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        shutil.rmtree(base, ignore_errors=True)
