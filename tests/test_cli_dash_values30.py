"""kvb keys has a -0 option, so argparse takes any argument of it that looks like a negative number
(-5, -1) for an option: `kvb keys DIR --prefix -5` failed with "argument --prefix: expected one
argument" and no word on what to do. The error now says to join such a value to its option with '='."""

from __future__ import annotations

from helpers import run_kvb

from kv_backend import DB


def test_a_value_that_starts_with_a_dash_is_given_with_equals(tmp_path):
    store = str(tmp_path / "s")
    with DB(store) as db:
        db.put(b"-5a", b"1")
        db.put(b"b", b"2")
    done = run_kvb("keys", store, "--prefix", "-5")
    assert done.returncode == 2
    assert "argument --prefix: expected one argument" in done.stderr
    assert "--prefix=-5" in done.stderr, done.stderr
    done = run_kvb("keys", store, "--prefix=-5")  # what the error says to do
    assert (done.returncode, done.stdout) == (0, "-5a\n")
    done = run_kvb("keys", store, "--limit", "-1")
    assert done.returncode == 2 and "--limit=-1" in done.stderr, done.stderr


def test_no_such_advice_for_a_missing_value(tmp_path):
    store = str(tmp_path / "s")
    DB(store).close()
    done = run_kvb("keys", store, "--prefix")
    assert done.returncode == 2
    assert "expected one argument" in done.stderr and "=" not in done.stderr.splitlines()[-1]
