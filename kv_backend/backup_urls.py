"""What a backup URL may be, checked before fsspec reads it (see docs/backup.md).

fsspec reads much that is no URL as one, or as a local path, and drops what it does not take: a
protocol without ``//`` (``s3:/bucket``), a ``file://`` URL naming a host, a chain whose part wraps
no other filesystem (``memory::file:///x``), a path with ``::`` in it, a storage option given to the
wrong filesystem of a chain. These functions refuse such URLs with a
:class:`~kv_backend.errors.ConfigurationError` that says what to write, and find the filesystem
that stores what a backup writes past the caches and ``dir::``.
"""

from __future__ import annotations

import inspect
import os
import posixpath
import re
import sys
from typing import Any

from kv_backend.errors import ConfigurationError

# "s3:/bucket" or "memory:x": a protocol without "//", which fsspec takes for a local path.
_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_SCHEME_TYPO_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//)")
# A protocol as the part of a chained URL starts with it ("zip", "s3:", "file://...").
_PROTOCOL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(?::|\Z)")
_LOCAL_URL_RE = re.compile(r"(?i)(?:file|local):(?://)?")


def in_process_url(url: str) -> bool:
    """Whether ``url`` (or a filesystem it chains, ``simplecache::memory://...``) is fsspec's ``memory://``.

    That filesystem lives in the memory of the process: a backup there is gone when the process
    exits, so the command-line tools (``kvb backup``, ``manage.py kv_backup``) refuse it. A path with
    ``::`` in it (``/x::memory://y``) is a local directory's, as for :func:`is_url_chain`.
    """
    parts = url.split("::") if is_url_chain(url) else [url]
    return any(part.split("://", 1)[0].lower() == "memory" for part in parts if "://" in part)


#: What starts a URL (``s3:``, ``file:``, ``simplecache::s3:``): anything else is a local path.
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def relative_local_url(url: str) -> bool:
    """Whether ``url`` names a local directory by a relative path (``backups``, ``~/backups``), also
    as a URL (``file:backups``, ``file://~/backups``) or through another filesystem
    (``simplecache::backups``): fsspec takes it relative to the working directory of the process."""
    # the filesystem that stores what the chain writes (a path with '::' in it is one directory)
    storage = url.rpartition("::")[2] if is_url_chain(url) else url
    scheme = _LOCAL_URL_RE.match(storage)
    if scheme is None and _URL_SCHEME.match(storage):
        return False  # s3://, memory://, ...
    return not os.path.isabs(storage[scheme.end() :] if scheme else storage)


def _check_protocol_options(url: str, storage_options: dict[str, Any]) -> None:
    """Refuse the storage options ``protocol`` and ``target_protocol``: fsspec takes them for the
    filesystem of the URL (of its last part), and ``protocol=memory`` made a backup "complete at
    /srv/bk" in the memory of a process that then exited."""
    for option in ("protocol", "target_protocol"):
        if option in storage_options:
            raise ConfigurationError(
                f"the storage option {option}= would replace the filesystem that the backup URL "
                f"{url!r} names; write the protocol in the URL instead (s3://bucket/path, "
                "simplecache::s3://bucket/path)"
            )


def _check_url_typos(url: str) -> None:
    """Refuse URLs that fsspec would quietly take for the current or a local directory.

    fsspec reads ``s3:/bucket/kv`` (one slash) as the local path ``./s3:/bucket/kv``
    and ``file://`` (no path) as the current directory: a backup meant for S3 or
    for a configured directory would land somewhere else, and report success.
    """
    if "::" in url and not all(url.split("::")):
        # "::file:///x", "simplecache::": fsspec took the empty part for a directory named ':'
        # under the current one, where the backup went.
        raise ConfigurationError(
            f"the backup URL {url!r} has an empty part where '::' chains filesystems: write a "
            "filesystem on each side of '::' (simplecache::s3://bucket/path), or the URL alone (file:///path)"
        )
    last = url.rsplit("::", 1)[-1]  # the storage of a chained URL (simplecache::s3://...)
    m = _SCHEME_TYPO_RE.match(last)
    if m and m.group(1).lower() not in ("file", "local"):
        raise ConfigurationError(
            f"the backup URL {url!r} is not a URL: write {m.group(1)}://{last[m.end() :].lstrip('/')} "
            f"(with '//'), or ./{last} for a local directory with ':' in its name"
        )
    for prefix in ("file://", "local://", "file:", "local:"):
        if last.startswith(prefix):
            if not last[len(prefix) :]:
                raise ConfigurationError(
                    f"the backup URL {url!r} names no directory (it would mean the current one): "
                    f"write {prefix}/path/to/backups"
                )
            host = last[len(prefix) :].split("/", 1)[0] if prefix.endswith("//") else ""
            if host and not host.startswith("~") and host not in (".", ".."):
                # file://localhost/x is /x to RFC 8089 and urllib, file://backups/x a slash short of
                # /backups/x: fsspec takes both for a directory under the current one (./localhost/x).
                rest = last[len(prefix) :]
                meant = "/" + (rest.partition("/")[2] if host.lower() == "localhost" else rest)
                raise ConfigurationError(
                    f"the backup URL {url!r} names the host {host!r}, which fsspec takes for a directory "
                    f"under the current one (./{rest}): write {prefix}{meant} for {meant}, or ./{rest} "
                    "for a directory under the current one"
                )
            if _ESCAPE_RE.search(last):
                # Path("/mnt/backup disk").as_uri() gives file:///mnt/backup%20disk, which fsspec
                # takes for a new directory named "backup%20disk", often on another disk than meant.
                from urllib.parse import unquote

                path = unquote(last[len(prefix) :])
                raise ConfigurationError(
                    f"the backup URL {url!r} holds percent-escapes, which fsspec does not decode: it "
                    f"would name a directory with '%' in its name, not {path!r}; give the path "
                    "itself instead (a directory with '%' in its name too)"
                )
            break
    else:
        scheme, sep, rest = last.partition("://")
        if sep and scheme.lower() != "memory" and not rest.strip("/"):
            # fsspec takes the first word of the path for the bucket (or container, or host): with
            # none, s3:// listed and wrote s3://backups/..., a bucket named "backups", anyone's.
            raise ConfigurationError(
                f"the backup URL {url!r} names no bucket or directory: write {scheme}://BUCKET/path "
                "(the bucket, container or host, then the directory in it)"
            )


def _file_url_with_authority(url: str) -> str:
    """``file:/abs`` (a file URL without ``//``, RFC 8089) as ``file:///abs``: older fsspec releases
    (2023.3, the oldest supported) read the short form as the local path ``./file:/abs``, newer
    ones as ``/abs``."""
    head, sep, last = url.rpartition("::")
    for scheme in ("file:", "local:"):
        if last.startswith(scheme + "/") and not last.startswith(scheme + "//"):
            return head + sep + scheme + "//" + last[len(scheme) :]
    return url


def is_url_chain(url: str) -> bool:
    """Whether fsspec reads ``url`` as a chain of filesystems (``simplecache::s3://bucket/kv``,
    ``zip::file:///x.zip``): it holds ``::`` and starts with a protocol (a name, maybe followed by
    ``:``). A path with ``::`` in it (``/data/a::b/bk``, ``./a::b``) is a local directory's, whatever
    fsspec would make of it."""
    first, sep, _ = url.partition("::")
    return bool(sep) and (not first or _PROTOCOL_RE.match(first) is not None)


def _init_parameters(cls: type) -> set[str]:
    """The names of the parameters of every ``__init__`` of ``cls`` and its bases."""
    out: set[str] = set()
    for c in cls.__mro__:
        init = vars(c).get("__init__")
        if init is not None:
            try:
                out.update(inspect.signature(init).parameters)
            except (TypeError, ValueError):  # pragma: no cover - a builtin's
                pass
    return out


def _takes_any_keyword(cls: type) -> bool:
    """Whether an ``__init__`` of ``cls`` or a base (but ``object``) takes ``**kwargs``."""
    for c in cls.__mro__[:-1]:
        init = vars(c).get("__init__")
        try:
            params = inspect.signature(init).parameters.values() if init is not None else ()
        except (TypeError, ValueError):  # pragma: no cover - a builtin's
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return True
    return False


def _check_chain_parts(url: str) -> None:
    """Refuse a chained URL with a part before its last that wraps no other filesystem (a path, a
    ``file://``, ``s3://`` or ``http://`` URL): fsspec drops what follows it, so
    ``simplecache::/srv/a::b/bk`` (a path with ``::`` in it) backed up to ``/srv/a``, and
    ``s3://bucket/a::b/kv`` to ``s3://bucket/a``. The first part, when local (or ``memory://``),
    :func:`_check_chain` refuses once fsspec has read the URL."""
    from fsspec.registry import get_filesystem_class

    parts = url.split("::")
    for i in range(len(parts) - 1):
        local = _LOCAL_URL_RE.match(parts[i])
        m = _PROTOCOL_RE.match(parts[i])
        if local is None and m is not None:
            protocol = parts[i][: m.end()].rstrip(":").lower()
            if i == 0 and protocol == "memory":
                continue  # (_check_chain says so)
            try:
                if "target_protocol" in _init_parameters(get_filesystem_class(protocol)):
                    continue  # a cache, dir::, an archive: it wraps the next one
            except (ValueError, ImportError):  # unknown, or its driver missing: fsspec says so next
                continue
        elif i == 0:
            continue  # (_check_chain says so)
        rest = "::".join(parts[i + 1 :])
        if is_url_chain(rest) or "://" in rest:
            raise ConfigurationError(
                f"the backup URL {url!r} chains {parts[i]!r} in front of {rest!r}, which fsspec ignores: "
                f"{parts[i]!r} wraps no other filesystem; write the URL of the storage alone ({rest})"
            )
        path = "::".join(parts[i:])[local.end() if local else 0 :]
        through = f" through {'::'.join(parts[:i])}" if i else ""
        if local or m is None:  # a local directory: a path alone names it
            advice = f"give the path alone, {path} (the backup writes past a cache), or rename it"
        else:
            advice = "choose a name without '::'"
        raise ConfigurationError(
            f"the backup URL {url!r} names {path!r}, with '::' in it{through}: fsspec splits a URL at "
            f"each '::', so no chained URL can name it: {advice}"
        )


def _check_first_protocol(url: str) -> None:
    """Refuse a chained URL that starts with a word that is no fsspec protocol (``a::b``, a directory
    named with ``::`` given without ``./``, or a misspelt protocol): fsspec reads it as a local path
    or fails with "Protocol not known", neither saying how to write what was meant."""
    from fsspec.registry import available_protocols

    first = url.partition("::")[0]
    word = is_url_chain(url) and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", first) is not None
    if word and first.lower() not in available_protocols():
        raise ConfigurationError(
            f"the backup URL {url!r} starts with {first!r}, which is no fsspec protocol: for a local "
            f"directory with '::' in its name give the path itself: ./{url}; for a chain of "
            "filesystems, check the spelling of the protocol"
        )


_ANY_FILESYSTEM_OPTIONS = frozenset(
    {"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous", "loop"}
)
"""Options that every fsspec filesystem takes (its instance and listings caches, its event loop)."""

_DROPPED_OPTIONS = frozenset({"protocol", "mode", "compression", "encoding", "errors", "newline", "num"})
"""Options that fsspec's url_to_fs takes for its own, or drops, before it makes a filesystem."""


def _check_chain_options(url: str, storage_options: dict[str, Any]) -> None:
    """Refuse a storage option given at the top level for a chained URL whose first filesystem is a
    cache, ``dir::`` or an archive, when that filesystem does not take it: fsspec gives the top-level
    options to the first filesystem of a chain, and these ignore what they do not know, so
    ``endpoint_url=`` (or ``key=``, ``secret=``) for ``simplecache::s3://bucket/kv`` never reached S3,
    which went to AWS with the default credentials instead of the server named."""
    from fsspec.implementations.cached import CachingFileSystem
    from fsspec.implementations.dirfs import DirFileSystem
    from fsspec.registry import available_protocols, get_filesystem_class

    protocols = _protocols(url) if is_url_chain(url) else []
    if not protocols:
        return
    try:
        first = get_filesystem_class(protocols[0])
    except (ValueError, ImportError):  # fsspec says so next
        return
    if not (issubclass(first, (CachingFileSystem, DirFileSystem)) or _is_archive(first)):
        return
    takes = _ANY_FILESYSTEM_OPTIONS | _DROPPED_OPTIONS | set(available_protocols()) | _init_parameters(first)
    behind = protocols[1:] if "://" in url.rpartition("::")[2] else [*protocols[1:], "file"]
    for key in storage_options:
        if key in takes:
            continue
        storage = _plain_storage(behind)
        if storage is not None and not any(key in _filesystem_takes(p) for p in behind):
            # (the advice below led to file={'anon': ...}, which the local filesystem refuses in turn)
            kind, own = storage
            raise ConfigurationError(
                f"the storage option {key}= is not one that fsspec's {kind} filesystem takes, which holds "
                f"the backups of the chained URL {url!r} (it takes {own}), nor one of {protocols[0]!r} in "
                "front of it: leave it out; credentials and endpoints are for the storage of a URL such "
                "as s3://bucket/path"
            )
        forms = " or ".join(f"{p}={{{key!r}: ...}}" for p in behind)
        raise ConfigurationError(
            f"the storage option {key}= would go to {protocols[0]!r}, the first filesystem of the "
            f"chained URL {url!r}, which does not take it (fsspec would drop it): give it under the "
            f"protocol of the filesystem it is for, {forms} "
            f"(kvb: --storage-option '{behind[-1]}={{\"{key}\": ...}}')"
        )


def is_s3fs(fs: Any) -> bool:
    """Whether the fsspec filesystem ``fs`` is s3fs's, without importing s3fs (imported already where it
    is): importing it, and aiobotocore, to tell took half a second of each kvb command on a local or
    memory backup URL."""
    s3fs = sys.modules.get("s3fs")
    return s3fs is not None and isinstance(fs, s3fs.S3FileSystem)


def _check_session_options(fs: Any, url: str) -> None:
    """Refuse a storage option that s3fs does not take for the URL's filesystem ``fs``: s3fs hands
    what it does not know to its botocore session, which refused it only at the first request, as
    "cannot list ...: TypeError: AioSession.__init__() got an unexpected keyword argument
    'region_name'" (a failure to reach the target, 502 over HTTP), not saying where it goes."""
    if not is_s3fs(fs):
        return
    try:
        from aiobotocore.session import AioSession
    except ImportError:
        return
    if _takes_any_keyword(AioSession):  # (a later aiobotocore's, maybe: nothing to tell)
        return
    takes = _init_parameters(AioSession)
    from botocore.session import Session

    client = set(inspect.signature(Session.create_client).parameters) - {"self", "service_name"}
    for key in getattr(fs, "kwargs", {}):
        if key in takes:
            continue
        if key in client:
            raise ConfigurationError(
                f"the storage option {key}= of the backup URL {url!r} is a setting of the botocore "
                f'client, which s3fs does not take itself: give it as client_kwargs={{"{key}": ...}} '
                f"(kvb: --storage-option 'client_kwargs={{\"{key}\": ...}}')"
            )
        raise ConfigurationError(
            f"the storage option {key}= is not one that s3fs takes for the backup URL {url!r}: check its "
            "name among s3fs.S3FileSystem's arguments (endpoint_url, key, secret, token, profile, "
            "default_block_size, client_kwargs, config_kwargs, ...)"
        )


def _top_level_options(url: str, storage_options: dict[str, Any], plain: bool) -> dict[str, Any]:
    """The storage options given at the top level that all go to the filesystem of ``url`` itself
    (see :func:`_check_ignored_options`): all of them for a path (``plain``); none for a chained URL,
    whose first filesystem takes them (see :func:`_check_chain_options`); for another URL, all but
    the one named by its protocol, whose options fsspec adds to them (``file={"auto_mkdir": True}``)."""
    if plain:
        return storage_options
    if is_url_chain(url):
        return {}
    from fsspec.core import split_protocol

    protocol = split_protocol(url)[0] or "file"
    return {k: v for k, v in storage_options.items() if k != protocol}


def _own_parameters(cls: type) -> set[str]:
    """The named parameters of every ``__init__`` of ``cls`` and its bases (not ``*args``, ``**kwargs``,
    ``self``): the options a filesystem that keeps unknown keyword arguments unused really takes."""
    own: set[str] = set()
    for c in cls.__mro__:
        init = vars(c).get("__init__")
        if init is not None:
            own.update(
                p.name
                for p in inspect.signature(init).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
            )
    return own


def _plain_storage(protocols: list[str]) -> tuple[str, str] | None:
    """For the protocols behind the first of a chain, ending with its storage: ("local" or "memory",
    the options that filesystem takes) where the storage is fsspec's local or memory filesystem, which
    take no credentials nor endpoints; None for another (s3...)."""
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem
    from fsspec.registry import get_filesystem_class

    try:
        cls = get_filesystem_class(protocols[-1])
    except (ValueError, ImportError):
        return None
    if cls not in (LocalFileSystem, MemoryFileSystem):
        return None
    kind = "local" if cls is LocalFileSystem else "memory"
    return kind, ", ".join(sorted(_own_parameters(cls))) or "none of its own"


def _filesystem_takes(protocol: str) -> set[str]:
    """The options the filesystem of ``protocol`` takes by name (for the local and memory ones, which
    keep others unused, only those), and those every filesystem takes."""
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem
    from fsspec.registry import get_filesystem_class

    try:
        cls = get_filesystem_class(protocol)
    except (ValueError, ImportError):
        return set()
    own = _own_parameters(cls) if cls in (LocalFileSystem, MemoryFileSystem) else _init_parameters(cls)
    return own | _ANY_FILESYSTEM_OPTIONS


def _check_ignored_options(fs: Any, url: str, given: dict[str, Any]) -> None:
    """Refuse the storage options that the URL's filesystem ``fs`` would ignore, where it is fsspec's
    local or memory filesystem: they take unknown keyword arguments and keep them unused, so a
    misspelt option, credentials given for a ``file://`` target (``key=``, ``anon=``) or an option
    fsspec drops before it makes a filesystem (``mode=``) went unnoticed, and whoever gave them
    believed they applied. ``given``: the options given at the top level of a URL that is no chain
    (all of which are this filesystem's); for a chain, what reached ``fs`` is checked (its
    ``storage_options``, from the option named by its protocol). Other filesystems hand what they do
    not know to a client (s3fs: see :func:`_check_session_options`), so they are left to it."""
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    if type(fs) not in (LocalFileSystem, MemoryFileSystem):
        return
    own = _own_parameters(type(fs))
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    ignored = sorted(
        key
        for key in {*getattr(fs, "storage_options", {}), *given}
        if key not in own and key not in _ANY_FILESYSTEM_OPTIONS
    )
    if not ignored:
        return
    from fsspec.config import conf

    configured = [k for k in ignored if k not in given and any(k in conf.get(p, {}) for p in protocols)]
    where = (
        f" ({', '.join(configured)} from fsspec's configuration: an FSSPEC_{protocols[0].upper()}_... "
        "environment variable or a file in ~/.config/fsspec)"
        if configured
        else ""
    )
    kind = "local" if isinstance(fs, LocalFileSystem) else "memory"
    takes = ", ".join(sorted(own)) or "none of its own"
    raise ConfigurationError(
        f"the storage option{'s' * (len(ignored) > 1)} {', '.join(f'{k}=' for k in ignored)}{where} "
        f"would be ignored by fsspec's {kind} filesystem, which the backup URL {url!r} names (it takes "
        f"{takes}): leave {'them' if len(ignored) > 1 else 'it'} out; credentials and endpoints are "
        "for the storage of a URL such as s3://bucket/path"
    )


#: fsspec's caches, which a chained URL may put in front of the storage (``simplecache::s3://...``).
_CACHES = frozenset({"simplecache", "filecache", "blockcache"})


def cache_storage_options(url: str, storage_options: dict[str, Any], spare: str) -> dict[str, Any] | None:
    """``storage_options`` in which each cache of the chained URL ``url`` given no ``cache_storage`` (or
    fsspec's ``"TMP"``, a temporary directory) gets one under the directory ``spare``, which the caller
    removes once the filesystem is made (a backup reads and writes past the caches: see
    :func:`_unwrapped`), and no place in fsspec's instance cache (which would keep it, its directory
    gone); None where no cache needs one.

    Without it fsspec makes such a cache a temporary directory of its own (``tmpXXXXXXXX`` in TMPDIR),
    which fsspec before 2023.9.1 never removed: every backup, restore or listing through such a URL
    left one, empty, and a process's end removes it since only if it exits normally."""
    protocols = _protocols(url) if is_url_chain(url) else []
    out = dict(storage_options)
    for i, protocol in enumerate(protocols):
        layer = storage_options.get(protocol, {})
        if (
            protocol not in _CACHES
            or protocols.count(protocol) > 1  # (fsspec gives the options of that name to one of them)
            or not isinstance(layer, dict)
            or layer.get("cache_storage", "TMP") != "TMP"
            or (i == 0 and storage_options.get("cache_storage", "TMP") != "TMP")  # (the first takes these)
        ):
            continue
        out[protocol] = {**layer, "cache_storage": os.path.join(spare, protocol), "skip_instance_cache": True}
        if i == 0:
            out.pop("cache_storage", None)  # ("TMP" at the top level: the first filesystem's)
    return None if out == storage_options else out


def _protocols(url: str) -> list[str]:
    """The protocols that the chained URL ``url`` names, first to last (``zip``, ``file``)."""
    out = []
    for part in url.split("::"):
        m = _PROTOCOL_RE.match(part)
        if m is not None and (m.end() == len(part) or "://" in part):
            out.append(part[: m.end()].rstrip(":").lower())
    return out


def _is_archive(fs: Any) -> bool:
    """Whether ``fs`` is one of fsspec's archive filesystems (zip, tar, libarchive): read-only."""
    try:
        from fsspec.archive import AbstractArchiveFileSystem
    except ImportError:  # pragma: no cover - every supported fsspec has it
        return False
    return isinstance(fs, AbstractArchiveFileSystem) or (
        isinstance(fs, type) and issubclass(fs, AbstractArchiveFileSystem)
    )


def _archive_refusal(url: str, kind: str) -> str:
    return (
        f"the backup URL {url!r} is inside a {kind} archive, which fsspec reads only: a backup or a "
        "prune cannot write there; back up to a directory or a bucket (file:///path, s3://bucket/path) "
        "and archive that if you like (kvb backups and kvb restore read backups from an archive)"
    )


def _check_archive(url: str, storage_options: dict[str, Any], writes: bool) -> None:
    """Refuse a backup or prune (``writes``) through an archive (``zip::file:///x.zip``) before
    fsspec opens it, and any ``mode`` but ``r`` for one: fsspec's zip filesystem opened with
    ``mode="w"`` empties the archive at once, backups in it and all."""
    from fsspec.registry import get_filesystem_class

    for protocol in _protocols(url) if is_url_chain(url) or "://" in url else ():
        try:
            archive = _is_archive(get_filesystem_class(protocol))
        except (ValueError, ImportError):  # unknown, or its driver missing: fsspec says so next
            continue
        if not archive:
            continue
        if writes:
            raise ConfigurationError(_archive_refusal(url, protocol))
        options = storage_options.get(protocol)
        modes = [storage_options.get("mode")] if _protocols(url)[0] == protocol else []
        modes += [options.get("mode")] if isinstance(options, dict) else []
        for mode in modes:
            if mode not in (None, "r", "rb"):
                raise ConfigurationError(
                    f"the storage option mode={mode!r} would open the {protocol} archive of {url!r} for "
                    "writing, which replaces it (and the backups in it) with a new one; leave mode out: "
                    "backups are read from an archive, never written into one"
                )


def _check_chain(fs: Any, url: str) -> None:
    """Refuse a chained URL whose first filesystem wraps none (``memory::file:///x``, ``file::s3://b``):
    fsspec ignores what follows it, and ``kvb backup`` reported a backup complete in the memory of a
    process that then exited, or in a local directory, not where the URL went on to name."""
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    if "::" in url and isinstance(fs, (LocalFileSystem, MemoryFileSystem)):
        first, _, rest = url.partition("::")
        if isinstance(fs, LocalFileSystem) and not is_url_chain(rest) and "://" not in rest:
            # file:///a::b/bk, or a::b: a local directory with '::' in its name, which a URL cannot
            # name (fsspec splits it there), but a path can.
            scheme = _LOCAL_URL_RE.match(url)
            path = url[scheme.end() :] if scheme else url
            if not path.startswith(("/", "~", ".")):
                path = f"./{path}"
            raise ConfigurationError(
                f"the backup URL {url!r} names a directory with '::' in its name, where fsspec splits a "
                f"URL into a chain of filesystems; give the path itself: {path}"
            )
        raise ConfigurationError(
            f"the backup URL {url!r} chains {first!r} in front of {rest!r}, which fsspec ignores: "
            f"{first!r} wraps no other filesystem; write the URL of the storage alone ({rest})"
        )


def _unwrapped(fs: Any, root: str, url: str) -> tuple[Any, str]:
    """The filesystem that stores what ``fs`` writes at ``root``, past the caches (``simplecache::``,
    ``filecache::``, ``blockcache::``) and ``dir::``, and the path there: over ``file://`` they write
    local files, which must get what a ``file://`` backup gets (no permission the store withholds; no
    backup inside a store), over ``s3://`` objects, which must get what an ``s3://`` backup gets (no
    bucket created; no empty path segment; conditional manifests). A backup reads each object once:
    a cache saves it nothing."""
    from fsspec.implementations.cached import CachingFileSystem
    from fsspec.implementations.dirfs import DirFileSystem

    inner, path = fs, root
    while True:
        if isinstance(inner, CachingFileSystem):
            inner = inner.fs
        elif isinstance(inner, DirFileSystem):
            base = inner.path.rstrip("/")
            if base and path.rstrip("/") == base:
                # fsspec gives dir:: the URL's path both as its directory and as the path in it:
                # dir::file:///X wrote under /X/X (as fsspec.open does with that URL).
                doubled = f"{base}/{path.lstrip('/')}"
                raise ConfigurationError(
                    f"the backup URL {url!r} names its directory twice: fsspec roots its dir:: "
                    f"filesystem at {base} and takes {path} again for the path in it, so the backups "
                    f"would go to {doubled}; write {url.rpartition('::')[2]} (or {doubled} for backups "
                    "made through this URL before)"
                )
            path = posixpath.join(base, path.lstrip("/")) if base else path
            inner = inner.fs
        else:
            return inner, path
