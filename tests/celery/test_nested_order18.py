"""The order of nested results, ``kvb://`` side by side with Celery's ``redis://`` backend.

A chord whose header mixes a chain, a group and a task (``chord([chain(a, b), group(c, d), e])``),
groups in groups (``group(group(a, b), c)``), chords in groups and in chord headers: the value the
callback gets and ``GroupResult.get()`` must come out as with ``redis://``, whatever order the
tasks finish in. Celery, not the backend, decides some of these orders (a group inside a chord
header is flattened into the callback's list, its tasks last first), so the reference is a
``redis://`` result backend running the same canvases on a real redis-server, which is also the
broker of both workers. In a generator header a nested group numbers its own tasks, so two parts
can share a position: those two come in an order neither backend ties to the header (finishing
order, task id order), and are compared as a set.
"""

from __future__ import annotations

import celery
import pytest
from celery import chain, chord, group

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),  # tasks of other tests
]

#: Delays (seconds) for the tasks marked ``d[i]``: the header order, then its reverse.
DELAYS = [(0.0, 0.1, 0.2, 0.3), (0.3, 0.2, 0.1, 0.0)]


def _canvases(app, d):
    slow, mul, collect = (app.tasks[f"nest18.{name}"] for name in ("slow", "mul", "collect"))
    s = slow.s
    return {
        "chord[chain, group, task]": lambda: chord(
            [chain(s(1, d[0]), mul.s(10)), group(s(2, d[1]), s(3, d[2])), s(4, d[3])]
        )(collect.s()),
        "group(group(a, b), c)": lambda: group(group(s(1, d[0]), s(2, d[1])), s(3, d[2])).apply_async(),
        "group(c, group(a, group(b, e)))": lambda: group(
            s(3, d[2]), group(s(1, d[0]), group(s(2, d[1]), s(5, d[3])))
        ).apply_async(),
        "chord[group(group(a, b), c), e]": lambda: chord(
            [group(group(s(1, d[0]), s(2, d[1])), s(3, d[2])), s(4, d[3])]
        )(collect.s()),
        "chord[chain(a, group(b, c)), e]": lambda: chord(
            [chain(s(1, d[0]), group(mul.s(2), mul.s(3))), s(4, d[3])]
        )(collect.s()),
        "group(chord([a, b], cb), c)": lambda: group(
            chord([s(1, d[0]), s(2, d[1])], collect.s()), s(3, d[2])
        ).apply_async(),
        "chord[chord([a, b], cb), c]": lambda: chord(
            [chord([s(1, d[0]), s(2, d[1])], collect.s()), s(3, d[2])]
        )(collect.s()),
        # A group in a generator header numbers its own tasks, so two parts share a position
        # (b and c here, c and e below): redis:// orders those by task id, kvb:// as they finished.
        "~chord(generator: group(a, b), c)": lambda: chord(
            (t for t in (group(s(1, d[0]), s(2, d[1])), s(3, d[2]))), collect.s()
        )(),
        "~chord(generator: chain(a, group(b, c)), e)": lambda: chord(
            (t for t in (chain(s(1, d[0]), group(mul.s(2), mul.s(3))), s(4, d[3]))), collect.s()
        )(),
        "chord[chord([a, b], cb), chord([c, e], cb)]": lambda: chord(
            [chord([s(1, d[0]), s(2, d[1])], collect.s()), chord([s(3, d[2]), s(4, d[3])], collect.s())]
        )(collect.s()),
        "chord(group of chains)": lambda: chord(group(chain(s(i + 1, d[i]), mul.s(10)) for i in range(3)))(
            collect.s()
        ),
        "group(chain(a, chord([b, c], cb)), e)": lambda: group(
            chain(s(3, d[0]), chord([mul.s(2), mul.s(3)], collect.s())), s(9, d[3])
        ).apply_async(),
        "chord[chain(group(a, b), cb), c]": lambda: chord(
            [chain(group(s(1, d[0]), s(2, d[1])), collect.s()), s(3, d[2])]
        )(collect.s()),
    }


def _send(app) -> dict:
    """Every canvas with every delay pattern, sent at once."""
    return {f"{name} {d}": send() for d in DELAYS for name, send in _canvases(app, d).items()}


def _get(sent: dict) -> dict:
    """What ``get()`` gives for each canvas sent, or the error it raises."""
    results = {}
    for name, result in sent.items():
        try:
            results[name] = result.get(timeout=30)
        except Exception as exc:  # compared as such: both backends must fail alike
            results[name] = repr(exc)
    return results


def _flat(value) -> list:
    return [x for v in value for x in _flat(v)] if isinstance(value, list) else [value]


#: Before Celery 5.6 the group ending a header chain (or placed in a generator header) takes the
#: chord's id and announces its own size there, which redis:// takes as the chord's: its callback
#: can fire before every part is in and miss a value ([2, 4] for [2, 3, 4]). A list header has
#: its group saved, which redis:// joins, waiting for every value; a generator header's canvases
#: are compared from 5.6 on.
SHARED_NESTED_IDS = celery.VERSION[:2] < (5, 6)


def test_nested_results_come_in_the_order_redis_gives(workers):
    sent = {name: _send(app) for name, app in workers.items()}  # both workers run at once
    kvb, reference = _get(sent["kvb"]), _get(sent["redis"])
    if SHARED_NESTED_IDS:
        for name in [name for name in kvb if name.startswith("~")]:
            reference.pop(name)
            value = kvb.pop(name)
            assert sorted(_flat(value)) == ([1, 2, 3] if "group(a, b)" in name else [2, 3, 4]), (name, value)
    for results in (kvb, reference):  # the order of results sharing a position is unspecified
        for name in [name for name in results if name.startswith("~")]:
            value = results[name]
            results[name] = [value[0], sorted(value[1:])] if isinstance(value, list) else value
    assert kvb == reference
    for name, value in kvb.items():  # every canvas ran to its end, with every task's value in it
        assert isinstance(value, list), (name, value)
        assert len(_flat(value)) >= 3, (name, value)
