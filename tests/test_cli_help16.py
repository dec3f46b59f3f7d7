"""Every option and argument of kvb's subcommands says in --help what it does.

``--storage-option`` (backup, restore, backups), ``keys --prefix``/``--reverse`` and ``serve``'s and
``http``'s ``--host``, ``--port`` and ``--unixsocket`` had no help text, so ``kvb backup --help``
did not say what a storage option is or how its value is read (docs/backup.md did); no
positional argument (path, key, url...) said what it names.
"""

from __future__ import annotations

import argparse

import pytest

from kv_backend.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("kvb has no subcommands")


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_and_argument_has_help(name):
    for action in _subcommands()[name]._actions:
        said = "/".join(action.option_strings) or action.dest
        assert action.help, f"kvb {name} {said} has no help text"


def test_storage_option_help_says_how_values_are_read():
    for name in ("backup", "restore", "backups"):
        text = _subcommands()[name].format_help()
        assert "fsspec storage option, repeatable" in text and "JSON" in text
