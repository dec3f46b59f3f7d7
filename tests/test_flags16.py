"""DB's yes/no arguments take True or False only, as read_only does: ``keys(reverse="no")``,
``merge(wait="yes")`` and ``follow_changes("no")`` took any truthy value for yes (a string from a
config file or a query string reversed the scan, waited, followed), and ``wait_for_change`` given
anything but an int token returned True at once, as if a write had happened."""

from __future__ import annotations

import re

import pytest

from kv_backend import DB
from kv_backend.errors import InvalidArgumentError


@pytest.fixture
def db(tmp_path):
    with DB(str(tmp_path / "s")) as db:
        for k in (b"a", b"b", b"c"):
            db.put(k, k.upper())
        yield db


@pytest.mark.parametrize("scan", ["keys", "items", "values"])
@pytest.mark.parametrize("flag", ["no", "false", 1, 0, None])
def test_an_ordered_scan_takes_reverse_as_true_or_false_only(db, scan, flag):
    with pytest.raises(InvalidArgumentError, match=re.escape(f"reverse must be True or False, not {flag!r}")):
        list(getattr(db, scan)(reverse=flag))


def test_ordered_scans_with_a_bool_reverse_are_unchanged(db):
    assert list(db.keys(reverse=True)) == [b"c", b"b", b"a"]
    assert list(db.items(reverse=False)) == [(b"a", b"A"), (b"b", b"B"), (b"c", b"C")]
    assert list(db.values(prefix=b"b", reverse=True)) == [b"B"]


@pytest.mark.parametrize("flag", ["yes", "false", 1])
def test_merge_takes_wait_as_true_or_false_only(db, flag):
    with pytest.raises(InvalidArgumentError, match=re.escape(f"wait must be True or False, not {flag!r}")):
        db.merge(wait=flag)
    assert db.merge(wait=True).records_kept == 3  # (the refused call changed nothing)


@pytest.mark.parametrize("flag", ["no", 0, None])
def test_follow_changes_takes_true_or_false_only(db, flag):
    with pytest.raises(InvalidArgumentError, match=re.escape(f"on must be True or False, not {flag!r}")):
        db.follow_changes(flag)
    db.put(b"d", b"D")
    assert db.take_changes() == []  # not following: the refused call did not start it
    db.follow_changes(True)
    db.put(b"e", b"E")
    assert db.take_changes() == [b"e"]


@pytest.mark.parametrize("token", ["x", 1.5, None, True])
def test_wait_for_change_refuses_a_token_that_is_not_an_int(db, token):
    with pytest.raises(InvalidArgumentError, match=r"token must be an int from change_token\(\)"):
        db.wait_for_change(token, 0.05)
    assert db.wait_for_change(db.change_token(), 0.05) is False  # an int token waits, as before


def test_read_only_keeps_its_message(tmp_path):
    with pytest.raises(InvalidArgumentError, match="read_only must be True or False, not 'false'"):
        DB(str(tmp_path / "s"), read_only="false")
