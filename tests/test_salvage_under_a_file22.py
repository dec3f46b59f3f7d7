"""``kvb salvage`` into a path under a file says which one is a file, as ``kvb restore`` does.

It said "cannot create a directory next to DST: File exists" (or "Not a directory"), naming neither
the file in the way nor what was wrong; kvb restore said "... FILE is a file, not a directory". Both
now say it through one helper.
"""

from __future__ import annotations

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB


@pytest.mark.parametrize("depth", [["x"], ["x", "y"]])
@pytest.mark.parametrize("command", ["salvage", "restore"])
def test_a_target_under_a_file_names_the_file(tmp_path, capsys, store_path, command, depth):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    (tmp_path / "f").write_text("x")
    dst = tmp_path.joinpath("f", *depth)
    if command == "restore":
        assert run(capsys, "backup", store_path, str(tmp_path / "bk"))[0] == 0
        args = ["restore", str(tmp_path / "bk"), str(dst)]
    else:
        args = ["salvage", store_path, str(dst)]
    code, out, err = run(capsys, *args)
    assert (code, out) == (2, ""), err
    assert (
        err == f"kvb: cannot create a directory next to {dst}: {tmp_path / 'f'} is a file, not a directory\n"
    )
    assert (tmp_path / "f").read_text() == "x"
