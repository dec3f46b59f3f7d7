"""``auto_merge`` in a ``kvb://`` URL: every spelling of 0 turns it off, as 0 does for ``DB`` and the
Django OPTIONS; ``0.0`` was refused ("a fraction between 0 and 1") while ``0`` was off."""

from __future__ import annotations

import pytest
from kv_backend_celery.backend import KVBackendConfigurationError, parse_url


@pytest.mark.parametrize("off", ["0", "0.0", "0e0", "off", "OFF", "none", ""])
def test_every_zero_and_off_turn_auto_merge_off(off):
    assert parse_url(f"kvb:///r?auto_merge={off}") == ("/r", {"auto_merge": None})


@pytest.mark.parametrize("bad", ["2", "1", "-0.5", "half", "nan"])
def test_a_bad_auto_merge_says_what_turns_it_off(bad):
    with pytest.raises(
        KVBackendConfigurationError,
        match=r"auto_merge must be a fraction between 0 and 1 such as 0\.5, or 'off' \(also 0, ",
    ):
        parse_url(f"kvb:///r?auto_merge={bad}")
