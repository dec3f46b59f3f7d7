"""How the suite's tests are spread over pytest-xdist's workers (``pytest -n 2 --dist loadgroup``).

Loaded by tests/conftest.py. Tests marked ``xdist_group(name)`` run on one worker, one after another
(the Celery tests share one session's workers, the mount tests one set of mounts...).
"""

from __future__ import annotations

import pytest


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
    runs after pytest-xdist's hook and puts the suffix where this pytest reads the id."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = group_names(item)
        suffix = "@" + "_".join(sorted(names))
        if not names or item.nodeid.endswith(suffix):
            continue  # no group, or pytest-xdist's own suffix took effect (pytest before 9.2)
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(item.nodeid + suffix)
        assert item.nodeid.endswith(suffix), f"cannot put the xdist_group of {item.nodeid} in its node id"
