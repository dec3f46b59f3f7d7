"""manage.py kv_backup of a cache whose store's KVB_FORMAT holds bytes that are not UTF-8 said only
"'utf-8' codec can't decode byte 0xff": it now says what kvb backup says (the file, the damage, what to
do), and nothing is written to the URL."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings

from kv_backend.files import FORMAT_FILE, FORMAT_TEXT


def test_kv_backup_of_a_store_whose_format_file_is_not_utf8(tmp_path):
    pytest.importorskip("kv_backend.backup")
    location, url = str(tmp_path / "cache"), str(tmp_path / "backups")
    conf = {"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": location}}
    with override_settings(CACHES=conf):
        caches["default"].set("k", "1")
        caches["default"].close()
        with open(os.path.join(location, FORMAT_FILE), "wb") as f:
            f.write(FORMAT_TEXT.encode() + b"id \xff\n")
        with pytest.raises(CommandError) as info:
            call_command("kv_backup", url, "-v", "0", stdout=StringIO())
    msg = str(info.value)
    assert msg.startswith(f"backup of {location} to {url} failed: "), msg
    assert f"{os.path.join(location, FORMAT_FILE)} holds bytes that are not UTF-8" in msg, msg
    assert "kvb salvage" in msg and "codec" not in msg, msg
    assert not any(files for _d, _dirs, files in os.walk(url))
