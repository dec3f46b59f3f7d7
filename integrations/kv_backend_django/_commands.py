"""Shared helpers of the kv_* management commands."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from kv_backend import DB
from kv_backend.errors import ConfigurationError, KVError, StorageError, StoreNotFoundError
from kv_backend.files import prepare_directory, user_name
from kv_backend_django.cache import KVCache


def add_cache_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--cache",
        default="default",
        metavar="ALIAS",
        help="the CACHES alias to work on (default: %(default)s); it must be a kv_backend_django KVCache",
    )
    # The commands run no system checks (requires_system_checks = []), so Django no longer adds
    # --skip-checks; scripts and call_command(skip_checks=...) written for the earlier commands keep
    # working. It changes nothing.
    parser.add_argument("--skip-checks", action="store_true", help=argparse.SUPPRESS)


def add_storage_option_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec storage option, repeatable (e.g. endpoint_url=http://127.0.0.1:9000); VALUE is read "
        "as JSON when it can be (give credentials through the environment: arguments show in ps)",
    )


def get_kv_cache(alias: str) -> KVCache:
    """Return the KVCache of ``alias`` or raise a CommandError saying why it cannot be used."""
    from django.conf import settings

    if alias not in settings.CACHES:
        known = ", ".join(sorted(settings.CACHES)) or "none"
        raise CommandError(f"no cache alias {alias!r} in settings.CACHES (configured: {known})")
    try:
        cache = caches[alias]
    except ImproperlyConfigured as exc:  # a BACKEND that does not import, KVCache's bad OPTIONS...
        raise CommandError(f"cache {alias!r} cannot be created: {exc}") from exc
    except Exception as exc:  # Django's BaseCache itself: a KEY_FUNCTION that does not import...
        raise CommandError(f"cache {alias!r} cannot be created: {type(exc).__name__}: {exc}") from exc
    if not isinstance(cache, KVCache):
        backend = settings.CACHES[alias].get("BACKEND", type(cache).__module__ + "." + type(cache).__name__)
        raise CommandError(
            f"cache {alias!r} uses {backend}, not a kv_backend cache; this command works only on caches "
            "with BACKEND 'kv_backend_django.cache.KVCache'"
        )
    return cache


@contextmanager
def progress_unless_quiet(description: str, verbosity: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar (on a terminal), or none at all with ``-v 0``, which asks for errors only."""
    if verbosity < 1:
        yield None
        return
    from kv_backend.progress import progress_bar

    with progress_bar(description) as progress:
        yield progress


_umask_lock = threading.Lock()


@contextmanager
def umask_of(mode: int) -> Iterator[None]:
    """Run the block under a umask that withholds, on top of the process's own, what a directory of
    ``mode`` withholds: for files that a third-party filesystem (fsspec's) creates, where no mode
    can be given. The umask is the whole process's, so other threads' files get it too meanwhile:
    use it only where nothing else can. Such blocks run one at a time: two interleaved in two
    threads left the process under the first one's umask for good. It is back afterwards."""
    with _umask_lock:
        umask = os.umask(0o077)  # (read by setting one that is no looser meanwhile)
        try:
            os.umask(umask | (0o777 & ~mode))
            yield
        finally:
            os.umask(umask)


def parse_storage_options(items: list[str] | None, *targets: Callable[..., object]) -> dict[str, Any]:
    """``--storage-option`` pairs as fsspec options for ``targets`` (kv_backend.backup's rules)."""
    from kv_backend.backup import parse_storage_options as parse

    try:
        return parse(items, *targets)
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from exc


def error_text(exc: BaseException) -> str:
    """The message of ``exc`` as ``kvb`` says it: without the ``[Errno N]`` (and file name) that the
    text of an OSError, such as the engine's ``StorageError``, puts around it ("[Errno 22] PATH is not
    a kv_backend store ..."). A system call's own OSError (a command's os.mkdir, os.rename) names its
    file in front instead ("PATH: File exists"), since its reason alone does not say which."""
    if not isinstance(exc, OSError) or not exc.strerror:
        return str(exc)
    if isinstance(exc, KVError) or exc.filename is None:
        return exc.strerror
    names = (str(os.fsdecode(n)) for n in (exc.filename, exc.filename2) if n is not None)
    return f"{' -> '.join(names)}: {exc.strerror}"


def report_dict(report: Any) -> dict[str, Any]:
    """Best-effort plain dict of a report object (dataclass, mapping, or object with attributes)."""
    if report is None:
        return {}
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    if isinstance(report, dict):
        return dict(report)
    if hasattr(report, "_asdict"):
        return dict(report._asdict())
    if hasattr(report, "__dict__"):
        return {k: v for k, v in vars(report).items() if not k.startswith("_")}
    return {"result": report}


def format_report(report: Any) -> str:
    """Render a report: its own ``str()`` when it defines one, else aligned ``name: value`` lines."""
    # (mypy takes the class's __str__ for a bound method, which object's unbound one cannot be)
    if type(report).__str__ is not object.__str__:  # type: ignore[comparison-overlap]
        return f"  {report}"
    data = report_dict(report)
    if not data:
        return str(report)
    width = max(len(k) for k in data)
    return "\n".join(f"  {k.replace('_', ' '):<{width}}  {v}" for k, v in data.items())


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def require_store(cache: KVCache) -> None:
    """A CommandError if the cache's LOCATION holds no store yet; nothing is created.

    The cache creates its store on first use. A command that created it (run as root
    from cron, on a fresh server) would leave a directory and files owned by root,
    which the site's own user may then be unable to use; a backup would copy an
    empty store. Other errors (a LOCATION this user may not read) are left to the caller.
    """
    try:
        prepare_directory(cache.location, create=False)
    except StoreNotFoundError as exc:
        raise CommandError(
            f"{exc.strerror or exc}; the cache creates its store on first use, this command creates "
            "nothing: check LOCATION (and the settings module in use)"
        ) from exc


def existing_store(cache: KVCache) -> DB:
    """The cache's store, for a command (see :func:`require_store`); errors opening it are left to
    the caller."""
    require_store(cache)
    return cache.db


#: What each command needs of LOCATION, for the message of a permission error.
NEEDS = {
    "kv_merge": (
        "read and write permission on LOCATION and on its files (a merge writes new data files and deletes "
        "the old ones)"
    ),
    "kv_stats": "read and search permission (r-x) on LOCATION and read permission on its files",
    "kv_backup": "read and search permission (r-x) on LOCATION and read permission on its files",
}


def access_error(exc: BaseException, cache: KVCache, command: str) -> CommandError | None:
    """An operator's CommandError for a permission error on the cache's store, else None.

    The engine's message for it ends with "open it with read_only=True", advice for a
    program, not for whoever runs the command: this one names the user, what the
    command needs of LOCATION and whom to run it as. Errors on other paths (a backup's
    destination) and other errors are left to the caller (None).
    """
    if not isinstance(exc, OSError) or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
        return None
    location = os.path.realpath(cache.location)
    where = os.path.realpath(os.fsdecode(exc.filename)) if exc.filename is not None else location
    if os.path.commonpath([location, where]) != location:
        return None  # not the store: a backup's destination, say
    needs = NEEDS[command]
    if exc.errno == errno.EROFS:
        return read_only_filesystem(location, command, needs)
    return permission_denied(location, command, needs, where)


def read_only_filesystem(location: str, command: str, needs: str) -> CommandError:
    """The CommandError of ``command``, which needs ``needs``, on a cache at ``location`` whose
    filesystem is mounted read-only (where running it as another user would not help)."""
    return CommandError(
        f"{command} cannot change the cache at {location}: its filesystem is mounted read-only, and "
        f"{command} needs {needs}"
    )


def permission_denied(location: str, command: str, needs: str, where: str) -> CommandError:
    """The CommandError of ``command`` run by a user lacking ``needs`` on the cache at ``location``."""
    user = user_name()
    try:
        owner = user_name(os.stat(location).st_uid)
    except OSError:
        owner = None
    run_as = f"{owner}, who owns LOCATION" if owner else "the user that owns LOCATION"
    return CommandError(
        f"{command} may not use the cache at {location} as user {user or os.geteuid()}: permission "
        f"denied on {where}. It needs {needs}: run it as the site's user ({run_as}), or give this "
        "user the group of LOCATION and its files with those permissions"
    )


@contextmanager
def store_for_reading(cache: KVCache) -> Iterator[DB]:
    """The cache's store, opened, for a command that only reads it (kv_stats).

    A user allowed to read the cache's directory but not to write it (a backup or
    monitoring account) cannot open it the way the cache does; for them the store
    is opened read-only, and closed again afterwards. A LOCATION without a store
    is a CommandError (see :func:`existing_store`).
    """
    try:
        db = existing_store(cache)
    except StorageError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    else:
        yield db
        return
    with DB(cache.location, read_only=True) as db:
        yield db
