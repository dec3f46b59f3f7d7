"""The example project's demo script runs end to end (runserver on loopback)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers import ROOT, child_env


@pytest.mark.slow  # about 5 s: six Django processes and a server; `make demo` runs the same script
def test_run_demo(tmp_path):
    pytest.importorskip("kv_backend.backup")  # the demo ends with kv_backup
    env = child_env()
    env.pop("DJANGO_SETTINGS_MODULE", None)
    demo = os.path.join(ROOT, "example_project", "run_demo.py")
    proc = subprocess.run(
        [sys.executable, demo, "--var", str(tmp_path / "var")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "same cached page" in out
    assert "the sidebar comes from the 'fragments' cache" in out  # checked by run_demo.py itself
    # the worker command printed is the one run (it printed "-c 2" and ran with six more flags)
    assert "$ celery -A mysite worker -P prefork -c 2 -l info -n demo@%h --without-gossip" in out
    assert ":1:demo:hits" in out and "django.contrib.sessions.cache" in out
    # the counter is stored with timeout=None, the cached page for 30 s
    hits = next(line for line in out.splitlines() if ":1:demo:hits" in line)
    assert hits.endswith("B  never expires"), hits
    page = next(line for line in out.splitlines() if "cache_page" in line)
    assert re.search(r"B  expires in [0-9]+s$", page), page
    assert "kv_backend cache 'default'" in out and "Merge finished" in out and "Backup finished" in out
    assert list((tmp_path / "var" / "backups").iterdir())
    # Beyond the site: the README's other front ends, each checked by run_demo.py itself.
    assert "records verified" in out and ":1:demo:hits" in out.split("$ kvb keys")[1]  # kvb restore
    assert "GET /v1/keys/greeting -> hello" in out  # kvb http
    assert "GET greeting -> b'hello'" in out and "_kombu.binding.celery" in out  # redis-py on kvb serve
    assert "4 processes x 250 atomic incr -> visits = 1000" in out  # python -m kv_backend.demo
    assert "shelve: ['apple', 'pear']" in out and "'name': 'Ada'" in out  # Store and shelve
