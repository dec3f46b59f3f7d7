"""``manage.py kv_stats`` on a cache directory that ``kvb serve`` also uses.

kv_stats printed only the engine's key count, in which the records of Redis keys (several per key, and
kvb serve's functions and scripts) are counted, while culling, MAX_ENTRIES and clear() leave them out:
a cache of 4 entries beside three Redis keys showed 13 keys, with nothing to tell its entries apart.
It now prints the entries and the records of Redis keys as well.
"""

from __future__ import annotations

import json
import re
from io import StringIO

from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings
from redis_records_fixture22 import add_redis_keys


def test_entries_and_redis_records_are_told_apart(tmp_path):
    location = str(tmp_path / "shared")
    add_redis_keys(location)  # 9 records: 3 keys, a function library, a cached script
    conf = {"shared": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": location}}
    with override_settings(CACHES=conf):
        caches["shared"].set_many({f"k{i}": i for i in range(4)})
        out = StringIO()
        call_command("kv_stats", "--json", "--cache", "shared", stdout=out)
        data = json.loads(out.getvalue())
        assert (data["keys"], data["entries"], data["redis_records"]) == (13, 4, 9)
        out = StringIO()
        call_command("kv_stats", "--cache", "shared", stdout=out)
        assert re.search(r"^  entries +4$", out.getvalue(), re.M)
        assert re.search(r"^  redis records +9$", out.getvalue(), re.M)
