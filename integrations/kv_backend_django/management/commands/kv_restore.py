"""``manage.py kv_restore URL``: restore a kv_backend cache from a backup made by kv_backup."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kv_backend.errors import BackupError, KVError, NotAStoreError, StoreNotFoundError
from kv_backend.files import (
    STATE_FILE,
    check_new_store_target,
    enclosing_store,
    exchange_paths,
    fsync_dir,
    missing_directories,
    prepare_directory,
    refuse_dangling_link,
)
from kv_backend.state import in_use, kept_unopened
from kv_backend_django._commands import (
    add_cache_argument,
    add_storage_option_argument,
    error_text,
    format_report,
    get_kv_cache,
    parse_storage_options,
    permission_denied,
    progress_unless_quiet,
    read_only_filesystem,
)
from kv_backend_django.cache import close_store, create_private_directory, store_open_here


class Command(BaseCommand):
    help = (
        "Restore the store of a kv_backend cache from a backup at URL (made by kv_backup). "
        "An existing non-empty LOCATION is replaced only with --replace; stop the site's workers "
        "first, since they keep the old store open."
    )

    # As Django's createcachetable: the system checks create every cache, so an alias that
    # cannot be created (or any other settings error) was a traceback before handle() could
    # report it as a CommandError; and a cron backup must not stop for an unrelated check.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="where the backups are, as given to kv_backup")
        add_cache_argument(parser)
        parser.add_argument("--name", default=None, help="which backup to restore (default: the newest)")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="replace the current contents of LOCATION (the backup is verified before the switch)",
        )
        add_storage_option_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        global _restores_here
        with _restores_lock:
            _restores_here += 1
        try:
            self._restore(options)
        finally:
            with _restores_lock:
                _restores_here -= 1

    def _restore(self, options: dict[str, Any]) -> None:
        cache = get_kv_cache(options["cache"])
        try:
            from kv_backend.backup import RestoreNotDurableError, beside_failure, check_restore_url, restore
        except ImportError as exc:
            raise CommandError(f"backups need kv_backend.backup and its dependencies: {exc}") from exc
        storage = parse_storage_options(options["storage_option"], restore)
        url = options["url"]
        try:
            # As kvb restore, and the cache itself: a link to nothing (a volume not mounted) is not
            # followed, or the store was made on the disk below the missing mount, lost from view.
            refuse_dangling_link(cache.location)
        except StoreNotFoundError as exc:
            raise CommandError(
                f"restore of {cache.location} from {url} failed: cannot restore into {cache.location}: "
                f"{error_text(exc)}"
            ) from exc
        # A LOCATION that is a symlink (to a larger disk, say) keeps pointing at the store: the
        # directory it names is the one replaced, and the link itself stays as it is.
        location = os.path.realpath(cache.location)
        if os.path.ismount(location):
            # Checked before anything is read: the store is built beside LOCATION and renamed into
            # its place, which a mount point (a container volume, a disk of its own) cannot be.
            raise CommandError(
                f"{location} is a mount point: kv_restore builds the restored store beside LOCATION "
                "and renames it into place, which a mount point cannot be; point LOCATION at a "
                f"directory inside the mounted filesystem (e.g. {os.path.join(location, 'cache')})"
            )
        around = enclosing_store(os.path.dirname(location))
        if around is not None:
            # Checked before anything is made: the staging directory of --replace would lie there too.
            raise CommandError(
                f"refusing to restore into {location}: it lies inside the kv_backend store {around} (see "
                "check kv_backend_django.W003), where it would be taken for part of that store; give "
                "the cache a LOCATION outside any store, side by side with it"
            )
        try:
            occupied = bool(os.listdir(location))
        except (FileNotFoundError, NotADirectoryError):
            occupied = False  # missing, or a file (which the restore refuses, saying so)
        except OSError as exc:  # a user who may not read LOCATION could not replace it either
            raise CommandError(
                f"cannot read {location}: {exc.strerror or exc}; run kv_restore as the user that owns "
                "the cache"
            ) from exc
        if occupied:
            # Checked first: without --replace, a directory of other files was said to hold "a cache
            # store", and the --replace that message asked for was then refused.
            _check_is_a_store(location)
            if not options["replace"]:
                raise CommandError(
                    f"{location} already holds a cache store; stop the site's workers and run again "
                    "with --replace to swap in the backup (or point LOCATION at an empty directory)"
                )
            # Checked before the download: the restored store is built beside LOCATION and renamed
            # into its place, and the old one deleted. The engine's "Permission denied" at the end
            # named a staging directory, not what to do.
            parent = os.path.dirname(location)
            needs = (
                f"write permission on LOCATION and on its parent directory {parent} (--replace builds the "
                "restored store beside LOCATION, renames it into place and deletes the old one)"
            )
            for where in (parent, location):
                if not os.access(
                    where, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids
                ):
                    # (not "permission denied ... run it as the site's user", which would not help)
                    with contextlib.suppress(OSError):
                        if os.statvfs(where).f_flag & os.ST_RDONLY:
                            raise read_only_filesystem(location, "kv_restore", needs)
                    raise permission_denied(location, "kv_restore", needs, where)
        try:
            # Refused before anything is said, closed or made, as kvb restore refuses them: a URL,
            # storage options (anon= for a file:// URL...) or --name it cannot use, no such backup
            # there. "Restoring ..." was printed first, LOCATION made and removed again. The backup it
            # found is the one restored, by its name: the manifests are listed once (a request each).
            name = check_restore_url(url, options["name"], **storage)
            if not occupied:  # (a file at LOCATION...: as restore() refuses it)
                check_new_store_target(location, "restore", BackupError)
        except (KVError, OSError, ValueError) as exc:
            raise CommandError(f"restore of {location} from {url} failed: {error_text(exc)}") from exc
        # This process must not hold the store open while it is replaced (its other stores, those of the
        # other aliases, stay open: called from a running site, its other requests go on using them).
        close_store(location)
        if occupied and in_use(location):
            where, advice = _where_open(location)
            raise CommandError(
                f"{location} is open in {where}: {advice} first. A process that kept the old store open "
                "would go on writing to it, and lose that."
            )
        if occupied:
            _remove_abandoned_staging(location)
        target = f"{location}.restoring-{os.getpid()}" if occupied else location
        # The restored store gets the mode the cache would have: an existing LOCATION keeps its
        # own, a new one (and its missing parents) is private, made here as the cache makes it.
        # restore() fills the existing directory through one of mode 0700 beside it, and gives the
        # files the read and write bits the directory grants at the end: they are never more open
        # meanwhile, whatever the umask, which is left alone (it is the whole process's: called
        # from a threaded server or a Celery task, changing it changed every other thread's files).
        made = [] if occupied else missing_directories(location)
        create_private_directory(location)
        if not os.path.isdir(location):
            # (create_private_directory leaves its errors to the store's open) A LOCATION that cannot
            # be made (under a file, in a directory this user may not write) fails here, with the
            # text restore() gives it, not after "Restoring ...".
            try:
                os.makedirs(location, 0o700)
            except OSError as exc:
                raise CommandError(
                    f"restore of {location} from {url} failed: {beside_failure(location, made, exc)}"
                ) from exc
        mode = stat.S_IMODE(os.stat(location).st_mode)
        verbose = options["verbosity"] >= 1  # -v 0 (cron): errors only
        if verbose:
            self.stdout.write(f"Restoring cache {options['cache']!r} at {location} from {url} ...")
        staged = False  # (the staging directory made here, and only that, is removed on failure)
        try:
            if target != location:
                # Owned as LOCATION is: restore() gives the store the owner and group of the empty
                # directory it fills, so run by root, it does not come back root's, which the
                # site's workers (the owner of LOCATION) could not open.
                os.mkdir(target, 0o700)
                staged = True
                owner = os.stat(location)
                for uid in (owner.st_uid, -1):  # only root may give a directory to another user
                    try:
                        os.chown(target, uid, owner.st_gid, follow_symlinks=False)
                        break
                    except OSError:
                        continue
                # And LOCATION's mode, which restore() gives the restored store's files too (a
                # 2770 LOCATION shared by a group's workers: 0660 files), as when it fills LOCATION.
                os.chmod(target, mode)
            with progress_unless_quiet("restore", options["verbosity"]) as progress:
                report = restore(url, target, name=name, progress=progress, **storage)
            os.chmod(target, mode)
        except (KVError, OSError, ValueError) as exc:
            if staged:  # (not one already there: another kv_restore's of this process, in another thread)
                shutil.rmtree(target, ignore_errors=True)
            for directory in made:  # those made above, deepest first: missing again, as before
                try:
                    os.rmdir(directory)
                except OSError:
                    break
            if staged and isinstance(exc, RestoreNotDurableError):
                # (in place in the staging directory, now removed: its text would say the store is there)
                raise CommandError(
                    f"restore of {location} from {url} failed: cannot fsync the directory {exc.directory}: "
                    f"{exc.reason}, which the swap into {location} needs to be durable; nothing was replaced "
                    "(the restored copy is removed): check the disk (the system log says why), then run "
                    "kv_restore again"
                ) from exc
            raise CommandError(f"restore of {location} from {url} failed: {error_text(exc)}") from exc
        if occupied:
            # Checked again, and kept so until the restored store is in place: a download can take long,
            # and a worker started meanwhile (a deploy, a restart) has the old store open; swapped under
            # it, its writes would be lost. One that starts to open it now waits for the swap, then
            # finds the store it opened gone from LOCATION and opens the restored one (see
            # kept_unopened).
            with kept_unopened(location) as unused:
                if not unused:
                    shutil.rmtree(target, ignore_errors=True)
                    where, advice = _where_open(location)
                    raise CommandError(
                        f"{location} was opened by {where} while the backup was restored; nothing was "
                        f"replaced: {advice} and run again."
                    )
                old = _swap_in(target, location)
            # Dropped once every open that waited may go on: it finds the store it opened gone from
            # LOCATION whether or not it is deleted yet, and a large one takes a while.
            shutil.rmtree(old, ignore_errors=True)
            # The report named the staging directory, gone now: report the LOCATION it became.
            report = dataclasses.replace(report, path=location)
        if verbose:
            self.stdout.write(self.style.SUCCESS("Restore finished."))
            self.stdout.write(format_report(report))


def _swap_in(target: str, location: str) -> str:
    """Put the restored store at ``target`` in the place of the old one at ``location`` (the caller keeps
    every process from opening it meanwhile); return where the old one is now, for the caller to drop."""
    # In one step where the system can: killed between two renames, LOCATION held no store at all, and
    # the cache started the next worker on a new, empty one beside the old store moved aside.
    try:
        swapped = exchange_paths(target, location)
    except OSError as exc:  # nothing changed
        shutil.rmtree(target, ignore_errors=True)
        raise CommandError(f"cannot move the restored store into {location}: {error_text(exc)}") from exc
    if swapped:
        _durable_swap(location, target)
        return target  # the old store, now
    old = f"{location}.replaced-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    try:
        os.rename(location, old)
    except OSError as exc:  # the old store stays in place, untouched
        shutil.rmtree(target, ignore_errors=True)
        raise CommandError(f"cannot move the old store at {location} aside: {error_text(exc)}") from exc
    try:
        os.rename(target, location)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(old, location)  # put the old store back
        except OSError:
            # (LOCATION is taken: a worker that started between the two renames made a new
            # store there, which it uses; the old store must not be lost with it)
            raise CommandError(
                f"cannot move the restored store into {location}: {exc.strerror or exc}; a process "
                f"opened the cache between the two renames that replace its store (a worker that "
                f"started) and made a new, empty store at {location}: the old store is at {old}, "
                "untouched. Stop every process that uses the cache, move aside what it made at "
                f"{location}, then move {old} back there, or run kv_restore again"
            ) from exc
        raise CommandError(f"cannot move the restored store into {location}: {error_text(exc)}") from exc
    _durable_swap(location, old)
    return old


def _durable_swap(location: str, old: str) -> None:
    """Make the swap that put the restored store at ``location`` durable before the old store, now at
    ``old``, is deleted; a CommandError that keeps it, and says what to do, where the fsync fails: a
    crash or power failure may yet undo the swap and bring the old store back to ``location``."""
    parent = os.path.dirname(location)
    try:
        fsync_dir(parent)
    except OSError as exc:
        raise CommandError(
            f"the restored store is in place at {location}, but cannot make the swap durable: cannot fsync "
            f"the directory {parent}: {exc.strerror or exc}; a crash or power failure may yet bring the old "
            f"store back there, so it is left at {old}: check the disk (the system log says why), run "
            f"`sync {parent}`, and once it succeeds delete {old}"
        ) from exc


def _where_open(location: str) -> tuple[str, str]:
    """Who has the store at ``location`` open, and what to do, for a message (see :func:`in_use`)."""
    if store_open_here(location):
        # Called from a running site or a Celery worker (call_command): another thread's cache call
        # opens the store again at once.
        return (
            "this process (another of its threads uses the cache: a request, a task)",
            "run kv_restore in a process that does not use the cache (manage.py kv_restore in a shell), "
            "the site's workers stopped",
        )
    # No process id: the holder of a flock is not known reliably (a forked child, a Celery pool's,
    # holds the lock its parent took and /proc/locks names the parent, which may be gone; processes of
    # another PID namespace, a container sharing the volume, are not listed). Every process that has
    # the store open holds its STATE page open, forked children too, which lsof and fuser list.
    state = os.path.join(location, STATE_FILE)
    listed = f"; `lsof {state}` or `fuser -v {state}` lists them" if os.path.exists(state) else ""
    return f"another process (a web or Celery worker, a shell...{listed})", "stop them"


#: How many kv_restore commands this process runs now (call_command from several threads).
_restores_here = 0
_restores_lock = threading.Lock()


def _remove_abandoned_staging(location: str) -> None:
    """Delete the staging directories (``LOCATION.restoring-PID``, and the temporary directory of
    the restore into it) of a ``kv_restore --replace`` that was killed (SIGKILL, a reboot) before it
    swapped them in: those whose process is no longer running. They hold a copy of a backup, or
    the old store after the swap; LOCATION never depends on them. (``LOCATION.replaced-...`` may
    hold the only copy of the old store, and is never touched.)"""
    from kv_backend.backup import remove_abandoned_copies

    parent, base = os.path.split(location)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name[len(base) + len(".restoring-") :]
        if not name.startswith(f"{base}.restoring-") or not pid.isdigit() or not pid.isascii():
            continue
        if int(pid) == os.getpid():
            # This process's id: another kv_restore of this process (call_command in two threads),
            # or a killed one whose id it got (a container's processes get the same ids each time).
            with _restores_lock:
                if _restores_here > 1:
                    continue
        elif _running(int(pid)):
            continue
        path = os.path.join(parent, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        remove_abandoned_copies(parent, name)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (as far as this process can tell: one of another user too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # (another user's: EPERM) never taken for gone
    return True


def _check_is_a_store(location: str) -> None:
    """Refuse to replace a LOCATION that holds files other than a kv_backend store's.

    ``--replace`` deletes the old directory: if LOCATION points at the wrong
    place (a project or data directory), those files must not go with it. The
    cache itself refuses to open such a directory.
    """
    try:
        prepare_directory(location, create=False)
    except StoreNotFoundError:
        pass  # only a store's own leftovers (LOCK, ...) without KVB_FORMAT: nothing else to lose
    except NotAStoreError as exc:
        raise CommandError(
            f"{exc.strerror or exc}; --replace deletes the old LOCATION, so it refuses one that holds "
            "other files: point LOCATION at the cache's directory, or at a new or empty one"
        ) from exc
    # A store holds only files: a directory inside it is someone else's (often the LOCATION of
    # another cache, such as sessions nested in the main cache's directory) and would go too.
    nested = sorted(
        entry.name
        for entry in os.scandir(location)
        if entry.is_dir(follow_symlinks=False) and entry.name != "lost+found"
    )
    if nested:
        raise CommandError(
            f"{location} holds directories that are not part of its store ({', '.join(nested[:3])}), "
            "perhaps the LOCATION of another cache; --replace deletes the old LOCATION with everything "
            "in it, so move them out first"
        )
