"""Typos in a ``kvb://`` URL that used to be taken silently, or refused without saying what to write.

A space left at the end of the path (an environment variable or a settings line with a trailing
blank) named another directory, ``/var/lib/results `` instead of ``/var/lib/results``: a process
given the URL without it stored its results elsewhere, and ``get()`` there waited for ever. An
option written without ``=value`` was refused as an unparsable query with no hint.
"""

from __future__ import annotations

import pytest
from kv_backend_celery.backend import KVBackendConfigurationError, parse_url


# (a tab there is refused as a control character: tests/celery/test_celery_url_control_chars29.py)
@pytest.mark.parametrize("url", ["kvb:///var/lib/results ", "kvb:///var/lib/results  ?sync=always"])
def test_a_space_at_the_end_of_the_path_is_refused(url):
    with pytest.raises(KVBackendConfigurationError, match="the path ends in a space") as raised:
        parse_url(url)
    assert "%20" in str(raised.value)


def test_an_encoded_space_at_the_end_names_the_directory():
    assert parse_url("kvb:///var/lib/results%20") == ("/var/lib/results ", {})
    assert parse_url("kvb:///var/lib/my%20results?sync=always") == ("/var/lib/my results", {"sync": "always"})


@pytest.mark.parametrize(
    "url", ["kvb:///r?read_only", "kvb:///r?sync=always&", "kvb:///r?sync=always&&read_only=1"]
)
def test_an_option_without_a_value_says_how_to_write_it(url):
    with pytest.raises(KVBackendConfigurationError, match="write each option as name=value, joined by &"):
        parse_url(url)


def test_percent_escapes_that_are_no_utf8_are_refused():
    # Each was decoded as U+FFFD: kvb:///srv/r%FFsults made and used a directory named '/srv/r\ufffdsults',
    # not one whose name holds the byte 0xff, and no process given the URL of the real directory saw it.
    with pytest.raises(KVBackendConfigurationError, match=r"not UTF-8 \(%FF\)") as raised:
        parse_url("kvb:///srv/r%FFsults?sync=always")
    assert "\ufffd" not in str(raised.value)
    assert parse_url("kvb:///srv/r%C3%A9sults") == ("/srv/r\u00e9sults", {})
