"""Hypothesis state machine: a Store (and a second handle on it) behaves like a dict."""

from __future__ import annotations

import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kv_backend import Store
from kv_backend.serializers import SerializationError

keys = st.text(alphabet="ab/é\u00ff✓", min_size=1, max_size=4)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner), max_leaves=5
)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kvb-store-sm-")
        self.path = self.dir + "/s"
        self.store = Store(self.path)
        self.other = Store(self.path)  # a second, independent handle: must stay coherent
        self.model: dict[str, object] = {}

    def teardown(self) -> None:
        self.store.close()
        self.other.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(k=keys, v=values)
    def set(self, k, v):
        self.store[k] = v
        self.model[k] = v

    @rule(k=keys)
    def delete(self, k):
        assert self.store.delete(k) == (k in self.model)
        self.model.pop(k, None)

    @rule(k=keys, default=values)
    def pop(self, k, default):
        assert self.other.pop(k, default) == self.model.pop(k, default)

    @rule(k=keys, v=values)
    def setdefault(self, k, v):
        assert self.other.setdefault(k, v) == self.model.setdefault(k, v)

    @rule(pairs=st.dictionaries(keys, values, max_size=4))
    def update(self, pairs):
        self.store.update(pairs)
        self.model.update(pairs)

    @rule(pairs=st.dictionaries(keys, values, min_size=1, max_size=3))
    def failed_update_changes_nothing(self, pairs):
        bad = dict(pairs)
        bad[next(iter(pairs))] = lambda: None  # unpicklable
        try:
            self.store.update(bad)
        except SerializationError:
            pass
        else:
            raise AssertionError("an unpicklable value was accepted")

    @precondition(lambda self: self.model)
    @rule()
    def popitem(self):
        k, v = self.store.popitem()
        smallest = min(self.model, key=lambda s: s.encode())
        assert k == smallest
        assert self.model.pop(k) == v

    @rule()
    def clear(self):
        self.other.clear()
        self.model.clear()

    @rule()
    def reopen(self):
        self.store.close()
        self.store = Store(self.path)

    @rule(k=keys)
    def lookup(self, k):
        assert (k in self.store) == (k in self.model)
        assert self.store.get(k, "absent") == self.model.get(k, "absent")

    @invariant()
    def same_contents(self):
        expected = sorted(self.model, key=lambda s: s.encode())
        assert list(self.store) == expected
        assert len(self.other) == len(self.model)
        assert dict(self.other.items()) == self.model


StoreMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreMachine = StoreMachine.TestCase
