"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import sys
import uuid

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

from helpers import require_tool  # re-exported for tests that import it from here
from resp_helpers import Raw, RespServers, redis_and_kvb

__all__ = ["require_tool"]

# No per-example deadline and no "too slow" health check, suite-wide: the suite runs on loaded CI
# machines (two pytest workers beside servers and crash loops), where one example of a fast test can
# take 300 ms once and fail the run; timing goals live in benchmarks/, not in tests. A test's own
# @settings still chooses its examples and steps.
settings.register_profile("kvb", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kvb")

pytest_plugins = ["xdist_scheduling", "session_tmpdir"]


@pytest.fixture
def store_path(tmp_path):
    """A path for a new store (the directory does not exist yet)."""
    return str(tmp_path / "store")


@pytest.fixture
def one_key_store(store_path):
    """The path of a closed store holding one key (``k``: ``v``), for tests of what reads or copies it."""
    from kv_backend import DB

    with DB(store_path) as db:
        db.put(b"k", b"v")
    return store_path


@pytest.fixture
def one_backup_url(tmp_path):
    """A local backup URL (``tmp_path/bk``) holding one backup, ``b1``, of a store of one key (``k``: ``v``)
    at ``tmp_path/src``, for tests of what restores or lists it."""
    from kv_backend import DB
    from kv_backend.backup import backup

    with DB(str(tmp_path / "src")) as db:
        db.put(b"k", b"v")
        backup(db, str(tmp_path / "bk"), name="b1")
    return str(tmp_path / "bk")


@pytest.fixture
def db(store_path):
    """A writable DB on a new store, closed after the test."""
    from kv_backend import DB

    with DB(store_path) as d:
        yield d


@pytest.fixture(params=["memory", "file"])
def backup_url(request, tmp_path):
    """A fresh backup URL of each kind (fsspec's memory filesystem, a local directory)."""
    if request.param == "file":
        yield f"file://{tmp_path / 'backups'}"
        return
    import fsspec

    path = f"/kvb-test-{uuid.uuid4().hex}"
    yield f"memory://{path}"
    fs = fsspec.filesystem("memory")
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def resp_server_here(tmp_path):
    """A kvb serve :class:`~kv_backend.server.resp.Server` on a new store, in this process and not
    listening: for tests that run its commands directly (``resp.Connection(server).execute(args)``)."""
    from kv_backend.server import resp

    srv = resp.Server(str(tmp_path / "s"))
    try:
        yield srv
    finally:
        srv.db.close()


@pytest.fixture(scope="module")
def resp_servers(tmp_path_factory):
    """A throw-away redis-server and a ``kvb serve`` on a new directory, one of each per test module,
    for the tests that compare them: :class:`~resp_helpers.RespServers` (their ports, the store's
    directory). Skipped where redis-server is missing. Each server listens on a port the system gave
    as free (``free_port``), so the servers of parallel workers do not meet."""
    with redis_and_kvb(tmp_path_factory) as (port, ours):
        yield RespServers(port, ours.port, ours.path)


@pytest.fixture(scope="module")
def ports(resp_servers):
    """(redis-server's port, kvb serve's port) of the module's :func:`resp_servers`."""
    return resp_servers.redis, resp_servers.kvb


@pytest.fixture(params=["redis", "kvb"])
def port(request, resp_servers) -> int:
    """The port of each of the module's :func:`resp_servers` in turn (redis-server's, then kvb serve's),
    its database emptied first."""
    p = resp_servers.redis if request.param == "redis" else resp_servers.kvb
    conn = Raw(p, 2)
    try:
        assert conn.call("FLUSHALL") == b"+OK\r\n"
    finally:
        conn.close()
    return p


@pytest.fixture(params=[2, 3], ids=lambda p: f"RESP{p}")
def raw(ports, request):
    """Raw (redis-server, kvb serve) connections speaking RESP2 or RESP3, both databases empty."""
    conns = [Raw(p, request.param) for p in ports]
    for c in conns:
        assert c.call("FLUSHALL") == b"+OK\r\n"
    yield conns
    for c in conns:
        c.close()


@pytest.fixture
def app_client(db):
    """A Starlette test client of the HTTP API over ``db``, in process."""
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    with TestClient(create_app(db)) as client:
        yield client


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA and its server and client certificates, as files (:class:`tls_helpers.Certs`), one set for the
    TLS tests of kvb serve and kvb http. Skipped where trustme (the dev extra) is missing."""
    from tls_helpers import Certs

    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def other(tmp_path_factory):
    """A second CA and its certificates (:class:`tls_helpers.Certs`), which :func:`certs`' CA does not
    trust: the ones a server rotates to, or a stranger's."""
    from tls_helpers import Certs

    return Certs(tmp_path_factory.mktemp("other"))


@pytest.fixture
def umask_000():
    """The process umask 000 for the test (a container's default, a daemon that clears it)."""
    old = os.umask(0)
    yield
    os.umask(old)
