"""The result store a test's app opened is closed once the test is done (tests/celery/conftest.py), even
while the app lives on, and the app's backend opens it again at its next use; a store an app made
before the test uses stays open."""

from __future__ import annotations

import pytest
from celery_helpers import make_app

pytestmark = pytest.mark.xdist_group("celery")  # (the second test reads what the first one left)

LEFT: dict = {}


@pytest.fixture(scope="module")
def module_app(tmp_path_factory):
    app = make_app(f"kvb://{tmp_path_factory.mktemp('stores22') / 'module'}")
    app.backend.set("before", "1")
    return app


def test_a_test_opens_stores(tmp_path, module_app):
    app = make_app(f"kvb://{tmp_path / 'results'}")
    app.backend.set("k", "v")
    module_app.backend.set("m", "1")
    LEFT.update(app=app, db=app.backend.db, module_db=module_app.backend.db)  # the app outlives the test
    assert not LEFT["db"].closed


def test_the_store_it_opened_is_closed_after_it_and_reopens(module_app):
    app, db = LEFT["app"], LEFT["db"]
    assert db.closed
    assert app.backend.get("k") == b"v"  # opened again
    assert app.backend.db is not db and not app.backend.db.closed
    assert not LEFT["module_db"].closed and module_app.backend.db is LEFT["module_db"]
