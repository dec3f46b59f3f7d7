"""The HTTP API's numeric query parameters are read as Redis (and ``kvb serve``) reads numbers.

``?ttl=%205`` and ``?delta=5%20`` were taken: Python's ``int()``/``float()`` strip surrounding
whitespace, where Redis answers ``value is not an integer or out of range`` (or ``not a valid
float``). Integers (``delta``, ``limit``) are now an optional ``-`` and ASCII digits without a
leading zero, as Redis reads integers (no ``+``, spaces, ``_``, other digits); ``ttl`` is a number
as Redis reads a float (``+5``, ``.5``, ``5.``, ``1e3``; no spaces, ``_``, hexadecimal, other
digits). A refusal is 400 and says what is accepted; nothing is changed.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import pytest
from helpers import key_url as url

from kv_backend.errors import NotAnIntegerError
from kv_backend.structures import parse_float, parse_int
from kv_backend.structures.errors import NotAFloatError

# the same text as Redis refuses (a literal "+" in a query string is a space: "+5" arrives as " 5")
_SPACES = ["%205", "5%20", "%095", "5%0A", "%0D5", "+5", "5+"]
_OTHER_DIGITS = ["%D9%A5", "%EF%BC%95", "%E0%A5%AB", "%C2%B2"]  # Arabic-Indic, fullwidth, Devanagari 5; ²

BAD_INTEGERS = [*_SPACES, *_OTHER_DIGITS, "%2B5", "1_000", "05", "-0", "--5", "5.0", "1e3", "0x10", "", "-"]
GOOD_INTEGERS = [("5", 5), ("-5", -5), ("0", 0), ("10", 10), ("123456789012345678901234567890", None)]

BAD_TTLS = [*_SPACES, *_OTHER_DIGITS, "1_000", "0x10", "5e", ".", "", "nan", "%2Binf", "inf"]
GOOD_TTLS = [("5", 5.0), ("%2B5", 5.0), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0)]
GOOD_TTLS += [("1E%2B2", 100.0), ("2.5e1", 25.0)]


@pytest.mark.parametrize("delta", BAD_INTEGERS)
def test_a_delta_redis_would_refuse_is_refused(app_client, db, delta):
    db.put(b"n", b"1")
    r = app_client.post(url(b"n", "/incr") + "?delta=" + delta)
    assert r.status_code == 400, (delta, r.text)
    error = r.json()
    assert error["error"] == "invalid_parameter"
    assert error["message"].startswith("delta must be a decimal integer: ASCII digits"), error
    assert "no '+', spaces, '_' or leading zeros" in error["message"]
    assert db.get(b"n") == b"1"  # nothing added


@pytest.mark.parametrize(("delta", "added"), GOOD_INTEGERS)
def test_a_delta_redis_reads_is_added(app_client, db, delta, added):
    db.put(b"n", b"1")
    r = app_client.post(url(b"n", "/incr") + "?delta=" + delta)
    assert r.status_code == 200, r.text
    want = 1 + (int(delta) if added is None else added)
    assert r.json() == {"value": want}
    assert db.get(b"n") == str(want).encode()


@pytest.mark.parametrize("limit", [*BAD_INTEGERS, "%203", "3%20"])
def test_a_limit_redis_would_refuse_is_refused(app_client, db, limit):
    db.update({b"a": b"1", b"b": b"2"})
    r = app_client.get("/v1/keys?limit=" + limit)
    assert r.status_code == 400, (limit, r.text)
    assert r.json()["error"] == "invalid_parameter"
    assert r.json()["message"].startswith("limit must be a decimal integer: ASCII digits"), r.json()


def test_a_limit_out_of_range_still_names_the_range(app_client, db):
    db.update({b"a": b"1", b"b": b"2"})
    assert app_client.get("/v1/keys?limit=1").json()["keys"] == ["a"]
    r = app_client.get("/v1/keys?limit=0")
    assert r.status_code == 400 and r.json()["message"] == "limit must be between 1 and 10000, got 0"


@pytest.mark.parametrize("ttl", BAD_TTLS)
def test_a_ttl_redis_would_refuse_is_refused(app_client, db, ttl):
    db.put(b"k", b"old", ttl=60)
    for response in (
        app_client.put(url(b"k") + "?ttl=" + ttl, content=b"new"),
        app_client.post(url(b"k", "/expire") + "?ttl=" + ttl),
    ):
        assert response.status_code == 400, (ttl, response.text)
        error = response.json()
        assert error["error"] == "invalid_ttl", error
        assert "ASCII" in error["message"] and "spaces" in error["message"], error
    assert db.get(b"k") == b"old"
    assert 0 < db.ttl(b"k") <= 60  # neither replaced nor given a new expiry


@pytest.mark.parametrize(("ttl", "seconds"), GOOD_TTLS)
def test_a_ttl_redis_reads_is_taken(app_client, db, ttl, seconds):
    assert app_client.put(url(b"k") + "?ttl=" + ttl, content=b"v").status_code == 201
    assert seconds - 1 < db.ttl(b"k") <= seconds
    r = app_client.post(url(b"k", "/expire") + "?ttl=" + ttl)
    assert r.status_code == 200 and r.json() == {"ttl": seconds}


def test_a_refused_value_is_quoted_as_sent(app_client, db):
    r = app_client.post(url(b"n", "/incr") + "?delta=%205")
    assert r.json()["message"].endswith("got ' 5'")
    r = app_client.put(url(b"k") + "?ttl=%D9%A5", content=b"v")
    assert r.json()["message"].endswith("got '\u0665'")
    r = app_client.put(url(b"k") + "?ttl=%FF", content=b"v")
    assert r.status_code == 400 and r.json()["message"].endswith(r"got '\\xff'")  # the byte, escaped


def _reads(parse, text: str) -> bool:
    try:
        parse(unquote_to_bytes(text.replace("+", " ")))
    except (NotAnIntegerError, NotAFloatError):
        return False
    return True


def test_the_same_texts_as_kvb_serve_reads():
    """What the API takes is what kvb serve's argument parsers (Redis's rules) take: integers
    exactly; numbers but for the infinities and NaN, which are no ttl."""
    for text, _ in GOOD_INTEGERS[:-1]:  # (the last is beyond 64 bits, which delta may be)
        assert _reads(parse_int, text), text
    for text in BAD_INTEGERS:
        assert not _reads(parse_int, text), text
    for text, _ in GOOD_TTLS:
        assert _reads(parse_float, text), text
    for text in BAD_TTLS:
        assert not _reads(parse_float, text) or text in ("%2Binf", "inf"), text
