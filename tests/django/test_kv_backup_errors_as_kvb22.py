"""``manage.py kv_backup`` and ``kvb backup`` say the same of a LOCATION that holds no store.

kvb printed the engine's message; kv_backup printed the text of the OSError it is (a
``StorageError``), "[Errno 22] PATH is not a kv_backend store ...", "[Errno 20] PATH is a file, not a
kv_backend store directory". Both now say the message alone.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)
from test_commands_errors_as_kvb22 import _location

KV = "kv_backend_django.cache.KVCache"


@pytest.mark.parametrize("kind", ["other files", "a file"])
def test_kv_backup_says_what_kvb_says(tmp_path, capsys, kind):
    location = _location(tmp_path, kind)
    url = str(tmp_path / "bk")
    code, _, err = run(capsys, "backup", str(location), url)
    assert code == 2, err
    said = err.strip().removeprefix("kvb: ")
    caches = {"default": {"BACKEND": KV, "LOCATION": str(location)}}
    with override_settings(CACHES=caches), pytest.raises(CommandError) as info:
        call_command("kv_backup", url, "-v", "0")
    msg = str(info.value)
    assert "[Errno" not in msg, msg
    assert msg == f"backup of {location} to {url} failed: {said}", (msg, said)
    assert not (tmp_path / "bk").exists()
