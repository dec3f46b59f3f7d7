"""`kvb` reviewed as an operator (and a Redis user) would use it: durations, secrets, error advice,
the environment, `--` values and memory use."""

from __future__ import annotations

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB


@pytest.mark.parametrize("ttl", ["0", "-1", "-0.5", "nan", "inf", "-inf", "1e300"])
def test_put_refuses_a_ttl_that_is_not_above_0_and_keeps_the_key(store_path, capsys, ttl):
    """The engine's ttl=0 deletes the key; `kvb put --ttl 0` did that and exited 0 (Redis: ERR invalid
    expire time, kvb http: 400 invalid_ttl). Now a usage error, exit 2, and the key is untouched."""
    with DB(store_path) as db:
        db.put(b"k", b"old")
    code, out, err = run(capsys, "put", store_path, "k", "new", f"--ttl={ttl}")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "kvb put: error: argument --ttl: must be a number of seconds greater than 0 and at most "
        f"9000000000000000, not {ttl!r} (leave --ttl out for a key that never expires; "
        "kvb delete removes a key)"
    )
    with DB(store_path, read_only=True) as db:
        assert db.get(b"k") == b"old" and db.ttl(b"k") is None


def test_put_ttl_accepts_what_kvb_http_accepts(store_path, capsys):
    from kv_backend.cli import _MAX_TTL
    from kv_backend.http.app import MAX_TTL

    assert _MAX_TTL == MAX_TTL
    assert run(capsys, "put", store_path, "a", "v", "--ttl", "0.25")[0] == 0
    assert run(capsys, "put", store_path, "b", "v", "--ttl", str(MAX_TTL))[0] == 0
    with DB(store_path, read_only=True) as db:
        assert 0 < db.ttl(b"a") <= 0.25 and db.ttl(b"b") > MAX_TTL - 60


@pytest.mark.parametrize(
    ("args", "key", "value"),
    [
        (["k", "--", "--"], b"k", b"--"),  # argparse 3.11 dropped it: "give either VALUE or --stdin"
        (["--", "--", "--"], b"--", b"--"),
        (["--", "-k", "--ttl"], b"-k", b"--ttl"),
        (["k", "--", "-"], b"k", b"-"),
        (["k", "-5"], b"k", b"-5"),  # a negative number needs no --
        (["k", "--ttl", "60", "--", "--"], b"k", b"--"),  # ... after an option (argparse: unrecognized)
        (["k", "--ttl", "60", "v"], b"k", b"v"),  # an option between the positional arguments
    ],
)
def test_put_stores_values_that_start_with_a_dash_after_the_double_dash(store_path, capsys, args, key, value):
    assert run(capsys, "put", store_path, *args) == (0, "", "")
    with DB(store_path, read_only=True) as db:
        assert db.get(key) == value
        assert (db.ttl(key) is None) == ("--ttl" not in args[: args.index("--") if "--" in args else None])
    assert run(capsys, "get", store_path, "--", key.decode()) == (0, value.decode() + "\n", "")


def test_after_the_double_dash_an_option_is_an_argument(store_path, capsys):
    code, _, err = run(capsys, "put", store_path, "k", "--", "v", "--ttl", "5")
    assert code == 2 and err.endswith("error: unrecognized arguments: --ttl 5\n")
    code, _, err = run(capsys, "keys", store_path, "--", "--prefix")
    assert code == 2 and err.endswith("error: unrecognized arguments: --prefix\n")
