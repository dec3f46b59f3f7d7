"""A read_only option that is not a bool (#4, #2).

``Store(path, read_only="false")`` (a value read from a configuration file or an
environment variable) opened the store read-only, because the engine took any
truthy value as True, while every other engine option (``sync=True``,
``auto_merge=True``...) is refused with a clear error. Now anything but True or
False raises ``InvalidArgumentError`` before the store is opened or created.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB, Store
from kv_backend.errors import InvalidArgumentError


@pytest.mark.parametrize("value", ["false", "no", "0", "", 1, 0, None], ids=repr)
def test_a_read_only_that_is_not_a_bool_is_refused(store_path, value):
    for opener in (DB, Store):
        with pytest.raises(InvalidArgumentError, match="read_only must be True or False") as info:
            opener(store_path, read_only=value)
        assert isinstance(info.value, TypeError)
    assert not os.path.exists(store_path)


def test_true_and_false_still_work(store_path):
    with Store(store_path, read_only=False) as s:
        s["k"] = 1
    with Store(store_path, read_only=True) as s:
        assert s.read_only and s["k"] == 1
