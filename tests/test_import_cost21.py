"""``import kv_backend`` (and ``kv_backend.store``, ``.shelve``, ``.dbm``) leaves out what opening a store
does not need.

``import kv_backend`` imported ``kv_backend.backup`` (with ``backup_urls``, ``backup_uploads``, sockets,
tempfile, secrets, dataclass creation...) to offer ``kv_backend.restore``: a third of its import time,
paid at the start of every gunicorn or Celery worker and every ``kvb`` command. ``restore`` is now
imported at its first use, and stays an attribute of the package (``from kv_backend import restore``,
``kv_backend.restore``, ``dir()``, ``from kv_backend import *``).
"""

from __future__ import annotations

import json

import pytest
from helpers import run_python

#: Modules a program that only opens stores never needs at import.
HEAVY = [
    "fsspec",
    "kv_backend.backup",
    "kv_backend.backup_uploads",
    "kv_backend.backup_urls",
    "kv_backend.check",
    "kv_backend.http",
    "kv_backend.salvage",
    "kv_backend.server",
    "kv_backend.structures",
]


@pytest.mark.parametrize("module", ["kv_backend", "kv_backend.store", "kv_backend.shelve", "kv_backend.dbm"])
def test_importing_a_front_end_leaves_out_the_backup_and_the_servers(module):
    out = run_python(
        f"""
        import json, sys
        before = set(sys.modules)
        import {module}
        new = set(sys.modules) - before
        print(json.dumps({{"heavy": sorted(m for m in {HEAVY!r} if m in new), "own": "{module}" in new}}))
        """
    ).stdout
    report = json.loads(out)
    assert report == {"heavy": [], "own": True}


def test_restore_is_still_an_attribute_of_the_package():
    out = run_python(
        """
        import json, sys
        import kv_backend

        report = {"listed": "restore" in dir(kv_backend) and "restore" in kv_backend.__all__}
        report["before_use"] = "kv_backend.backup" in sys.modules
        from kv_backend import restore
        import kv_backend.backup

        report["same"] = restore is kv_backend.restore is kv_backend.backup.restore
        report["in_globals"] = vars(kv_backend).get("restore") is restore  # (looked up once only)
        names = {}
        exec("from kv_backend import *", names)
        report["star"] = names.get("restore") is restore
        print(json.dumps(report))
        """
    ).stdout
    assert json.loads(out) == {
        "listed": True,
        "before_use": False,
        "same": True,
        "in_globals": True,
        "star": True,
    }
