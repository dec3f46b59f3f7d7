"""``manage.py kv_stats``: entries, sizes and settings of a kv_backend cache."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kv_backend.errors import KVError
from kv_backend_django._commands import (
    access_error,
    add_cache_argument,
    error_text,
    get_kv_cache,
    human_bytes,
    store_for_reading,
)

_BYTES = ("live_bytes", "dead_bytes", "total_bytes")


def _redis_records(db: Any) -> int:
    """How many of the live keys of ``db`` are records of Redis keys (of ``kvb serve`` on the directory)."""
    from kv_backend.structures.layout import is_structures_key  # (not at import: kv_stats's only)

    return sum(1 for key in db.unordered_keys() if is_structures_key(key))


class Command(BaseCommand):
    help = "Show the entries, sizes and settings of a kv_backend cache (--json for scripts)."

    # As Django's createcachetable: the system checks create every cache, so an alias that
    # cannot be created (or any other settings error) was a traceback before handle() could
    # report it as a CommandError; and a cron backup must not stop for an unrelated check.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_cache_argument(parser)
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["cache"]
        cache = get_kv_cache(alias)
        stats: dict[str, Any] = {"alias": alias, "location": cache.location}
        try:
            with store_for_reading(cache) as db:
                engine_stats = db.stats()
                kept = _redis_records(db)
        except KVError as exc:
            raise access_error(exc, cache, "kv_stats") or CommandError(
                f"cannot read the stats of {cache.location}: {error_text(exc)}"
            ) from exc
        stats.update((k, v) for k, v in engine_stats.items() if k != "path")
        # The records of kvb serve's Redis keys in the directory are among the keys, and no entries: culling,
        # MAX_ENTRIES and clear() leave them out, so the entries are told apart from them here.
        stats["entries"] = max(stats.get("keys", 0) - kept, 0)
        stats["redis_records"] = kept
        total = stats.get("live_bytes", 0) + stats.get("dead_bytes", 0)
        stats["dead_ratio"] = round(stats.get("dead_bytes", 0) / total, 4) if total else 0.0
        stats.update(
            {
                "timeout": cache.default_timeout,
                "max_entries": cache._max_entries,
                "cull_frequency": cache._cull_frequency,
                "key_prefix": cache.key_prefix,
                "version": cache.version,
            }
        )
        if options["json"]:
            self.stdout.write(json.dumps(stats, sort_keys=True))
            return
        rows = []
        for key, value in stats.items():
            if key in _BYTES:
                value = f"{human_bytes(value)} ({value})"
            elif key == "dead_ratio":
                value = f"{value:.1%}"
            elif key == "timeout" and value is None:
                value = "none (entries never expire)"
            rows.append((key.replace("_", " "), "-" if value is None or value == "" else str(value)))
        width = max(len(k) for k, _ in rows)
        self.stdout.write(f"kv_backend cache {alias!r}")
        for key, value in rows:
            self.stdout.write(f"  {key:<{width}}  {value}")
