"""``manage.py kv_merge``: compact a kv_backend cache (drop overwritten, deleted and expired records)."""

from __future__ import annotations

import os
import stat
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kv_backend.errors import KVError, MergeInProgressError
from kv_backend.files import files_granting
from kv_backend_django._commands import (
    access_error,
    add_cache_argument,
    error_text,
    existing_store,
    format_report,
    get_kv_cache,
    progress_unless_quiet,
)
from kv_backend_django.cache import KVCache


class Command(BaseCommand):
    help = (
        "Merge (compact) the store of a kv_backend cache: rewrite its closed data files without dead "
        "records. Safe while the site runs."
    )

    # As Django's createcachetable: the system checks create every cache, so an alias that
    # cannot be created (or any other settings error) was a traceback before handle() could
    # report it as a CommandError; and a cron backup must not stop for an unrelated check.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_cache_argument(parser)
        parser.add_argument(
            "--wait",
            action="store_true",
            help="if another process is merging the cache (a worker's auto_merge), wait for it, then merge",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cache = get_kv_cache(options["cache"])
        try:
            # Opened before anything is said: a LOCATION without a store (none is created), one this
            # user may not write, a damaged one fail as kvb merge fails, not after "Merging ...".
            db = existing_store(cache)
            mode = stat.S_IMODE(os.stat(cache.location).st_mode)
        except KVError as exc:
            raise self._failure(exc, cache) from exc
        verbose = options["verbosity"] >= 1  # -v 0 (cron): errors only
        if verbose:
            self.stdout.write(f"Merging cache {options['cache']!r} at {cache.location} ...")
        try:
            # Run as root (sudo, root's crontab) on a cache of the site's user, the files the merge adds
            # are given that user (the engine gives every file root adds to a store the owner of its
            # format file), so the site's workers go on writing them.
            # The files the merge adds (merged data and hint files, the next active data file) get
            # the read and write bits LOCATION grants, whatever the umask of cron (022): in a 2770
            # LOCATION shared by a group's workers they were 0644, and the other users' workers
            # could not write the new active file. (The engine gives them no more than the store's
            # format file grants either.) Not through os.umask, which is the whole process's: called
            # from a threaded server or a Celery task, it changed the files of every other thread.
            with files_granting(mode), progress_unless_quiet("merge", options["verbosity"]) as progress:
                report = db.merge(progress=progress, wait=options["wait"])
        except MergeInProgressError as exc:
            # The engine's advice, "call merge(wait=True)", is for a program.
            raise CommandError(
                f"another process is merging the cache at {cache.location} right now (a worker's "
                "auto_merge, or another kv_merge): it compacts the same files; run kv_merge again "
                "after it finished if the store still has much dead data (see kv_stats), or run kv_merge "
                "--wait to wait for it and then merge"
            ) from exc
        except KVError as exc:
            raise self._failure(exc, cache) from exc
        if verbose:
            self.stdout.write(self.style.SUCCESS("Merge finished."))
            self.stdout.write(format_report(report))

    @staticmethod
    def _failure(exc: KVError, cache: KVCache) -> CommandError:
        """The CommandError of a merge of ``cache`` that failed with ``exc``: kvb merge's message for
        it, or the operator's one for a permission error on LOCATION."""
        return access_error(exc, cache, "kv_merge") or CommandError(
            f"merge of {cache.location} failed: {error_text(exc)}"
        )
