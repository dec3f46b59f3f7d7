"""A ``kvb://`` URL ending with a list's separator, or listing several URLs.

``kvb:///var/lib/results,`` (a separator left over from a list or a line of settings) named a
directory ``results,``: a process given the URL without it stored its results elsewhere, and
``get()`` there waited for ever. ``kvb:///a;kvb:///b``, written as Celery's broker_url lists
failover brokers, named a directory ``a;kvb:`` with a ``b`` inside. Both are refused now, with
what to write; a separator that is part of the directory's name is written encoded, or is used
as it is when that directory exists already.
"""

from __future__ import annotations

import pytest
from celery_helpers import make_app
from kv_backend_celery.backend import KVBackendConfigurationError, parse_url

pytestmark = pytest.mark.xdist_group("celery")


@pytest.mark.parametrize("end, encoded", [(",", "%2C"), (";", "%3B")])
def test_a_separator_at_the_end_of_the_path_is_refused(tmp_path, end, encoded):
    url = f"kvb://{tmp_path / 'results'}{end}"
    with pytest.raises(KVBackendConfigurationError, match=f"the path ends with '{end}'") as raised:
        make_app(url).backend  # noqa: B018  (building the backend parses the URL)
    assert encoded in str(raised.value)
    assert parse_url(f"kvb://{tmp_path / 'results'}{encoded}") == (f"{tmp_path / 'results'}{end}", {})
    (tmp_path / f"results{end}").mkdir()  # a directory of that very name, made earlier
    assert parse_url(url) == (f"{tmp_path / 'results'}{end}", {})


@pytest.mark.parametrize(
    "url", ["kvb:///a;kvb:///b", "kvb:///a, kvb:///b?sync=always", "kvb:///var/r;redis://127.0.0.1:6379/0"]
)
def test_a_list_of_urls_is_refused(url):
    with pytest.raises(KVBackendConfigurationError, match="takes one URL, not a list"):
        parse_url(url)


@pytest.mark.parametrize("name", ["a,b", "a;b", "a;b:c", "reports,2026"])
def test_a_directory_whose_name_holds_a_separator_is_still_one_directory(name):
    assert parse_url(f"kvb:///var/lib/{name}") == (f"/var/lib/{name}", {})
