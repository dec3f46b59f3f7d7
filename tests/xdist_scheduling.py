"""How the suite's tests are spread over pytest-xdist's workers (``pytest -n 2 --dist loadgroup``).

Loaded by tests/conftest.py. Tests marked ``xdist_group(name)`` run on one worker, one after another
(the Celery tests share one session's workers, the mount tests one set of mounts...).
"""

from __future__ import annotations

import warnings

import pytest

SHARED_SCOPES = ("package", "module", "class")


def group_names(item: pytest.Item) -> set[str]:
    """The names of the ``xdist_group`` marks of ``item``, as pytest-xdist reads them."""
    return {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``, pytest-xdist (3.8) appends ``@group`` to the node id of each test
    marked ``xdist_group`` on the worker, and the controller schedules the tests by that suffix. It
    sets the old ``_nodeid`` attribute, which pytest 9.2 no longer reads (node ids are structured:
    pytest-xdist issue 1386): the suffix was lost and every group spread over both workers. This
    runs after pytest-xdist's hook and puts the suffix where this pytest reads the id.

    Every other test is scheduled on its own, so the tests of one module alternate between the
    workers, and each worker would pay for the module's shared fixtures (servers started once per
    module, a benchmark run once per module...): a test that uses one joins its module's group."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = group_names(item)
        if not names and uses_a_shared_fixture(item):
            names = {item.nodeid.split("::", 1)[0]}
            item.add_marker(pytest.mark.xdist_group(*names))
        suffix = "@" + "_".join(sorted(names))
        if not names or item.nodeid.endswith(suffix):
            continue  # no group, or pytest-xdist's own suffix took effect (pytest before 9.2)
        set_node_id(item, item.nodeid + suffix)
        if not item.nodeid.endswith(suffix):  # another pytest: the tests still pass, spread wider
            warnings.warn(f"cannot put the xdist_group of {item.nodeid} in its node id", stacklevel=1)
            return


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
    try:
        from _pytest.nodeid import NodeId  # pytest 9.2+
    except ImportError:
        item._nodeid = nodeid
    else:
        item._id = NodeId.parse(nodeid)
