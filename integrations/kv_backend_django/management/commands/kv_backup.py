"""``manage.py kv_backup URL``: copy a consistent snapshot of a kv_backend cache to an fsspec URL."""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kv_backend.errors import KVError
from kv_backend_django._commands import (
    access_error,
    add_cache_argument,
    add_storage_option_argument,
    error_text,
    format_report,
    get_kv_cache,
    parse_storage_options,
    progress_unless_quiet,
    require_store,
    umask_of,
)
from kv_backend_django.cache import KVCache


class Command(BaseCommand):
    help = (
        "Back up a kv_backend cache to URL (file://..., s3://bucket/prefix, any fsspec URL). "
        "Safe while the site runs: the snapshot is consistent."
    )

    # As Django's createcachetable: the system checks create every cache, so an alias that
    # cannot be created (or any other settings error) was a traceback before handle() could
    # report it as a CommandError; and a cron backup must not stop for an unrelated check.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="where to write the backup, e.g. file:///backups/cache or s3://b/p")
        add_cache_argument(parser)
        parser.add_argument("--name", default=None, help="name of the backup (default: a timestamp)")
        add_storage_option_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from kv_backend.backup import backup, backup_store, check_backup_url, in_process_url
        from kv_backend.backup_damage import HINT_FIX, damaged_text

        cache = get_kv_cache(options["cache"])
        # (the options kvb backup refuses: those either entry point takes)
        storage = parse_storage_options(options["storage_option"], backup_store, backup)
        url = options["url"]
        if in_process_url(url):
            raise CommandError(
                f"{url} is in the memory of this manage.py process, which is gone when it exits; "
                "give a URL that outlives it (file:///backups/cache, s3://bucket/prefix...)"
            )
        try:
            # Refused before anything is said or made, as kvb backup refuses them: a LOCATION without
            # a store, then a URL, storage options (anon= for a file:// URL...) or --name the backup
            # could not use. "Backing up ..." was printed first, as if the backup had started.
            # An existing store only (none is created). It is not opened: the snapshot is taken
            # under its write lock from the file list and the state page, so a store never merged
            # is not replayed into a key directory first, and a user who may read LOCATION but not
            # write it backs it up all the same.
            require_store(cache)
            check_backup_url(cache.location, url, options["name"], **storage)
            mode = stat.S_IMODE(os.stat(cache.location).st_mode)
        except (KVError, OSError, ValueError) as exc:
            raise self._failure(exc, cache, url) from exc
        verbose = options["verbosity"] >= 1  # -v 0 (cron): errors only
        if verbose:
            self.stdout.write(f"Backing up cache {options['cache']!r} at {cache.location} to {url} ...")
        try:
            # The copies hold what the store holds (sessions, private pages). On a local target
            # (simplecache::file:// and dir:: over file:// too) backup_store itself gives the files
            # and directories it creates no permission that LOCATION withholds, and on a remote one
            # (s3://) no file is made here. A filesystem that writes a local file itself
            # (zip://...::file:///backups/cache.zip) creates it under the umask: there only, the
            # umask withholds the same meanwhile (from the files of the process's other threads too).
            local_through_fsspec = writes_local_files_itself(url, storage)
            with (
                umask_of(mode) if local_through_fsspec else contextlib.nullcontext(),
                progress_unless_quiet("backup", options["verbosity"]) as progress,
            ):
                report = backup_store(cache.location, url, name=options["name"], progress=progress, **storage)
        except (KVError, OSError, ValueError) as exc:
            raise self._failure(exc, cache, url) from exc
        # found by the backup in the records of every data file it copied (as kv_restore checks them)
        if not report.restorable:
            # As kvb backup: the copy is exact, damage included, and kv_restore checks every record,
            # so a cron job must hear of it now, not on the day the backup is needed.
            if verbose:
                self.stdout.write(format_report(report))
            raise CommandError(
                f"the cache at {cache.location} holds {damaged_text(report)}, and so does backup "
                f"{report.name}, which kv_restore refuses; kvb check {cache.location} lists them, and "
                "kvb salvage copies the readable keys into a new store to use (and back up) instead"
            )
        if report.damaged_hint_entries:
            # Restorable (the data files are sound), but the cache needs fixing: said at every
            # verbosity, as a warning on stderr, so that cron mails it.
            self.stderr.write(
                self.style.WARNING(
                    f"the cache at {cache.location} holds {damaged_text(report)}, and so does backup "
                    f"{report.name}, which kv_restore restores all the same (it leaves those hint files "
                    f"out, and replays their data files, which are sound); kvb check {cache.location} "
                    f"lists them: {HINT_FIX}"
                )
            )
        if verbose:
            self.stdout.write(self.style.SUCCESS("Backup finished."))
            self.stdout.write(format_report(report))

    @staticmethod
    def _failure(exc: BaseException, cache: KVCache, url: str) -> CommandError:
        """The CommandError of a backup of ``cache`` to ``url`` that failed with ``exc``: kvb backup's
        message for it, or the operator's one for a permission error on LOCATION."""
        return access_error(exc, cache, "kv_backup") or CommandError(
            f"backup of {cache.location} to {url} failed: {error_text(exc)}"
        )


#: fsspec filesystems that hold no files of their own: the backup writes through them to the one
#: under them (see kv_backend.backup's _unwrapped)
_PASSED_THROUGH = ("simplecache", "filecache", "blockcache", "cached", "dir")


def writes_local_files_itself(url: str, storage: dict[str, Any]) -> bool:
    """Whether the backup to ``url`` (with fsspec ``storage`` options) goes to a filesystem that writes
    local files itself, whose modes the backup cannot give: one that keeps its objects in a local file
    (an archive: ``zip://x::file:///backups/cache.zip``, or its ``fo`` option naming a local path) or
    over a local filesystem (a ``target_protocol`` of ``file``). False for a local target, whose files
    the backup makes itself, and for a remote one."""

    def protocol(part: str, last: bool) -> str:
        # "simplecache::file:///x": a link of a chain may be a bare protocol; the last one is a
        # URL or a local path
        if "://" in part:
            return part.split("://", 1)[0].lower()
        return "file" if last else part.lower()

    def local(where: object) -> bool:
        return isinstance(where, str) and protocol(where, True) in ("file", "local")

    parts = url.split("::")
    protocols = [protocol(part, i == len(parts) - 1) for i, part in enumerate(parts)]
    while protocols and protocols[0] in _PASSED_THROUGH:
        protocols.pop(0)
    if not protocols or protocols[0] in ("file", "local"):
        return False
    return (
        any(p in ("file", "local") for p in protocols[1:])
        or storage.get("target_protocol") in ("file", "local")
        or local(storage.get("fo"))
    )
