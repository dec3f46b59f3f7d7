"""``manage.py kv_backup --help`` and ``kv_restore --help`` say what ``kvb backup --help`` says of
--storage-option: VALUE is read as JSON when it can be, and credentials belong in the environment.

docs/django.md says the values are parsed as JSON; the commands' help said only "fsspec storage
option, repeatable", so ``--storage-option anon=false`` looked like the string "false".
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import get_commands, load_command_class

from kv_backend.cli import build_parser


def _help(command: str) -> str:
    parser = load_command_class(get_commands()[command], command).create_parser("manage.py", command)
    out = StringIO()
    parser.print_help(out)
    return " ".join(out.getvalue().split())


def _kvb_storage_help() -> str:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "backup" in a.choices)
    backup = subparsers.choices["backup"]
    action = next(a for a in backup._actions if "--storage-option" in a.option_strings)
    return " ".join(action.help.split())


@pytest.mark.parametrize("command", ["kv_backup", "kv_restore"])
def test_storage_option_help_says_what_kvb_says(command):
    said = _kvb_storage_help().removeprefix("fsspec storage option, repeatable; ")
    assert said.startswith("VALUE is read as JSON")
    assert said in _help(command)
