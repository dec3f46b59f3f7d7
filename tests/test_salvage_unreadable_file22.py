"""``kvb salvage`` of a store with a data file this user may not read says whose file it is.

It said "cannot read PATH: Permission denied" and no more, where the other commands (and a salvage
that cannot create its copy) say which user may not use the file, whose it is and what to do.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from helpers import run_as_nobody
from test_cli_review10 import _main_output

import kv_backend.backup  # noqa: F401  (imported before the child drops root: it names the file's owner)
from kv_backend import DB
from kv_backend.cli import build_parser


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_salvage_says_whose_unreadable_data_file_it_is():
    if os.geteuid() != 0:
        pytest.skip("needs root, to run as another user")
    base = tempfile.mkdtemp(prefix="kvb-salvage-")  # (tmp_path may not be open to nobody)
    try:
        os.chmod(base, 0o777)
        src = os.path.join(base, "src")
        with DB(src) as db:
            db.put(b"k", b"v")
        os.chmod(src, 0o755)
        for name in os.listdir(src):
            os.chmod(os.path.join(src, name), 0o644)
        data = os.path.join(src, sorted(n for n in os.listdir(src) if n.endswith(".data"))[0])
        os.chmod(data, 0o600)
        dst = os.path.join(base, "copy")
        build_parser().parse_args(["salvage", src, dst])  # argparse's lazy imports, before dropping root
        code, out, err = run_as_nobody(lambda: _main_output("salvage", src, dst))
        made = os.path.exists(dst)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert (code, out) == (2, ""), err
    assert err == (
        f"kvb: cannot read {data}: Permission denied. User nobody may not use {data} (root's, mode 0600): "
        "run it as a user who may, or give this one access\n"
    )
    assert not made
