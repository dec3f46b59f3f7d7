"""The ``pip install`` advice in the package's messages names the distribution and extras that exist.

README.md and the docs say ``pip install "kv-backend[...]"``; two messages said ``kv_backend[...]``
(which pip normalises to the same name, but which a reader compares with the README and wonders
about). Every ``pip install 'NAME[EXTRAS]'`` in the code of the package and its integrations now
names the distribution as pyproject.toml does, and only extras it defines.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import pyproject

ROOT = Path(__file__).resolve().parent.parent
ADVICE = re.compile(r"pip install '([\w.-]+)\[([\w,]+)\]'")


def _advice() -> list[tuple[str, str, str]]:
    """(file, distribution, extras) of every ``pip install 'NAME[EXTRAS]'`` in the shipped code."""
    found = []
    for top in ("kv_backend", "integrations"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for name, extras in ADVICE.findall(path.read_text()):
                found.append((str(path.relative_to(ROOT)), name, extras))
    return found


def test_messages_give_pip_advice_at_all():
    assert len(_advice()) >= 4


@pytest.mark.parametrize(("path", "name", "extras"), _advice())
def test_pip_advice_names_the_distribution_and_its_extras(path, name, extras):
    project = pyproject()["project"]
    assert name == project["name"], f"{path}: pip install '{name}[...]', not {project['name']}"
    assert set(extras.split(",")) <= set(project["optional-dependencies"]), f"{path}: no extra {extras}"
