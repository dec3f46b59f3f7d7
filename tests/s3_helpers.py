"""moto's S3 server for the backup tests: one started in this process, on a port of its own."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from helpers import listens_on


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 in a thread of this process; yields its URL, stops afterwards.

    It binds port 0, so the system picks a port as it binds: a port picked first (``free_port``) and
    bound after may be a parallel test's by then, and moto's server, unable to listen, would wait for
    ever (its thread ends, its start never returns) or this test would talk to that other server."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server.get_host_and_port()[1]
        assert listens_on(os.getpid(), port) is not False, f"port {port} is not this process's"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
