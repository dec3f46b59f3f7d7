"""``manage.py kv_restore URL``: restore a kv_backend cache from a backup made by kv_backup."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kv_backend.errors import KVError
from kv_backend.progress import progress_bar
from kv_backend_django._commands import (
    add_cache_argument,
    format_report,
    get_kv_cache,
    parse_storage_options,
)
from kv_backend_django.cache import close_all


class Command(BaseCommand):
    help = (
        "Restore the store of a kv_backend cache from a backup at URL (made by kv_backup). "
        "Stop the site's workers first: they keep the old store open."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="where the backups are, as given to kv_backup")
        add_cache_argument(parser)
        parser.add_argument("--name", default=None, help="which backup to restore (default: the newest)")
        parser.add_argument(
            "--storage-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="fsspec storage option, repeatable",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from kv_backend.backup import restore

        cache = get_kv_cache(options["cache"])
        storage = parse_storage_options(options["storage_option"])
        url = options["url"]
        close_all()  # this process must not hold the store open while it is replaced
        self.stdout.write(f"Restoring cache {options['cache']!r} at {cache.location} from {url} ...")
        try:
            with progress_bar("restore") as progress:
                report = restore(url, cache.location, name=options["name"], progress=progress, **storage)
        except (KVError, OSError, ValueError) as exc:
            raise CommandError(f"restore of {cache.location} from {url} failed: {exc}") from exc
        self.stdout.write(self.style.SUCCESS("Restore finished."))
        self.stdout.write(format_report(report))
