"""example_project/README.md says what the folder is, how ``make demo`` runs it and how to run it by
hand, and links docs/django.md and docs/celery.md for the rest.

The folder had no README: a user who opened it found settings and scripts and no word of what they
were. Its by-hand commands are checked here as far as can be without servers: each one, run as
written from example_project/ (its environment variables set) with ``--help`` added, is a command
that exists and takes those arguments (``celery -A mysite`` loads the site's Celery app). The links
and anchors, ``kvb`` and ``manage.py`` flags are checked with the other docs (test_docs_examples10).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import child_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
README = EXAMPLE / "README.md"


def _commands() -> list[str]:
    blocks = re.findall(r"^```\n(.*?)^```", README.read_text(), re.S | re.M)
    return [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]


def test_the_readme_says_what_the_folder_is_and_links_the_docs():
    text = " ".join(README.read_text().split())
    for words in ("Django + Celery site", "`make demo`", "`kvb serve`", "`kvb://`", "sessions"):
        assert words in text
    assert "(../docs/django.md#the-example-project)" in text
    assert "(../docs/celery.md#with-django)" in text
    programs = {next(w for w in c.split() if "=" not in w) for c in _commands()}
    assert programs == {"python", "kvb", "celery", "gunicorn"}
    assert any(c.endswith("runserver 127.0.0.1:8000") for c in _commands())


@pytest.mark.parametrize("command", _commands())
def test_each_command_runs_as_written(command, tmp_path):
    words = shlex.split(command)
    env = child_env()
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    env["KVB_EXAMPLE_VAR"] = str(tmp_path)  # (the settings make it: not the checkout's var/)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    if words[0] == "python":
        words[0] = sys.executable
    done = subprocess.run(
        [*words, "--help"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    assert "usage" in (done.stdout + done.stderr).lower()
