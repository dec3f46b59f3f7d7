"""How the suite's tests are spread over pytest-xdist's workers (``pytest -n 3 --dist loadgroup``).

Loaded by tests/conftest.py. Tests marked ``xdist_group(name)`` run on one worker, one after another
(the Celery tests share one session's workers, the mount tests one set of mounts...).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator

import pytest

try:
    from _pytest.nodeid import NodeId  # pytest 9.2+: node ids are structured
except ImportError:
    NodeId = None

SHARED_SCOPES = ("package", "module", "class")
#: Where a node keeps its id: what ``item.nodeid`` reads.
ID_ATTRIBUTE = "_nodeid" if NodeId is None else "_id"


def group_names(item: pytest.Item) -> set[str]:
    """The names of the ``xdist_group`` marks of ``item``, as pytest-xdist reads them."""
    return {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test without a group is scheduled on its own, so the tests of one module alternate
    between the workers, and each worker would pay for the module's shared fixtures (servers started
    once per module, a benchmark run once per module...): a test that uses one joins its module's group.

    pytest-xdist (3.8) appends ``@group`` to the node id of each grouped test here, through the
    old ``_nodeid`` attribute; where that takes effect (pytest before 9.2) the suffix is taken off
    again: it goes only into the ids the worker reports to the controller (see
    :func:`pytest_collection_finish`)."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = group_names(item)
        if names:
            suffix = group_suffix(names)
            if item.nodeid.endswith(suffix):
                set_node_id(item, item.nodeid[: -len(suffix)])
        elif uses_a_shared_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


@pytest.hookimpl(wrapper=True)
def pytest_collection_finish(session: pytest.Session) -> Generator[None, object, object]:
    """Under ``--dist loadgroup`` the controller keeps the tests whose ids end in the same ``@group``
    on one worker, reading the ids each worker reports when its collection finishes (pytest-xdist's
    own ``pytest_collection_finish``, which this wraps). The ids carry the suffix for that report
    alone: the tests run and are reported under their plain ids, so ``pytest 'tests/x.py::test[RESP3]'``
    reruns the test a report names. (pytest 9.2 no longer reads the attribute pytest-xdist sets,
    pytest-xdist issue 1386, and its ids with the suffix showed a stray ``]``: ``test[RESP3]@g]``.)"""
    items = session.items if getattr(session.config.option, "loadgroup", False) else []
    plain = [getattr(item, ID_ATTRIBUTE) for item in items]
    try:
        for item in items:
            names = group_names(item)
            if names:
                grouped = item.nodeid + group_suffix(names)
                set_node_id(item, grouped)
                if item.nodeid != grouped:  # another pytest: the tests still pass, spread wider
                    warnings.warn(f"cannot put the xdist_group of {item.nodeid} in its node id", stacklevel=1)
                    break
        return (yield)
    finally:
        for item, nodeid in zip(items, plain, strict=True):
            setattr(item, ID_ATTRIBUTE, nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: object) -> None:
    """A worker that died in a test is reported (on the controller) under the id it was scheduled
    by: report it under the test's own id, without the ``@group``, as pytest-xdist reads that."""
    if crashitem.rfind("@") > crashitem.rfind("]"):
        report.nodeid = crashitem.rsplit("@", 1)[0]


def group_suffix(names: set[str]) -> str:
    """What pytest-xdist appends to a node id for the groups ``names``."""
    return "@" + "_".join(sorted(names))


def uses_a_shared_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` uses a fixture of this test tree (not a plugin's, nor pytest's wrapper of a
    unittest ``setUpClass``) that lives for a module, a class or a package."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        defs and defs[-1].scope in SHARED_SCOPES and defs[-1].baseid and not name.startswith("_")
        for name, defs in info.name2fixturedefs.items()
    )


def set_node_id(item: pytest.Item, nodeid: str) -> None:
    setattr(item, ID_ATTRIBUTE, nodeid if NodeId is None else NodeId.parse(nodeid))
