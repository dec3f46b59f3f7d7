"""Store.incr on numbers other than int and float (#4).

``incr`` refuses a stored ``Decimal`` and a ``Fraction`` delta (it works on ints and
floats, as Redis's INCRBY and INCRBYFLOAT), but said "incr needs a number at 'k',
found Decimal" and "delta must be a number, not Fraction": both are numbers, and
docs/store.md said the same. The messages and the docs now name what incr takes,
an int or a float, and point to modify() for other numbers; nothing is written.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from kv_backend import Store
from kv_backend.errors import InvalidValueError


@pytest.fixture
def store(store_path):
    with Store(store_path) as s:
        yield s


def test_a_stored_decimal_is_refused_with_a_message_naming_int_and_float(store):
    store["balance"] = Decimal("9.99")
    with pytest.raises(
        InvalidValueError,
        match=r"needs a number \(an int or a float\) at 'balance', found Decimal.*modify\(\)",
    ):
        store.incr("balance")
    assert store["balance"] == Decimal("9.99")
    assert store.modify("balance", lambda v: v + Decimal("0.01")) == Decimal("10.00")


@pytest.mark.parametrize("delta", [Fraction(1, 3), Decimal(1), True], ids=lambda d: type(d).__name__)
def test_a_delta_other_than_int_or_float_is_refused(store, delta):
    store["n"] = 1
    with pytest.raises(
        InvalidValueError, match=f"delta must be an int or a float, not {type(delta).__name__}"
    ):
        store.incr("n", delta)
    assert store["n"] == 1
    assert store.incr("n", 2) == 3 and store.incr("n", 0.5) == 3.5
