"""Every option of the scripts in benchmarks/ and example_project/ has a help text in ``--help``.

``benchmarks/bench_merge.py --keys``, ``example_project/run_demo.py --server`` and the seeds,
durations and ports of the soaks were listed by ``--help`` with no word of what they do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import child_env

ROOT = Path(__file__).resolve().parent.parent

#: Runs each script given with ``--help`` as ``__main__``, stops it where it parses its arguments,
#: and prints, per script, the options (and subcommands) of its parser that have no help text.
_UNDESCRIBED = r"""
import argparse, json, runpy, sys

class Parsed(Exception):
    pass

def stop(self, args=None, namespace=None):
    raise Parsed(self)

argparse.ArgumentParser.parse_known_args = stop

def undescribed(parser, prefix):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if not choice.help:
                    yield " ".join([*prefix, choice.dest])
            for name, sub in action.choices.items():
                yield from undescribed(sub, [*prefix, name])
        elif not action.help:
            yield " ".join([*prefix, action.option_strings[0] if action.option_strings else action.dest])

found = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    try:
        runpy.run_path(path, run_name="__main__")
    except Parsed as stopped:
        found[path] = list(undescribed(stopped.args[0], []))
print(json.dumps(found))
"""


def _scripts() -> list[str]:
    scripts = [p for p in sorted((ROOT / "benchmarks").glob("*.py")) if not p.name.startswith("_")]
    return [str(p) for p in [*scripts, ROOT / "example_project" / "run_demo.py"]]


def test_every_option_of_every_script_has_a_help_text():
    scripts = _scripts()
    done = subprocess.run(
        [sys.executable, "-c", _UNDESCRIBED, *scripts],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    # (every script parses a command line: one that stopped parsing it would go unchecked)
    assert sorted(found) == sorted(scripts)
    assert {path: options for path, options in found.items() if options} == {}
