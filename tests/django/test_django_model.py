"""Hypothesis: KVCache against Django's LocMemCache as the model, operation by operation."""

from __future__ import annotations

import os
import uuid

import hypothesis.strategies as st
from django.conf import settings as django_settings
from django.core.cache.backends.locmem import LocMemCache
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from kv_backend_django.cache import KVCache

# Beside the default cache's store, under the directory tests/django/conftest.py made for the run
# (read from the settings: "from conftest import" can find another directory's conftest module).
_DIR = os.path.join(os.path.dirname(django_settings.CACHES["default"]["LOCATION"]), "model")

KEYS = st.sampled_from(["a", "b", "c", "ünï", "k:1"])
VERSIONS = st.sampled_from([None, 1, 2])
VALUES = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
)
# Timeouts that cannot expire during a run (timing is tested elsewhere), plus "expired at once".
TIMEOUTS = st.sampled_from([None, 0, -1, 3600])


def outcome(fn, *args, **kwargs):
    """Result or exception type of a call, for comparing the two backends."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # the exception type is part of the contract
        return ("raised", ValueError if isinstance(exc, ValueError) else type(exc))


class CacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        params = {"TIMEOUT": 3600, "OPTIONS": {"MAX_ENTRIES": 10_000}}
        self.kv = KVCache(_DIR, params)  # one store for all examples, emptied for each
        self.kv.clear()
        self.model = LocMemCache(f"model-{uuid.uuid4()}", params)

    def both(self, name, *args, **kwargs):
        got = outcome(getattr(self.kv, name), *args, **kwargs)
        want = outcome(getattr(self.model, name), *args, **kwargs)
        assert got == want, (name, args, kwargs, got, want)

    @rule(key=KEYS, value=VALUES, timeout=TIMEOUTS, version=VERSIONS)
    def set(self, key, value, timeout, version):
        self.both("set", key, value, timeout, version=version)

    @rule(key=KEYS, value=VALUES, timeout=TIMEOUTS, version=VERSIONS)
    def add(self, key, value, timeout, version):
        self.both("add", key, value, timeout, version=version)

    @rule(key=KEYS, version=VERSIONS)
    def get(self, key, version):
        self.both("get", key, "default", version=version)

    @rule(key=KEYS, version=VERSIONS)
    def delete(self, key, version):
        self.both("delete", key, version=version)

    @rule(key=KEYS, timeout=TIMEOUTS, version=VERSIONS)
    def touch(self, key, timeout, version):
        self.both("touch", key, timeout, version=version)

    @rule(key=KEYS, delta=st.integers(-5, 5), version=VERSIONS)
    def incr(self, key, delta, version):
        self.both("incr", key, delta, version=version)

    @rule(key=KEYS, delta=st.integers(-5, 5), version=VERSIONS)
    def decr(self, key, delta, version):
        self.both("decr", key, delta, version=version)

    @rule(key=KEYS, value=VALUES, timeout=TIMEOUTS, version=VERSIONS)
    def get_or_set(self, key, value, timeout, version):
        self.both("get_or_set", key, value, timeout, version=version)

    @rule(key=KEYS, delta=st.sampled_from([-1, 1, 2]), version=st.sampled_from([None, 2]))
    def incr_version(self, key, delta, version):
        self.both("incr_version", key, delta, version=version)

    @rule(data=st.dictionaries(KEYS, VALUES, max_size=3), timeout=TIMEOUTS)
    def set_many(self, data, timeout):
        self.both("set_many", data, timeout)

    @rule(keys=st.lists(KEYS, max_size=3), version=VERSIONS)
    def get_many(self, keys, version):
        self.both("get_many", keys, version=version)

    @rule(keys=st.lists(KEYS, max_size=3))
    def delete_many(self, keys):
        self.both("delete_many", keys)

    @rule()
    def clear(self):
        self.both("clear")

    @invariant()
    def same_keys(self):
        for version in (1, 2, 3):
            for key in ("a", "b", "c", "ünï", "k:1"):
                assert self.kv.has_key(key, version) == self.model.has_key(key, version)

    def teardown(self):
        self.model.clear()


TestAgainstLocMem = CacheMachine.TestCase
TestAgainstLocMem.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
