"""A ``kvb://`` URL holding a control character, or options joined with ';'.

urllib's ``urlsplit`` drops tabs, CRs and LFs anywhere in a URL, so ``kvb:///a<TAB>b`` named /ab, and
a newline left in ``sync=al<LF>ways`` by a settings template went unnoticed: a process given the URL
without it would agree, one given ``/a<TAB>b`` spelt as %09 would not. Other control characters
were kept in the directory's name. Each is refused, saying which and where, and that a character
of the directory's name is written %-escaped. Options joined with ';' got "sync must be ..., not
'always;auto_merge=0.5'"; the error now says to join them with '&'.
"""

from __future__ import annotations

import pytest
from kv_backend_celery.backend import KVBackendConfigurationError, parse_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("kvb:///a\tb", r"a tab \(U\+0009\) at character 9"),
        ("kvb:///a\nb", r"a line feed \(U\+000A\) at character 9"),
        ("kvb:///res\r", r"a carriage return \(U\+000D\) at character 11"),
        ("kvb:///r?sync=al\nways", r"a line feed \(U\+000A\) at character 17"),
        ("\tkvb:///r", r"a tab \(U\+0009\) at character 1"),
        ("kvb:///var/lib/results \t?sync=always", r"a tab \(U\+0009\) at character 24"),
        ("kvb:///a\x01b", r"a control character \(U\+0001\) at character 9"),
        ("kvb:///a\x7fb", r"a control character \(U\+007F\) at character 9"),
    ],
)
def test_a_url_holding_a_control_character_is_refused(url, shown):
    with pytest.raises(
        KVBackendConfigurationError, match=rf"the URL holds {shown}.*%-escaped \(%09 for a tab\)"
    ):
        parse_url(url)


def test_a_control_character_written_as_an_escape_is_part_of_the_name():
    assert parse_url("kvb:///a%09b") == ("/a\tb", {})


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("kvb:///r?sync=always;auto_merge=0.5", "kvb:///r?sync=always&auto_merge=0.5"),
        ("kvb:///r?sync=always; read_only=1", "kvb:///r?sync=always&read_only=1"),
        ("kvb:///r?sync=always;", "kvb:///r?sync=always"),
    ],
)
def test_options_joined_with_semicolons_get_a_hint_to_join_them_with_ampersands(url, meant):
    with pytest.raises(KVBackendConfigurationError, match=r"join the options with '&', not ';'") as info:
        parse_url(url)
    assert f"({meant})" in str(info.value)
    assert parse_url(meant)[0] == "/r"
