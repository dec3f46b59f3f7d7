"""System checks for KVCache settings (``manage.py check``), run when the app is installed.

Django checks only its own file-based cache for a LOCATION that a web server
may publish (inside MEDIA_ROOT, STATIC_ROOT or STATICFILES_DIRS) or that
depends on the working directory. A KVCache store holds pickled pages and
sessions in the same way, so the same two mistakes are checked here, and
aliases sharing a LOCATION with engine OPTIONS that cannot both apply, or
nesting one LOCATION in another, or a LOCATION on the store of the kvb:// Celery
result backend, a LOCATION the cache cannot open: a file, or a directory of
other files, an alias that culls the sessions of the cache session engine
on their LOCATION sooner than their own alias would, and a sessions alias
that culls at Django's default of 300 entries.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from kv_backend.errors import ConfigurationError, NotAStoreError
from kv_backend.files import prepare_directory
from kv_backend_django.cache import (
    _ENGINE_DEFAULTS,
    ENGINE_OPTIONS,
    KVCache,
    effective_engine_options,
    location_path,
    unknown_entry_keys,
)


def _kv_configs() -> Iterator[tuple[str, dict[str, Any]]]:
    """``(alias, CACHES entry)`` of every cache configured with KVCache (or a subclass of it)."""
    from django.utils.module_loading import import_string

    for alias, config in settings.CACHES.items():
        try:
            cls = import_string(config.get("BACKEND", ""))
        except ImportError:
            continue  # Django's own cache checks report a backend that does not import
        if isinstance(cls, type) and issubclass(cls, KVCache):
            yield alias, config


def _location(config: dict[str, Any]) -> str:
    """The LOCATION of a KVCache entry as a path (``~`` expanded), or ``""`` where the cache refuses it.

    KVCache takes a non-empty ``str`` or path object that is no URL and, created by Django's own
    cache checks, reports anything else (a list of servers or a ``redis://`` URL copied from
    another alias) with ``KVCacheConfigurationError``; these checks skip such an entry rather
    than fail on it.
    """
    try:
        return location_path(config.get("LOCATION"))
    except ConfigurationError:
        return ""


def _kv_aliases() -> Iterator[tuple[str, str]]:
    """``(alias, LOCATION)`` of every cache configured with KVCache (or a subclass of it)."""
    for alias, config in _kv_configs():
        yield alias, _location(config)


def _published_dirs() -> Iterator[tuple[str, pathlib.Path]]:
    for name in ("MEDIA_ROOT", "STATIC_ROOT", "STATICFILES_DIRS"):
        setting = getattr(settings, name, None)
        if not setting:
            continue
        entries = setting if name == "STATICFILES_DIRS" else [setting]
        for entry in entries:
            path = entry[1] if isinstance(entry, (list, tuple)) else entry
            yield name, pathlib.Path(path).resolve()


def _resolved(location: str) -> pathlib.Path:
    """The directory a LOCATION names, absolute and with symlinks resolved (as the cache keys its store)."""
    return pathlib.Path(os.path.abspath(location)).resolve()


def _relation(store: pathlib.Path, other: pathlib.Path) -> str | None:
    """How the directory ``store`` stands to ``other``: "is", "is inside", "contains", or None."""
    if store == other:
        return "is"
    if other in store.parents:
        return "is inside"
    if store in other.parents:
        return "contains"
    return None


@register(Tags.caches, deploy=True)
def check_location_not_published(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """W001: a LOCATION that is, holds or lies inside a directory the site serves as files."""
    found: list[CheckMessage] = []
    for alias, location in _kv_aliases():
        if not location:
            continue
        store = pathlib.Path(location).resolve()
        for name, served in _published_dirs():
            relation = _relation(store, served)
            if relation is None:
                continue
            found.append(
                Warning(
                    f"The LOCATION of the {alias!r} cache {relation} {name}: a web server that serves "
                    "those files could hand out cached pages and sessions.",
                    hint="Put the store outside MEDIA_ROOT, STATIC_ROOT and STATICFILES_DIRS.",
                    obj=f"CACHES[{alias!r}]",
                    id="kv_backend_django.W001",
                )
            )
            break
    return found


@register(Tags.caches)
def check_location_is_absolute(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """W002: a relative LOCATION names a different store for each working directory."""
    return [
        Warning(
            f"The LOCATION of the {alias!r} cache is a relative path ({location!r}).",
            hint="Use an absolute path: workers, management commands and Celery may start in "
            "different directories, and each would then use a store of its own.",
            obj=f"CACHES[{alias!r}]",
            id="kv_backend_django.W002",
        )
        for alias, location in _kv_aliases()
        if location and not pathlib.Path(location).is_absolute()
    ]


@register(Tags.caches)
def check_shared_location_options(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """E001: two aliases on one LOCATION with different engine OPTIONS, refused at first use.

    The process opens each directory once, with one set of engine options, so
    the cache that is used second raises ImproperlyConfigured on every call:
    found here, it is not first met on a live request of a rarely used alias.
    """
    found: list[CheckMessage] = []
    first: dict[pathlib.Path, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for alias, config in _kv_configs():
        options = config.get("OPTIONS") or {}
        location = _location(config)
        if not location or not isinstance(options, dict):
            continue  # the cache itself reports these when it is created
        store = _resolved(location)
        try:
            engine = effective_engine_options(options)
        except ConfigurationError:
            continue  # a value the engine refuses: the cache itself reports it when it is created
        given = {**_ENGINE_DEFAULTS, **{k: v for k, v in options.items() if k in ENGINE_OPTIONS}}
        if store not in first:
            first[store] = (alias, engine, given)
            continue
        other, other_engine, other_given = first[store]
        if engine != other_engine:
            differ = ", ".join(
                f"{k} {other_given[k]!r} and {given[k]!r}"
                for k in ENGINE_OPTIONS
                if engine[k] != other_engine[k]
            )
            found.append(
                Error(
                    f"The {alias!r} and {other!r} caches share the LOCATION {str(store)!r} with different "
                    f"engine OPTIONS ({differ}): the one used second raises ImproperlyConfigured.",
                    hint="Give both the same sync, max_file_size and auto_merge (an option left out "
                    "counts as its default), or give each a directory of its own.",
                    obj=f"CACHES[{alias!r}]",
                    id="kv_backend_django.E001",
                )
            )
    return found


@register(Tags.caches)
def check_nested_locations(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """W003: a LOCATION that contains the LOCATION of another alias.

    A store directory holds only the store's files. The outer cache refuses a
    new directory that already holds the inner store, so which alias a fresh
    deployment uses first decides whether the site works, ``kv_restore
    --replace`` of the outer cache refuses to delete the inner store, and
    ``kv_restore`` refuses to restore the inner one among the outer store's files.
    """
    stores: dict[pathlib.Path, str] = {}
    for alias, location in _kv_aliases():
        if location:
            stores.setdefault(_resolved(location), alias)
    found: list[CheckMessage] = []
    for outer, alias in stores.items():
        inner = [other for path, other in stores.items() if outer in path.parents]
        if inner:
            names = ", ".join(map(repr, inner))
            found.append(
                Warning(
                    f"The LOCATION of the {alias!r} cache contains the LOCATION of "
                    f"{names}: a store directory holds only its own files, so a "
                    f"fresh deployment that uses the other cache first cannot open the {alias!r} cache, "
                    f"kv_restore --replace refuses it, and kv_restore refuses {names}.",
                    hint="Give every cache a directory of its own side by side, e.g. /var/cache/site/main "
                    "and /var/cache/site/sessions.",
                    obj=f"CACHES[{alias!r}]",
                    id="kv_backend_django.W003",
                )
            )
    return found


@register(Tags.caches)
def check_location_can_hold_the_store(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """E002: a LOCATION that exists and is neither a kv_backend store nor an empty directory.

    A file, a directory of other files or a store of a format this release cannot read: the
    cache refuses to open it, so every request that uses the cache fails. Nothing is created
    or changed here; a LOCATION this user may not read is left to the cache to report, and
    one holding another alias's LOCATION or the Celery results' store to W003 and W004.
    """
    explained = [_resolved(location) for _, location in _kv_aliases() if location]
    results = _celery_results_path()
    if results is not None:
        explained.append(_resolved(results))
    found: list[CheckMessage] = []
    for alias, location in _kv_aliases():
        if not location:
            continue
        store = _resolved(location)
        try:
            prepare_directory(str(store), create=False)
        except NotAStoreError as exc:
            if any(store in path.parents for path in explained):
                continue  # W003 or W004 says what is in it
            what = str(exc.strerror or exc).partition("; ")[0]
            found.append(
                Error(
                    f"The LOCATION of the {alias!r} cache cannot hold its store: {what}. The cache "
                    "refuses to open it, so every request that uses the cache fails.",
                    hint="Point LOCATION at a new or empty directory (it is created if missing), or at "
                    "the directory of the cache's existing store.",
                    obj=f"CACHES[{alias!r}]",
                    id="kv_backend_django.E002",
                )
            )
        except OSError:
            continue  # new (created on first use), or not readable by this user: the cache reports it
    return found


def _celery_results_path() -> str | None:
    """The directory of a ``kvb://`` CELERY_RESULT_BACKEND; None for another backend or a URL it refuses.

    Celery's Django setup reads ``CELERY_``-prefixed settings, the name read here.
    """
    url = getattr(settings, "CELERY_RESULT_BACKEND", None)
    if not isinstance(url, str) or url[:4].lower() != "kvb:":
        return None
    try:
        from kv_backend_celery.backend import parse_url

        return parse_url(url)[0]
    except (ImportError, ConfigurationError):
        return None


@register(Tags.caches)
def check_location_not_celery_results(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """W004: a LOCATION that is, holds or lies inside the store of a ``kvb://`` CELERY_RESULT_BACKEND.

    A cache culls and clears by removing entries of its directory, whoever wrote them: task
    results and chord counters kept there vanish (``get()`` then waits for ever, a chord never
    fires).
    """
    path = _celery_results_path()
    if path is None:
        return []  # another backend, no Celery here, or a URL the backend itself refuses when built
    results = _resolved(path)
    found: list[CheckMessage] = []
    for alias, location in _kv_aliases():
        if not location:
            continue
        store = _resolved(location)
        relation = _relation(store, results)
        if relation is None:
            continue
        found.append(
            Warning(
                f"The LOCATION of the {alias!r} cache {relation} the store of CELERY_RESULT_BACKEND "
                f"({str(results)!r}): culling and clear() remove entries of the cache's directory "
                "whoever wrote them, so task results and chord counters would be lost.",
                hint="Give the cache and the Celery results directories of their own, side by side, "
                "e.g. /var/lib/site/cache and /var/lib/site/celery-results.",
                obj=f"CACHES[{alias!r}]",
                id="kv_backend_django.W004",
            )
        )
    return found


@register(Tags.caches)
def check_entry_keys(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """W005: keys of a KVCache entry that Django ignores (a typo, another backend's setting)."""
    found: list[CheckMessage] = []
    for alias, config in _kv_configs():
        unknown = unknown_entry_keys(config)
        if not unknown:
            continue
        found.append(
            Warning(
                f"The CACHES entry of the {alias!r} cache has {'a key' if len(unknown) == 1 else 'keys'} "
                f"that Django ignores: {', '.join(sorted(map(repr, unknown)))}.",
                hint="Check the spelling (BACKEND, LOCATION, TIMEOUT, OPTIONS, KEY_PREFIX, VERSION, "
                "KEY_FUNCTION); the cache's own settings go in OPTIONS; remove what another backend read.",
                obj=f"CACHES[{alias!r}]",
                id="kv_backend_django.W005",
            )
        )
    return found


def _session_store() -> type | None:
    """The SessionStore class of SESSION_ENGINE, or None if its module fails to import (Django reports
    that on the first request)."""
    from importlib import import_module

    try:
        store = import_module(settings.SESSION_ENGINE).SessionStore
    except Exception:
        return None
    return store if isinstance(store, type) else None


def _cache_sessions_alias() -> str | None:
    """The alias holding the sessions when SESSION_ENGINE keeps them in a cache only (Django's ``cache``
    engine or one built on it), else None: the ``cached_db`` engine reads a culled session from the
    database again, so culling costs it a query, not the session."""
    from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore

    store = _session_store()
    if store is None or not issubclass(store, CacheSessionStore):
        return None
    return getattr(settings, "SESSION_CACHE_ALIAS", "default")


def _culling(alias: str) -> tuple[int, int] | None:
    """``(MAX_ENTRIES, CULL_FREQUENCY)`` of the cache ``alias`` as it culls, or None if it cannot be
    created (it reports that itself, as Django's own cache checks create every cache)."""
    from django.core.cache import caches

    try:
        cache = caches[alias]
    except Exception:
        return None
    return (cache._max_entries, cache._cull_frequency) if isinstance(cache, KVCache) else None


@register(Tags.caches)
def check_sessions_culled_by_another_alias(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """W006: an alias on the LOCATION of the cache-only sessions that culls sooner than their own alias.

    Culling counts and removes the entries of the whole directory, whatever the alias: an alias with a
    smaller MAX_ENTRIES (fragments meant to be few) culls every few writes once the directory holds
    that many entries, sessions included, and one with CULL_FREQUENCY 0 empties the directory,
    logging out every user at once.
    """
    configs = dict(_kv_configs())
    stores = [_resolved(_location(config)) for config in configs.values() if _location(config)]
    if len(set(stores)) == len(stores):
        return []  # no LOCATION shared (the session engine is not even imported)
    sessions = _cache_sessions_alias()
    if sessions not in configs or not _location(configs[sessions]):
        return []
    own = _culling(sessions)
    if own is None:
        return []
    store = _resolved(_location(configs[sessions]))
    found: list[CheckMessage] = []
    for alias, config in configs.items():
        location = _location(config)
        if alias == sessions or not location or _resolved(location) != store:
            continue
        culling = _culling(alias)
        if culling is None:
            continue
        (max_entries, frequency), (own_max, own_frequency) = culling, own
        if frequency == 0 and own_frequency != 0:
            setting, share = "CULL_FREQUENCY 0", "all of them, logging out every user"
        elif max_entries < own_max:
            setting = f"a smaller MAX_ENTRIES ({max_entries}, the sessions' cache {own_max})"
            share = "all" if frequency == 0 else f"1/{frequency}"
            share += " of them, sessions included (those users are logged out)"
        else:
            continue
        found.append(
            Warning(
                f"The {alias!r} cache shares the LOCATION {str(store)!r} of the {sessions!r} cache, which "
                f"holds the sessions (SESSION_ENGINE {settings.SESSION_ENGINE!r}), with {setting}. Culling "
                "counts and removes the entries of every alias on the directory: once it holds "
                f"{max_entries} entries, a write of the {alias!r} cache removes {share}.",
                hint="Give the sessions a cache alias (SESSION_CACHE_ALIAS) and a LOCATION of their own "
                "with a large MAX_ENTRIES, or give the aliases on the directory the same MAX_ENTRIES and "
                "CULL_FREQUENCY.",
                obj=f"CACHES[{alias!r}]",
                id="kv_backend_django.W006",
            )
        )
    return found


@register(Tags.caches)
def check_sessions_alias_max_entries(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """W007: SESSION_ENGINE keeps the sessions in a KVCache alias (``cache`` or ``cached_db`` engine, or
    one built on them) that does not set MAX_ENTRIES, so it culls at Django's default of 300 entries:
    on a busy site, users are logged out (``cache``) or their sessions read from the database again
    (``cached_db``) within minutes."""
    from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
    from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBSessionStore

    store = _session_store()
    if store is None or not issubclass(store, (CacheSessionStore, CachedDBSessionStore)):
        return []
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    config = dict(_kv_configs()).get(alias)
    if config is None:
        return []
    options = config.get("OPTIONS")
    if "max_entries" in config or (isinstance(options, dict) and "MAX_ENTRIES" in options):
        return []
    culling = _culling(alias)
    if culling is None:
        return []
    lost = (
        "a culled session is read from the database again, a query on its user's next request"
        if issubclass(store, CachedDBSessionStore)
        else "the users whose sessions are culled are logged out"
    )
    return [
        Warning(
            f"The {alias!r} cache holds the sessions (SESSION_ENGINE {settings.SESSION_ENGINE!r}) and sets "
            f"no MAX_ENTRIES, so it culls at Django's default of {culling[0]} entries: once that many "
            f"sessions (and other entries of its LOCATION) are stored, {lost}.",
            hint=f"Set OPTIONS MAX_ENTRIES of CACHES[{alias!r}] above the number of sessions the site "
            "keeps alive at once (100_000, say); each entry costs every process about 120 bytes of "
            "memory plus its key.",
            obj=f"CACHES[{alias!r}]",
            id="kv_backend_django.W007",
        )
    ]
