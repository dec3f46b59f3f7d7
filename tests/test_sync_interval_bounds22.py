"""The ``sync`` option as a number of seconds: a huge int or infinity is refused with the project's
ConfigurationError (an int too large for a float raised a raw OverflowError; infinity was taken and then
printed as ``Infinity`` by ``--json`` outputs, which strict JSON parsers refuse)."""

from __future__ import annotations

import math

import pytest

from kv_backend import DB
from kv_backend.errors import ConfigurationError


@pytest.mark.parametrize("sync", [10**400, math.inf, 365 * 24 * 3600 + 1])
def test_an_interval_past_a_year_is_refused_saying_to_give_never(store_path, sync):
    refused = r"sync must be a number of seconds up to a year \(31536000\), not .*give 'never'"
    with pytest.raises(ConfigurationError, match=refused):
        DB(store_path, sync=sync)


@pytest.mark.parametrize("sync", [0, 0.5, 30, 365 * 24 * 3600])
def test_intervals_up_to_a_year_are_taken(store_path, sync):
    with DB(store_path, sync=sync) as db:
        db.put(b"k", b"v")
        assert db.get(b"k") == b"v"


def test_nan_is_refused(store_path):
    with pytest.raises(ConfigurationError, match="sync must be 'never', 'always' or a number"):
        DB(store_path, sync=math.nan)
