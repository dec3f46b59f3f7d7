"""The HTTP interface run as docs/http.md says, under conditions the basic tests do not create."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from helpers import ROOT
from test_http import Server, raw_request, url


def documented_uvicorn_command() -> tuple[dict[str, str], list[str]]:
    """The several-workers ``uvicorn`` command line of docs/http.md: (its environment, its arguments)."""
    text = Path(ROOT, "docs", "http.md").read_text(encoding="utf-8").replace("\\\n", " ")
    line = next(m.group(1) for m in re.finditer(r"^\$ (KVB_HTTP_DIR=\S+ uvicorn .*)$", text, re.M))
    words = shlex.split(line)
    env = dict(w.split("=", 1) for w in words[: words.index("uvicorn")])
    return env, words[words.index("uvicorn") + 1 :]


def test_documented_uvicorn_workers_command_serves_the_longest_key(tmp_path):
    """The multi-worker command accepts what `kvb http` does: a 65536-byte key, 192 KiB once encoded."""
    env, args = documented_uvicorn_command()
    assert "--workers" in args
    path = str(tmp_path / "store")
    env["KVB_HTTP_DIR"] = path
    args[args.index("--workers") + 1] = "2"
    del args[args.index("--port") : args.index("--port") + 2]  # Server picks a free port
    srv = Server(path, str(tmp_path / "server.log"), env=env, command=["-m", "uvicorn", *args])
    try:
        key = b"\xff" * 65536
        assert raw_request(srv, "PUT", url(key), b"long")[0] == 201
        assert raw_request(srv, "GET", url(key)) == (200, b"long")
    finally:
        srv.stop()
