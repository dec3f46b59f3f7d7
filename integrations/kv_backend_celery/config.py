"""The ``kvb://`` URL of the result backend, and the checks of the settings it reads.

A typo fails when the backend is built, with a message saying what to write
instead, rather than at the first result stored.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from celery.exceptions import ImproperlyConfigured

from kv_backend.db_common import MAX_FILE_SIZE, MIN_FILE_SIZE, auto_merge_threshold
from kv_backend.errors import ConfigurationError, ReadOnlyError

__all__ = ["OPTIONS", "SCHEME", "KVBackendConfigurationError", "parse_url", "read_only_error"]

SCHEME = "kvb"
#: Query options of a ``kvb://`` URL and the engine option each one sets.
OPTIONS = ("sync", "max_file_size", "auto_merge", "read_only")

#: A second URL in the path: "kvb:///a;kvb:///b", as Celery's broker_url lists failover brokers.
_SECOND_URL = re.compile(r"[;,]\s*[A-Za-z][A-Za-z0-9+.-]*://")

#: The ASCII control characters, which no URL holds as they are (RFC 3986).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NAMES = {"\t": "a tab", "\n": "a line feed", "\r": "a carriage return", "\0": "a NUL byte"}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class KVBackendConfigurationError(ImproperlyConfigured, ConfigurationError):
    """A ``kvb://`` result backend URL that cannot be used (Celery's ImproperlyConfigured)."""


def _bad(url: str, why: str) -> KVBackendConfigurationError:
    return KVBackendConfigurationError(
        f"invalid kv_backend result backend URL {url!r}: {why}. "
        "Expected kvb:///absolute/path[?sync=never|always|SECONDS&max_file_size=BYTES"
        "&auto_merge=FRACTION&read_only=0|1]"
    )


def read_only_error(url: str | None, what: str) -> ReadOnlyError:
    """The error for ``what`` (a write) through a backend whose URL has ``read_only=1``, naming the option."""
    return ReadOnlyError(
        f"{what}, but the result backend URL {url!r} opens the store read-only (read_only=1), which is "
        "for clients that only read results; use the URL without read_only=1 (or with read_only=0) here"
    )


def _seconds(
    setting: str,
    value: Any,
    expected: str = "a finite number of seconds >= 0 or a timedelta (None or 0 keeps results for ever)",
) -> float | None:
    """A lifetime setting as seconds (None: keep for ever), or ImproperlyConfigured naming the setting.

    Numeric strings (a value read from the environment) are accepted, as
    Celery's redis backend does; anything else would otherwise fail at every
    stored result, with an error that doesn't say which setting is wrong. A negative value
    kept results for ever, the opposite of any lifetime.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise KVBackendConfigurationError(f"{setting} must be {expected}, not {value!r}")
    return seconds


def chord_join_timeout(conf: Any) -> float | None:
    """``result_chord_join_timeout`` in seconds (None: no limit), or ImproperlyConfigured naming it.

    The part completing a chord joins the header with it and holds the chord's claim for twice
    as long; a numeric string there (a value read from the environment) failed every chord part
    in the step that stores its result with its count: the part's result was lost, and the chord
    never completed.
    """
    return _seconds(
        "result_chord_join_timeout",
        conf.get("result_chord_join_timeout"),
        "a finite number of seconds >= 0 (None waits for ever)",
    )


def _parse_sync(url: str, text: str) -> str | float:
    if text in ("never", "always"):
        return text
    try:
        seconds = float(text)
    except ValueError:
        raise _bad(url, f"sync must be 'never', 'always' or a number of seconds, not {text!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise _bad(url, f"sync must be a finite number of seconds >= 0, not {text!r}")
    return seconds


def _parse_size(url: str, text: str) -> int:
    t = text.strip().lower().removesuffix("b")
    factor = 1
    if t and t[-1] in _SIZE_SUFFIXES:
        factor, t = _SIZE_SUFFIXES[t[-1]], t[:-1]
    try:
        size = int(t) * factor
    except ValueError:
        raise _bad(url, f"max_file_size must be a byte count such as 67108864 or 64M, not {text!r}") from None
    if size < MIN_FILE_SIZE:
        raise _bad(url, f"max_file_size must be at least {MIN_FILE_SIZE} bytes, not {text!r}")
    if size >= MAX_FILE_SIZE:
        raise _bad(url, f"max_file_size must be below 1 TiB (at most 1023G), not {text!r}")
    return size


def _parse_fraction(url: str, text: str) -> float | None:
    """auto_merge's value: off (also any 0, none or empty), as 0 and None are for DB, or a fraction."""
    if text.lower() in ("", "none", "off"):
        return None
    why = (
        "auto_merge must be a fraction between 0 and 1 such as 0.5, or 'off' (also 0, none or empty) "
        f"to turn it off, not {text!r}"
    )
    try:
        return auto_merge_threshold(float(text))  # (the engine's rule: 0 is off, as None)
    except (ValueError, ConfigurationError):
        raise _bad(url, why) from None


def _parse_bool(url: str, name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _bad(url, f"{name} must be 1/0, true/false, yes/no or on/off, not {text!r}")


def _decodes(escapes: str) -> bool:
    """Whether a run of %-escapes ("%C3%A9") is UTF-8."""
    try:
        unquote(escapes, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split a ``kvb://`` URL into the store's absolute path and its :class:`kv_backend.DB` options.

    Raises :class:`KVBackendConfigurationError` (an ``ImproperlyConfigured``)
    for anything that is not an absolute path with known options, so a typo
    fails when the app starts rather than when the first result is written.
    """
    if not isinstance(url, str) or not url:
        raise KVBackendConfigurationError(
            f"the kv_backend result backend needs a URL such as kvb:///var/lib/proj/results, got {url!r}"
        )
    control = _CONTROL.search(url)
    if control:
        # urlsplit drops tabs, CRs and LFs anywhere in a URL ("kvb:///a<TAB>b" names /ab): a process
        # given the URL as meant would use another directory, and never see these results.
        char = control.group()
        raise _bad(
            url,
            f"the URL holds {_CONTROL_NAMES.get(char, 'a control character')} (U+{ord(char):04X}) at "
            f"character {control.start() + 1}, which a URL cannot hold (Python's URL parsing drops tabs "
            "and newlines, naming another directory): remove it, or write one that is part of the "
            "directory's name %-escaped (%09 for a tab)",
        )
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise _bad(url, f"the scheme must be {SCHEME}://, not {parts.scheme or 'missing'}")
    if parts.fragment:
        raise _bad(url, "a URL fragment (#...) has no meaning here")
    if parts.netloc.startswith("~") or unquote(parts.path).lstrip("/").startswith("~"):
        # Not expanded: workers and clients may run as different users, with different homes.
        written = parts.netloc + unquote(parts.path) if parts.netloc.startswith("~") else unquote(parts.path)
        home, _, rest = written.lstrip("/").partition("/")
        meant = os.path.normpath(os.path.join(os.path.expanduser(home), rest))
        if not os.path.isabs(meant):  # an unknown ~user
            meant = "/var/lib/proj/results"
        raise _bad(
            url,
            "'~' is not expanded (workers and clients may run as different users); "
            f"write the absolute directory instead, e.g. kvb://{meant}",
        )
    if parts.netloc.lower() not in ("", "localhost"):  # host names are case-insensitive
        raise _bad(
            url,
            f"the path must be absolute (three slashes: kvb:///{parts.netloc}{parts.path}); "
            f"{parts.netloc!r} would be a host name, and relative paths are refused because "
            "workers and clients may run in different directories",
        )
    if parts.path != parts.path.rstrip():
        # Most often left over from an environment variable or a settings file: a process given
        # the URL without it would use another directory, and never see these results.
        raise _bad(
            url,
            f"the path ends in a space ({parts.path!r}); remove it, or write a space that is part "
            "of the directory's name as %20",
        )
    if _SECOND_URL.search(parts.path):
        raise _bad(
            url,
            "the result backend takes one URL, not a list (Celery's broker_url lists failover brokers "
            "separated by ';', result_backend does not): give one store's URL",
        )
    if parts.path[-1:] in (",", ";") and not os.path.isdir(unquote(parts.path)):
        # Left over from a list or a line of settings: a process given the URL without it would use
        # another directory, and never see these results.
        raise _bad(
            url,
            f"the path ends with {parts.path[-1]!r} ({parts.path!r}); remove it, or write one that is "
            f"part of the directory's name as {'%2C' if parts.path[-1] == ',' else '%3B'}",
        )
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        # unquote's default replaces each with U+FFFD: the store would be made in a directory of that
        # name, not in the one whose name holds those bytes, and a process given that one never sees it.
        runs = [m.group(0) for m in re.finditer(r"(?:%[0-9A-Fa-f]{2})+", parts.path)]
        bad = [r for r in runs if not _decodes(r)]
        shown = f" ({bad[0]})" if bad else ""
        why = f"the path's %-escapes are not UTF-8{shown}: name a directory whose name is UTF-8"
        raise _bad(url, why) from None
    if "\0" in path:
        raise _bad(url, "the path holds a NUL byte (%00), which no file name can contain")
    if not path or not os.path.isabs(path):
        raise _bad(url, "the URL names no absolute directory")
    path = os.path.normpath(path)
    if path == "/":
        raise _bad(url, "the store needs a directory of its own, not the file system root")
    options: dict[str, Any] = {}
    if ";" in parts.query:
        # No option's value holds one: it is a separator meant as '&' (parse_qsl splits at '&' only,
        # so sync got "always;auto_merge=0.5" and said that was no sync mode).
        joined = "&".join(p.strip() for p in parts.query.split(";") if p.strip())
        meant = url.partition("?")[0] + (f"?{joined}" if joined else "")  # (a fragment is refused above)
        raise _bad(url, f"join the options with '&', not ';' ({meant})")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        why = f"cannot parse the query string {parts.query!r}: write each option as name=value, joined by &"
        raise _bad(url, why) from None
    for name, value in pairs:
        if name not in OPTIONS:
            raise _bad(url, f"unknown option {name!r} (known options: {', '.join(OPTIONS)})")
        if name in options:
            raise _bad(url, f"option {name!r} is given twice")
        if name == "sync":
            options[name] = _parse_sync(url, value)
        elif name == "max_file_size":
            options[name] = _parse_size(url, value)
        elif name == "auto_merge":
            options[name] = _parse_fraction(url, value)
        else:
            options[name] = _parse_bool(url, name, value)
    return path, options
