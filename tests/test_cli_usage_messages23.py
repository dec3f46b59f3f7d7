"""The usage errors of ``kvb`` options say which values the option takes, and no other.

A user who gives ``kvb http --max-pending-bytes`` something that is no number was told "a whole
number >= 0", and then, on trying 0, that it must be >= 1 (docs/http.md: at least 1).
"""

from __future__ import annotations

import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend.cli import build_parser


@pytest.mark.parametrize("bad", ["x", "-5", "1.5", "0", ""])
def test_max_pending_bytes_usage_error_names_the_values_it_takes(bad, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["http", "--dir", "unused", "--max-pending-bytes", bad])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--max-pending-bytes: must be a number of bytes >= 1" in err and ">= 0" not in err


def test_max_pending_bytes_takes_a_whole_number_of_bytes():
    args = build_parser().parse_args(["http", "--dir", "unused", "--max-pending-bytes", "4096"])
    assert args.max_pending_bytes == 4096


@pytest.mark.parametrize("given", [["k"], ["k", "v", "--stdin"]])
def test_put_without_exactly_one_value_is_a_usage_error_after_the_usage(store_path, capsys, given):
    """``kvb put DIR k`` (no VALUE, no --stdin) printed one line without the usage, where
    docs/engine.md says a command line that is not valid gets the usage first, as argparse gives it."""
    code, out, err = run(capsys, "put", store_path, *given)
    assert (code, out) == (2, "")
    assert err.startswith("usage: kvb put ")
    assert err.endswith("kvb put: error: give either VALUE or --stdin\n")
    assert not os.path.exists(store_path)  # refused before the store is made
