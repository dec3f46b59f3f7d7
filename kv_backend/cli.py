"""The ``kvb`` command line: inspect, change, merge, back up and serve a store."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from kv_backend.errors import ConfigurationError, KVError


def _value(text: str) -> bytes:
    """The bytes of a command-line argument as they were given (UTF-8 text, or any bytes: Python
    decodes argv with surrogateescape, so a key from ``kvb keys -0 | xargs -0`` comes back exact)."""
    return os.fsencode(text)


def _port(text: str, lowest: int = 0, instead: str = "") -> int:
    """An argparse type: a TCP port number, 0 to 65535 (0 picks a free one); from ``lowest`` on, a
    number out of range refused with ``instead`` (what to do) after the range."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from {lowest} to 65535, not {text!r}") from None
    if not lowest <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a number from {lowest} to 65535, not {port}{instead}")
    return port


def _tls_port(text: str) -> int:
    """An argparse type: a TLS port number, 1 to 65535 (as redis-server's tls-port, 0 would be none)."""
    return _port(text, 1, " (leave it out for no TLS)")


def _directory(text: str) -> str:
    """An argparse type: a store's directory. An empty one (``kvb put "$UNSET" ...``) would mean the
    current directory, and a store made there, so that one must be asked for by name (``.``)."""
    if not text:
        raise argparse.ArgumentTypeError("is empty; give a directory ('.' for the current one)")
    if not os.path.isabs(text):
        try:
            os.getcwd()
        except OSError as exc:  # a relative path is relative to it
            raise argparse.ArgumentTypeError(
                f"{text!r} is relative to the current directory, which cannot be used ({exc.strerror}: "
                "removed?); give an absolute path"
            ) from None
    return text


def _host(text: str) -> str:
    """An argparse type: an address to listen on. An empty one (``--host "$UNSET"``) would listen on
    every interface, the opposite of the loopback default, so it must be asked for by name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give an address (0.0.0.0 or :: for every interface)")
    return text


def _secret_file(text: str) -> str:
    """An argparse type: the secret held in the file at ``text`` (line breaks at its end removed), read now.

    A secret given on the command line is visible to every user of the machine in ``ps``; one in a
    file that only its owner can read is not. An empty file is refused: it would mean no password.
    """
    try:
        with open(text, "rb") as f:
            data = f.read(1 << 20)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror or exc}") from None
    secret = data.rstrip(b"\r\n")
    if not secret:
        raise argparse.ArgumentTypeError(f"{text} is empty; write the secret in it")
    return os.fsdecode(secret)


def _seconds_above_zero(text: str) -> float:
    """An argparse type: a finite number of seconds greater than 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):  # (NaN too)
        raise argparse.ArgumentTypeError(f"must be a number of seconds greater than 0, not {text!r}")
    return seconds


def _at_least_one(text: str, what: str) -> int:
    """``text`` as a whole number of ``what`` >= 1, or argparse's error saying so."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a {what} >= 1, not {text!r}")
    return count


def _processes(text: str) -> int:
    """An argparse type: a whole number of processes >= 1 (the rule of ``$KVB_HTTP_WORKERS`` too)."""
    from kv_backend.server import worker_count

    try:
        return worker_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _given(what: str, instead: str) -> Callable[[str], str]:
    """An argparse type that refuses an empty argument (``--requirepass "$UNSET"``), which would
    silently mean ``instead`` (no password, no unix socket): ``what`` is what to give."""

    def check(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"is empty; give {what}, or leave the option out for {instead}")
        return text

    return check


def _count(text: str) -> int:
    """An argparse type: a whole number >= 0 (``--limit -1`` would otherwise list nothing, silently)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {count}")
    return count


def _bytes_above_zero(text: str) -> int:
    """An argparse type: a number of bytes >= 1 (0 would refuse every request body).

    Parsed here rather than through ``_count``, whose message ("a whole number >= 0") would name 0
    as a value this option takes.
    """
    return _at_least_one(text, "number of bytes")


def _keep(text: str) -> int:
    """An argparse type: how many of the newest backups ``kvb backups --keep`` keeps, at least 1.

    ``--keep 0`` (``--keep "$((KEEP))"`` with KEEP unset) would delete every backup, the one thing
    a retention setting must not do by mistake; the API's ``prune_backups(url, keep=0)`` still does.
    """
    try:
        keep = int(text)
    except ValueError:
        keep = 0
    if keep < 1:
        raise argparse.ArgumentTypeError(
            f"must be a whole number >= 1 (how many of the newest backups to keep), not {text!r}; "
            "--keep 0 would delete every backup"
        )
    return keep


#: Largest ``--ttl`` in seconds, the same as ``kvb http``'s ``?ttl=`` (kv_backend.http.app.MAX_TTL, not
#: imported: that module needs the http extra): every TTL one accepts, the other and Redis accept too.
_MAX_TTL = 9 * 10**15


def _ttl(text: str) -> float:
    """An argparse type: seconds to live, a number > 0 (fractions allowed) and at most :data:`_MAX_TTL`.

    The engine's ``ttl=0`` (or less) deletes the key; on the command line that would make ``--ttl 0``
    (a default gone wrong, ``--ttl "$((T - ELAPSED))"``) delete the key and exit 0, so it is refused,
    as Redis refuses ``SET k v EX 0`` and ``kvb http`` ``?ttl=0``; ``kvb delete`` deletes.
    """
    try:
        ttl = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds greater than 0, not {text!r}"
        ) from None
    if not (0 < ttl <= _MAX_TTL):  # (NaN too)
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds greater than 0 and at most {_MAX_TTL}, not {text!r} "
            "(leave --ttl out for a key that never expires; kvb delete removes a key)"
        )
    return ttl


def _existing_store(path: str) -> None:
    """Refuse a path that holds no store yet, for commands that must not create one (a typo
    would otherwise leave a new empty store behind and report on that)."""
    from kv_backend.files import prepare_directory

    prepare_directory(os.path.abspath(path), create=False)


#: What makes a key's text no plain text, printed as a bytes literal instead: a control character,
#: C0, DEL or C1 (U+0080 to U+009F: NEL, and CSI, which a terminal may take as the start of an escape
#: sequence), or the line and paragraph separators, which end a line for Unicode-aware readers.
_NOT_PLAIN_KEY = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: The same for a value, which may span lines: tab, newline and carriage return are text there.
_NOT_PLAIN_VALUE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _key_repr(arg: str) -> str:
    """A key argument quoted for a message: ``'text'``, or the bytes literal of a key that is not
    UTF-8 (``b'k\\xff'``, as ``kvb keys`` prints it, rather than the surrogate ``'k\\udcff'``)."""
    data = _value(arg)
    try:
        return repr(data.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(data)


#: The commands that open a store only to read it (what an operator can still run where kvb may not write).
_READERS = "get, keys, stats, check and backup"


def _error_line(exc: KVError, command: str) -> str:
    """What ``kvb COMMAND`` says of ``exc``: its message, without the ``[Errno N]`` and file name that
    an OSError's text adds around it, and with advice an operator can act on where the engine's is
    for a program (``open it with read_only=True``, which no command takes)."""
    if not isinstance(exc, OSError) or not exc.strerror:
        return str(exc)
    text = exc.strerror
    advice = getattr(exc, "advice", "")
    if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS) or not text.endswith(advice):
        return text
    text = text[: len(text) - len(advice)].rstrip()
    left = _left_by_root(exc)
    if left:
        return f"{text} {left}"
    if exc.errno == errno.EROFS:
        return (
            f"{text} The filesystem is mounted read-only: kvb {command} cannot write there "
            f"({_READERS} can: they only read)."
        )
    # (salvage too: the store it is given is only read; it makes the new one itself, and says why not.)
    if command in ("get", "keys", "stats", "check", "backup", "salvage"):
        return f"{text} User {_user()} may not read it: run kvb as a user who may (the store's owner)."
    return (
        f"{text} kvb {command} writes to the store, and user {_user()} may not write there: run kvb as a "
        f"user who may (the store's owner), or give this one write access; {_READERS} only read."
    )


def _left_by_root(exc: OSError) -> str:
    """Advice for a file refused to this user (not root) that is root's in a store of another user:
    a command root ran with an earlier kv_backend left it so, and "run kvb as the store's owner",
    who may be this very user, would not help. Empty for any other error."""
    from kv_backend.files import FORMAT_FILE, user_name
    from kv_backend.owners import roots_files

    name = exc.filename
    if exc.errno not in (errno.EACCES, errno.EPERM) or not isinstance(name, str) or os.geteuid() == 0:
        return ""
    directory = os.path.dirname(name)
    if os.path.basename(name) not in roots_files(directory):
        return ""
    uid = os.stat(os.path.join(directory, FORMAT_FILE)).st_uid  # (roots_files looked at it just now)
    owner = user_name(uid) or str(uid)
    return (
        f"The file is root's, in a store of user {owner}: a command root ran with an earlier kv_backend "
        f"left it so. Have root open the store for writing once (sudo kvb merge {directory}), which gives "
        f"root's files in it back to {owner}, or change its owner (sudo chown {owner} {name})."
    )


def _user() -> str:
    """The name of the user kvb runs as (its uid if it has none)."""
    from kv_backend.files import user_name

    return user_name() or str(os.geteuid())


def _say(line: str) -> None:
    """Write ``line`` on standard error; nothing if it is closed (``2>&-``), where print(file=None)
    would put it on standard output, in the middle of the command's output."""
    if sys.stderr is None:
        return
    try:
        print(line, file=sys.stderr)
    except OSError:
        # Nobody reads it (a pipe whose reader is gone) or it cannot be written: the line is lost,
        # but the exit status still says what happened (not a traceback and status 1, or 141 for a
        # missing key). Standard error then points at /dev/null, so the flush at exit cannot fail too.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stderr.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # (a stream with no file descriptor: io.UnsupportedOperation)
            pass


class _OutputError(KVError):
    """Standard output cannot be written (a full disk, an I/O error): the command's output is lost."""


def _print(line: object) -> None:
    """Write ``line`` and a newline on standard output, or raise _OutputError (not a bare OSError
    traceback) if it cannot be written. A closed stdout (None) takes nothing, as with print()."""
    if sys.stdout is None:
        return
    try:
        print(line)
    except BrokenPipeError:
        raise  # the reader went away: main() stops quietly
    except OSError as exc:
        raise _OutputError(f"cannot write to standard output: {exc.strerror or exc}") from exc


def _write_bytes(data: bytes) -> None:
    """Write ``data`` exactly as given on standard output (a caller that wrote text before flushes it
    first, see cmd_get); see _print."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.buffer.write(data)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _OutputError(f"cannot write to standard output: {exc.strerror or exc}") from exc


def _read_stdin() -> bytes:
    """All the bytes of standard input, or a KVError (not a traceback) if there is none to read."""
    if sys.stdin is None:
        raise KVError("standard input is closed: give the value on it (kvb put PATH KEY --stdin < FILE)")
    from kv_backend import record as rec

    try:
        # At most one byte more than a value may hold: enough to refuse a larger one, and
        # `kvb put DIR k --stdin < /dev/zero` (or `yes |`) is refused instead of filling memory.
        return sys.stdin.buffer.read(rec.MAX_VALUE_SIZE + 1)
    except OSError as exc:
        raise KVError(f"cannot read standard input: {exc.strerror or exc}") from exc


def _flush_output() -> None:
    """Push what is buffered for standard output now, so a failure is reported (see _print) instead
    of surfacing in the interpreter's flush at exit."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _OutputError(f"cannot write to standard output: {exc.strerror or exc}") from exc


def _show(data: bytes, not_plain: re.Pattern[str] = _NOT_PLAIN_KEY) -> str:
    """``data`` as text if it is UTF-8 without a character ``not_plain`` matches (control characters),
    else its Python bytes literal (``b'\\xff'``), so that one key is always one line. A text that
    starts as a bytes literal does (``b'\\xff'`` typed as a key) is printed as a literal too: else it
    would print as the literal of other bytes, and a line that starts with ``b'`` or ``b"`` would not
    always be one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return repr(data) if not_plain.search(text) or text.startswith(("b'", 'b"')) else text


def _print_json(value: object) -> None:
    """Print ``value`` as one JSON document (the ``--json`` output of a command, for scripts)."""
    from kv_backend.files import valid_unicode

    _print(json.dumps(valid_unicode(value), indent=2, sort_keys=True))


def cmd_stats(args: argparse.Namespace) -> int:
    from kv_backend import DB

    with DB(args.path, read_only=True) as db:
        stats = db.stats()
    if args.json:
        _print_json(stats)
    else:
        width = max(map(len, stats))
        for k, v in stats.items():
            _print(f"{k:<{width}}  {v}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from kv_backend.check import check
    from kv_backend.files import FORMAT_FILE

    report = check(args.path)
    if args.json:
        _print_json(
            {
                "path": os.path.abspath(args.path),
                "ok": report.ok,
                "files": report.files,
                "records": report.records,
                "bytes": report.bytes,
                "reserved": report.reserved,
                "damaged": len(report.problems),
                "problems": [
                    {"file": os.path.basename(p.path), "offset": p.offset, "what": p.what}
                    | ({} if p.key is None else {"key": repr(p.key)})
                    for p in report.problems
                ],
                "notes": report.notes,
            }
        )
        return 0 if report.ok else 1
    reserved = ""
    if report.reserved:  # (fallocated space the next writes fill: read, but no data)
        reserved = f", plus {report.reserved} reserved after the active file's end (zeros)"
    _print(f"{report.files} files, {report.records} records, {report.bytes} bytes checked{reserved}")
    for note in report.notes:
        _print(f"note: {note}")
    for problem in report.problems:
        _print(f"DAMAGED: {problem}")
    if report.ok:
        _print("ok: no damaged records")
        return 0
    # (The format file's problem says how to repair it, and a hint entry's to remove its hint file, the
    # data being sound: restoring keys is the advice for damaged records.)
    data = [p for p in report.problems if os.path.basename(p.path) != FORMAT_FILE and not p.hint]
    what = "; restore the affected keys from a backup" if data else ""
    _print(f"{len(report.problems)} damaged spot(s){what}")
    return 1


def cmd_salvage(args: argparse.Namespace) -> int:
    from kv_backend.progress import progress_bar
    from kv_backend.salvage import salvage

    with progress_bar("salvaging", unit="B") as bar:
        report = salvage(args.src, args.dst, progress=bar)
    _print(report)
    return 0 if report.clean else 1


def cmd_get(args: argparse.Namespace) -> int:
    from kv_backend import DB

    with DB(args.path, read_only=True) as db:
        value = db.get(_value(args.key))
    if value is None:
        _say(f"kvb: no key {_key_repr(args.key)}")
        return 1
    if args.raw:
        _flush_output()
        _write_bytes(value)
    else:
        _print(_show(value, _NOT_PLAIN_VALUE))
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    from kv_backend import DB

    if (args.value is None) == (not args.stdin):
        args.usage_error("give either VALUE or --stdin")  # the usage, then the line, exit 2
    from kv_backend.db_common import _check_key, _check_value

    value = _read_stdin() if args.stdin else _value(args.value)
    # Refused before the store is opened: put creates one, which a refused put must not leave behind.
    key = _check_key(_value(args.key))
    _check_value(value)
    with DB(args.path) as db:
        db.put(key, value, ttl=args.ttl)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from kv_backend import DB

    _existing_store(args.path)
    with DB(args.path) as db:
        existed = db.delete(_value(args.key))
    if not existed:
        _say(f"kvb: no key {_key_repr(args.key)}")
        return 1
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from kv_backend import DB

    with DB(args.path, read_only=True) as db:
        for i, key in enumerate(db.keys(prefix=_value(args.prefix), reverse=args.reverse)):
            if args.limit is not None and i >= args.limit:
                break
            if args.null:
                _write_bytes(key + b"\0")
            else:
                _print(_show(key))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from kv_backend import DB
    from kv_backend.errors import MergeInProgressError
    from kv_backend.progress import progress_bar

    _existing_store(args.path)
    with DB(args.path) as db, progress_bar("merging", unit="B") as bar:
        try:
            report = db.merge(progress=bar, wait=args.wait)
        except MergeInProgressError:  # its message names the API's merge(wait=True)
            raise KVError(
                f"another process is merging {db.path} right now; run kvb merge again when it is done, "
                "or with --wait to wait for it and then merge"
            ) from None
    _print(report)
    if report.corrupt_kept:
        # The merge lost nothing, but the damage it found is still there: as kvb check and kvb salvage,
        # an exit status a cron job notices.
        _say(
            f"kvb: {report.corrupt_kept} damaged record(s) were kept as they are: reading their keys "
            f"raises CorruptionError until each is written or deleted again. `kvb check {args.path}` "
            f"lists them; restore their keys from a backup, or copy the readable keys into a new store "
            f"with `kvb salvage {args.path} NEW_PATH`"
        )
        return 1
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from kv_backend.backup import backup, backup_store, in_process_url, parse_storage_options
    from kv_backend.backup_damage import HINT_FIX, damaged_text
    from kv_backend.files import prepare_directory, store_directory
    from kv_backend.progress import progress_bar

    if in_process_url(args.url):
        # fsspec's memory filesystem lives in this process: the backup would be gone when kvb exits.
        _say(
            f"kvb: {args.url} is in the memory of this kvb process, which is gone when it exits; "
            "give a URL that outlives it (a directory, file://, s3://...)"
        )
        return 2
    # Without opening the store (no replay of its log): a mistyped path is an error (before the progress
    # bar shows), not a new empty store that is then backed up.
    prepare_directory(store_directory(args.path), create=False)
    # (the options backup() refuses too, so that a command line means the same for either)
    options = parse_storage_options(args.storage_option, backup_store, backup)
    with progress_bar("backing up", unit="B") as bar:
        report = backup_store(args.path, args.url, name=args.name, progress=bar, **options)
    # Found by the backup in the records of every data file it holds (as a restore checks them).
    _print(report)
    if not report.restorable:
        # The copy is exact, damage included, and a restore checks every record: say so now, not
        # on the day the backup is needed.
        _say(
            f"kvb: the store holds {damaged_text(report)}, and so does this backup, which kvb restore "
            f"refuses; kvb check {args.path} lists them, and kvb salvage copies the readable keys into "
            "a new store to back up instead"
        )
        return 1
    if report.damaged_hint_entries:
        # A restore accepts it (the data files are sound): exit 0, but the store needs fixing.
        _say(
            f"kvb: the store holds {damaged_text(report)}, and so does this backup, which kvb restore "
            "restores all the same (it leaves those hint files out, and replays their data files, which "
            f"are sound); kvb check {args.path} lists them: {HINT_FIX}"
        )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from kv_backend.backup import parse_storage_options, restore
    from kv_backend.progress import progress_bar

    with progress_bar("restoring", unit="B") as bar:
        report = restore(
            args.url,
            args.path,
            name=args.name,
            progress=bar,
            **parse_storage_options(args.storage_option, restore),
        )
    _print(report)
    return 0


def cmd_backups(args: argparse.Namespace) -> int:
    from kv_backend.backup import (
        absent_url_hint,
        list_backups,
        misplaced_url_hint,
        parse_storage_options,
        prune_backups,
        verify_backups,
    )

    if args.name is not None and not args.verify:
        args.usage_error("--name goes with --verify (which backup to verify; kvb backups lists them all)")
    options = parse_storage_options(args.storage_option, prune_backups, verify_backups)
    removed = []
    if args.keep is not None:
        removed = prune_backups(args.url, keep=args.keep, **options)
        if not args.json:
            for name in removed:
                _print(f"removed {name}")
    if args.verify:
        return _verify_backups(args, options, removed)
    infos = list_backups(args.url, **options)
    if args.json:
        _print_json({"url": args.url, "removed": removed, "backups": [_backup_json(i) for i in infos]})
    else:
        for info in infos:
            _print(info)
    if not infos and args.keep is not None:
        absent = absent_url_hint(args.url, **options)
        if absent:
            # A prune of a volume not mounted (or a mistyped URL) pruned nothing: an exit status a cron
            # job notices, where a listing of it only reports what is there.
            _say(f"kvb: no backups at {args.url}{absent}")
            return 2
    if not infos:  # said on stderr, so a script reading the list still gets an empty one
        _say(f"kvb: no backups at {args.url}{misplaced_url_hint(args.url, **options)}")
    damaged = [info.name for info in infos if not info.ok]
    if damaged:
        # As kvb check: an exit status a cron job notices, for a manifest that blocks prune's object
        # collection (storage grows) and may stop a restore that names no backup.
        _say_damaged_manifests(args.url, damaged)
        return 1
    return 0


def _say_damaged_manifests(url: str, names: list[str]) -> None:
    """Say on stderr which backup manifests at ``url`` are damaged, and what that blocks: one line, a
    name that is not printable (``old\\n``, which an earlier version stored) given as the listing gives it."""
    shown = ", ".join(name if name.isprintable() else repr(name) for name in names)
    _say(
        f"kvb: {len(names)} damaged backup manifest(s) at {url}: {shown}; repair or "
        "delete them: while one is there, kvb backups --keep removes no objects, and kvb restore "
        "without --name may refuse to choose"
    )


def _verify_backups(args: argparse.Namespace, options: dict[str, Any], removed: list[str]) -> int:
    """``kvb backups URL --verify``: read every object of the backups (or of ``--name``) once, and
    say which backups are sound; exit 1 where damage was found."""
    from kv_backend.backup import absent_url_hint, misplaced_url_hint, verify_backups
    from kv_backend.progress import progress_bar

    if args.name is None:
        # A verify of a volume not mounted (or of a mistyped URL) checked nothing: an exit status a
        # cron job notices, as for a prune there.
        absent = absent_url_hint(args.url, **options)
        if absent:
            _say(f"kvb: no backups at {args.url}{absent}")
            return 2
    with progress_bar("verifying", unit="B") as bar:
        report = verify_backups(args.url, args.name, progress=bar, **options)
    if args.json:
        _print_json(
            {
                "url": args.url,
                "removed": removed,
                "ok": report.ok,
                "objects": report.objects,
                "bytes": report.bytes,
                "seconds": round(report.seconds, 3),
                "backups": [
                    _backup_json(b.info)
                    | {
                        "ok": b.ok,
                        "status": b.status,
                        "damaged_objects": [d.stored_as for d in b.damaged],
                        "damaged_records": [
                            {"file": d.file, "records": d.records, "hint_entries": d.hint_entries}
                            for d in b.damaged_records
                        ],
                        "advice": b.advice,
                    }
                    for b in report.backups
                ],
                "damaged_objects": [
                    {
                        "object": d.stored_as,
                        "url": d.where,
                        "file": d.file,
                        "problem": d.problem,
                        "expected_size": d.size,
                        "size": d.found_size,
                        "backups": d.backups,
                        "advice": d.advice,
                    }
                    for d in report.damaged_objects
                ],
            }
        )
    else:
        for b in report.backups:
            _print(b)
        if report.backups:
            _print(report)
    if not report.backups:
        _say(f"kvb: no backups at {args.url}{misplaced_url_hint(args.url, **options)}")
    for d in report.damaged_objects:
        _say(f"kvb: {d}")
    for b in report.backups:
        if b.advice is not None:
            damage = ", ".join(map(str, b.damaged_records))
            _say(f"kvb: backup {b.name} cannot be restored as is ({damage}): {b.advice}")
    manifests = [b.name for b in report.backups if b.error is not None]
    if manifests:
        _say_damaged_manifests(args.url, manifests)
    return 0 if report.ok else 1


def _backup_json(info: Any) -> dict[str, object]:
    """One backup of ``kvb backups --json`` (a :class:`kv_backend.backup.BackupInfo`)."""
    created = info.created if info.ok else None
    return {
        "name": info.name,
        "ok": info.ok,
        "error": info.error,
        "created": created,
        "created_utc": None if created is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "files": info.files if info.ok else None,
        "bytes": info.bytes if info.ok else None,
        "source": info.source if info.ok else None,
        "store_id": info.store_id,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    from kv_backend.server.resp import serve

    requirepass = args.requirepass if args.requirepass is not None else args.requirepass_file
    if requirepass is None:
        requirepass = os.environ.get("KVB_REQUIREPASS") or None
    tls = _tls_settings(args)
    context = None
    if tls is not None:
        from kv_backend.server.tls import configure

        try:  # (a file that cannot be loaded is the command line's mistake: refused before the store opens)
            context = configure(tls)
        except ConfigurationError as exc:
            args.usage_error(str(exc))
    return serve(
        args.dir,
        host=args.host,
        port=args.port,
        requirepass=requirepass,
        unixsocket=args.unixsocket,
        protected_mode=args.protected_mode == "yes",
        tls=tls,
        loglevel=args.loglevel,
        tls_context=context,
        appendfsync=args.appendfsync,
    )


#: The ``kvb serve`` options that only a TLS port uses (argparse's dest, the option).
_TLS_ONLY = (
    ("tls_cert_file", "--tls-cert-file"),
    ("tls_key_file", "--tls-key-file"),
    ("tls_key_file_pass", "--tls-key-file-pass"),
    ("tls_key_file_pass_file", "--tls-key-file-pass-file"),
    ("tls_ca_cert_file", "--tls-ca-cert-file"),
    ("tls_ca_cert_dir", "--tls-ca-cert-dir"),
    ("tls_auth_clients", "--tls-auth-clients"),
    ("tls_protocols", "--tls-protocols"),
    ("tls_ciphers", "--tls-ciphers"),
    ("tls_prefer_server_ciphers", "--tls-prefer-server-ciphers"),
    ("tls_handshake_timeout", "--tls-handshake-timeout"),
)


def _tls_settings(args: argparse.Namespace) -> Any:
    """The TLS port's settings ``kvb serve``'s options give (None without --tls-port); a usage error
    (exit 2) for options that do not go together."""
    from kv_backend.server.tls import HANDSHAKE_TIMEOUT, TLSSettings, protocol_versions

    fail = args.usage_error
    if args.tls_port is None:
        given = [option for dest, option in _TLS_ONLY if getattr(args, dest) is not None]
        if given:
            fail(f"{given[0]} is for a TLS port: give --tls-port too (and --port 0 to serve TLS only)")
        return None
    if args.tls_cert_file is None or args.tls_key_file is None:
        missing = "--tls-cert-file" if args.tls_cert_file is None else "--tls-key-file"
        fail(
            "--tls-port needs --tls-cert-file and --tls-key-file (the server's certificate and its key): "
            f"give {missing}"
        )
    if args.tls_port == args.port:
        fail(f"--tls-port and --port are both {args.port}: give them different ports (--port 0: TLS only)")
    if args.tls_protocols is not None:
        try:
            protocol_versions(args.tls_protocols)
        except ConfigurationError as exc:
            fail(str(exc))
    password = args.tls_key_file_pass if args.tls_key_file_pass is not None else args.tls_key_file_pass_file
    timeout = args.tls_handshake_timeout
    return TLSSettings(
        port=args.tls_port,
        cert_file=args.tls_cert_file,
        key_file=args.tls_key_file,
        key_file_pass=password,
        ca_cert_file=args.tls_ca_cert_file,
        ca_cert_dir=args.tls_ca_cert_dir,
        auth_clients=args.tls_auth_clients,
        protocols=args.tls_protocols,
        ciphers=args.tls_ciphers,
        prefer_server_ciphers=args.tls_prefer_server_ciphers == "yes",
        handshake_timeout=HANDSHAKE_TIMEOUT if timeout is None else timeout,
    )


#: What ``kvb http`` needs beyond the engine, all in the ``server`` extra.
_HTTP_PACKAGES = ("starlette", "uvicorn")


class _Stopped(BaseException):
    """SIGTERM asked ``kvb http`` to stop (raised by :func:`cmd_http`'s handler)."""


def cmd_http(args: argparse.Namespace) -> int:
    try:
        from kv_backend.http import serve
        from kv_backend.http.server import CLOSE_NOT_FINISHED_STATUS, StoreNotClosedError
    except ModuleNotFoundError as exc:
        if exc.name not in _HTTP_PACKAGES:
            raise
        raise ConfigurationError(str(exc)) from None  # one line naming the extra, not a traceback

    def stop(signum: int, frame: object) -> None:
        # Runs before uvicorn takes SIGTERM over, and when uvicorn, having shut down because of it,
        # raises it again: without it, that second SIGTERM killed the process (status 143).
        raise _Stopped

    def hangup(signum: int, frame: object) -> None:
        # As kvb serve (and redis-server): a closed terminal does not stop the server; by default
        # SIGHUP killed it, without closing (nor fsyncing) the store.
        # (With --workers 2 or more, the main process reloads the workers on SIGHUP instead.)
        _say(
            "kvb http: SIGHUP ignored: stop kvb http with SIGTERM or SIGINT (SIGHUP reloads "
            "kvb http --workers 2 or more)"
        )

    from kv_backend.http.tls import server_context

    def load_tls() -> Any:  # (again at each SIGHUP to kvb http --workers: the same password)
        return server_context(
            args.ssl_certfile,
            args.ssl_keyfile,
            args.ssl_keyfile_password_file,
            args.ssl_ca_certs,
            args.ssl_cert_reqs,
        )

    try:  # loaded now: a file that cannot serve TLS is a usage error, before anything listens
        ssl_context = load_tls()
    except ConfigurationError as exc:
        args.usage_error(str(exc))

    trap = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if trap else None
    previous_hup = signal.signal(signal.SIGHUP, hangup) if trap and hasattr(signal, "SIGHUP") else None
    try:
        token = args.token if args.token is not None else args.token_file
        serve(
            args.dir,
            host=args.host,
            port=args.port,
            token=token,
            keep_alive=args.keep_alive,
            header_timeout=args.header_timeout,
            lock_timeout=args.lock_timeout,
            max_pending_bytes=args.max_pending_bytes,
            ssl_context=ssl_context,
            log_level=args.log_level,
            access_log=args.access_log,
            workers=args.workers,
            load_ssl_context=None if ssl_context is None else load_tls,
            reload_timeout=args.reload_timeout,
        )
    except ModuleNotFoundError as exc:
        if exc.name not in _HTTP_PACKAGES:
            raise
        raise ConfigurationError(str(exc)) from None
    except StoreNotClosedError as exc:
        # Out at once, the line said: the close goes on in a thread that nothing can stop, and a thread
        # it waits for (a write inside the engine) would keep the interpreter's own exit waiting too.
        _say(f"kvb: {exc}")
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(CLOSE_NOT_FINISHED_STATUS)
    except (_Stopped, KeyboardInterrupt):
        # A shutdown asked for: exit status 0, as kvb serve (and redis-server) after SIGTERM or SIGINT
        # (uvicorn raises SIGINT again once it has shut down, which would be status 130).
        pass
    finally:
        if trap:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            if hasattr(signal, "SIGHUP"):
                signal.signal(signal.SIGHUP, signal.SIG_DFL if previous_hup is None else previous_hup)
    return 0


#: Marks an argument given after ``--`` that starts with ``-``, for argparse to take as a positional
#: argument; a NUL byte, which no command-line argument can hold, so nothing else is ever read as one.
_ESCAPED = "\0"


#: Said after a usage error an argument that starts with ``-`` may have caused.
_DASH_HINT = (
    "(a key or value that starts with '-' goes after '--', which ends the options: kvb put PATH -- KEY VALUE)"
)


def _unknown_dash(parser: argparse.ArgumentParser, given: Sequence[str]) -> bool:
    """Whether ``given`` holds an argument before any ``--`` that starts with ``-`` and is no option
    of ``parser`` (nor a negative number, which argparse takes as an argument)."""
    for arg in given:
        if arg == "--":
            return False
        if (
            arg.startswith("-")
            and arg.partition("=")[0] not in parser._option_string_actions
            and not re.fullmatch(r"-\d+|-\d*\.\d+", arg)
        ):
            return True
    return False


class _Parser(argparse.ArgumentParser):
    """``kvb``'s parser: every argument after the first ``--`` is a positional argument, as given.

    argparse itself drops a later ``--`` (before Python 3.12 every one, so ``kvb put DIR k -- --``
    stored no value; from 3.12 it keeps some) and reads one after a positional argument that is
    optional as nothing. So the arguments after ``--`` that start with ``-`` are marked (see
    :data:`_ESCAPED`), the ``--`` removed, and the marks taken off what was parsed.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        given = list(sys.argv[1:] if args is None else args)
        if "--" in given:
            end = given.index("--")
            given[end:] = [_ESCAPED + a if a.startswith("-") else a for a in given[end + 1 :]]
        parsed, extra = super().parse_known_args(given, namespace)
        for name, value in vars(parsed).items():
            if isinstance(value, str) and value.startswith(_ESCAPED):
                setattr(parsed, name, value[len(_ESCAPED) :])
        # (Those given after the "--" are marked: they are no option anyone took for one.)
        self._unknown_options = [a for a in extra if a.startswith("-")]
        return parsed, [a.removeprefix(_ESCAPED) for a in extra]

    _unknown_options: Sequence[str] = ()

    def error(self, message: str) -> NoReturn:
        """Say it as argparse does, and how to give a key or value that an unknown option may be."""
        if message.startswith("unrecognized arguments: ") and self._unknown_options:
            message = f"{message} {_DASH_HINT}"
        super().error(message)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: its options may also come between its positional arguments
    (``kvb put DIR KEY --ttl 60 VALUE``), not only before or after them all."""

    _parsing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:  # parse_known_intermixed_args calls this method for each of its passes
            return super().parse_known_args(args, namespace)
        self._given = list(args or ())
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False

    _given: Sequence[str] = ()

    def error(self, message: str) -> NoReturn:
        """Say it as argparse does; where an argument that starts with ``-`` was taken for an unknown
        option (and a KEY is then missing), also how to give it; and where an option's value that
        starts with ``-`` was taken for an option (a command with an option such as ``-0`` makes
        argparse read ``-5`` as one), how to give that."""
        if message.startswith("the following arguments are required") and _unknown_dash(self, self._given):
            message = f"{message} {_DASH_HINT}"
        else:
            value = _dashed_value(message, self._given)
            if value is not None:
                message = f"{message} (join a value that starts with '-' to its option: {value})"
        super().error(message)


def _dashed_value(message: str, given: Sequence[str]) -> str | None:
    """``OPTION=VALUE`` where argparse's ``message`` says that OPTION, followed in ``given`` by a VALUE
    that starts with ``-`` (before any ``--``), expected one argument; else None."""
    found = re.fullmatch(r"argument (\S+): expected one argument", message)
    if found is None:
        return None
    options = found.group(1).split("/")
    for i, arg in enumerate(given[:-1]):
        if arg == "--":
            return None
        following = given[i + 1]
        if arg in options and following.startswith("-") and following != "--":
            return f"{arg}={following}"
    return None


_PATH_HELP = "the store's directory"
_RESTORE_PATH_HELP = "the directory to restore into: new or empty"
_KEY_HELP = "the key, the argument's bytes (write -- before one that starts with -)"
_URL_HELP = "the backup URL: a directory, file://, s3://BUCKET/path... (any fsspec URL)"
_HOST_HELP = "address to listen on (default: 127.0.0.1, local clients only)"


def _add_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="fsspec storage option, repeatable; VALUE is read as JSON when it can be (give credentials "
        "through the environment: arguments show in ps)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``kvb``."""
    from kv_backend import __version__

    p = _Parser(prog="kvb", description="Inspect, change, merge, back up and serve a kv_backend store.")
    # As redis-server, celery and django-admin have: which release is installed, for a bug report.
    p.add_argument("--version", action="version", version=f"kvb {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_CommandParser)

    s = sub.add_parser("stats", help="show keys, sizes and files of a store")
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("check", help="verify every record's checksum; exit 1 if any is damaged")
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument("--json", action="store_true", help="print the report as one JSON object")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser(
        "salvage",
        help="copy the readable keys of a damaged store into a new store; exit 1 if damage was skipped",
    )
    s.add_argument("src", type=_directory, help="the damaged store (only read)")
    s.add_argument("dst", type=_directory, help="the new store: a new or empty directory")
    s.set_defaults(func=cmd_salvage)

    s = sub.add_parser(
        "get", help="print the value of KEY (any bytes); a binary value as a bytes literal, or --raw"
    )
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument("key", help=_KEY_HELP)
    s.add_argument("--raw", action="store_true", help="write the value's exact bytes, with no newline")
    s.set_defaults(func=cmd_get)

    s = sub.add_parser("put", help="store VALUE, or the bytes of --stdin, under KEY (any bytes)")
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument("key", help=_KEY_HELP)
    s.add_argument("value", nargs="?", help="the value (the argument's bytes), or --stdin")
    s.add_argument("--stdin", action="store_true", help="read the value's bytes from standard input")
    s.add_argument(
        "--ttl", type=_ttl, default=None, metavar="SECONDS", help="seconds to live (> 0; default: never)"
    )
    s.set_defaults(func=cmd_put, usage_error=s.error)

    s = sub.add_parser("delete", help="delete a key; exit 1 if it did not exist")
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument("key", help=_KEY_HELP)
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser(
        "keys", help="list keys in order, one a line (a key that is not plain text as a bytes literal)"
    )
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument("--prefix", default="", help="list only the keys that start with PREFIX (any bytes)")
    s.add_argument("--reverse", action="store_true", help="the largest key first")
    s.add_argument("--limit", type=_count, default=None, metavar="N", help="list at most N keys")
    s.add_argument("-0", "--null", action="store_true", help="each key's bytes, then NUL (for xargs -0)")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("merge", help="compact the store (drop overwritten, deleted and expired records)")
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument(
        "--wait", action="store_true", help="if another process is merging, wait for it, then merge"
    )
    s.set_defaults(func=cmd_merge)

    s = sub.add_parser("backup", help="copy a consistent snapshot to an fsspec URL (incremental)")
    s.add_argument("path", type=_directory, help=_PATH_HELP)
    s.add_argument("url", help=_URL_HELP)
    s.add_argument("--name", default=None, help="backup name (default: a timestamp)")
    _add_storage_option(s)
    s.set_defaults(func=cmd_backup)

    s = sub.add_parser("restore", help="restore a backup into an empty directory")
    s.add_argument("url", help=_URL_HELP)
    s.add_argument("path", type=_directory, help=_RESTORE_PATH_HELP)
    s.add_argument("--name", default=None, help="which backup (default: the newest)")
    _add_storage_option(s)
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser(
        "backups", help="list the backups under a URL (prune old ones, verify every object they hold)"
    )
    s.add_argument("url", help=_URL_HELP)
    s.add_argument("--keep", type=_keep, default=None, metavar="N", help="delete all but the newest N (>= 1)")
    s.add_argument(
        "--verify",
        action="store_true",
        help="read every object of the backups and check its size and sha256; exit 1 if any is damaged",
    )
    s.add_argument("--name", default=None, help="with --verify: verify this backup only")
    s.add_argument("--json", action="store_true", help="print the list as one JSON object")
    _add_storage_option(s)
    s.set_defaults(func=cmd_backups, usage_error=s.error)

    s = sub.add_parser("serve", help="serve the store over the Redis protocol (RESP2/RESP3)")
    s.add_argument("--dir", type=_directory, required=True, help="store directory")
    s.add_argument("--host", type=_host, default="127.0.0.1", help=_HOST_HELP)
    s.add_argument("--port", type=_port, default=6380, help="TCP port (default: 6380; 0 picks a free one)")
    password = s.add_mutually_exclusive_group()
    password.add_argument(
        "--requirepass",
        type=_given("a password", "none"),
        default=None,
        help="require this password (visible in ps: prefer --requirepass-file or $KVB_REQUIREPASS)",
    )
    password.add_argument(
        "--requirepass-file",
        type=_secret_file,
        default=None,
        metavar="PATH",
        help="require the password held in this file (default: $KVB_REQUIREPASS, if set)",
    )
    s.add_argument(
        "--unixsocket",
        type=_given("a path", "no unix socket"),
        default=None,
        metavar="PATH",
        help="also listen on this unix socket",
    )
    s.add_argument(
        "--protected-mode",
        choices=("yes", "no"),
        default="yes",
        help="without a password, serve only clients on this machine (default: yes, as redis-server)",
    )
    s.add_argument(
        "--appendfsync",
        choices=("always", "everysec", "no"),
        default="no",
        help="when writes are fsynced, against power loss (a killed process loses no answered write "
        "either way): always, before any reply is sent that may tell of them (once per event-loop turn, "
        "for all its writes: the slowest); everysec, within about a second; no, "
        "left to the OS (default: no, the fastest)",
    )
    s.add_argument(
        "--loglevel",
        choices=("debug", "verbose", "notice", "warning"),
        default="notice",
        help="debug also logs failed TLS handshakes (default: notice)",
    )
    tls = s.add_argument_group("TLS (as redis-server's tls-* options)")
    tls.add_argument(
        "--tls-port",
        type=_tls_port,
        default=None,
        metavar="PORT",
        help="also listen on this port for TLS clients",
    )
    tls.add_argument(
        "--tls-cert-file",
        type=_given("a path", "no TLS"),
        metavar="PATH",
        help="the server's certificate (PEM)",
    )
    tls.add_argument(
        "--tls-key-file",
        type=_given("a path", "no TLS"),
        metavar="PATH",
        help="the certificate's private key (PEM)",
    )
    passphrase = tls.add_mutually_exclusive_group()
    passphrase.add_argument(
        "--tls-key-file-pass",
        type=_given("a passphrase", "an unencrypted key"),
        metavar="PASS",
        help="the key's passphrase (visible in ps: prefer --tls-key-file-pass-file)",
    )
    passphrase.add_argument(
        "--tls-key-file-pass-file",
        type=_secret_file,
        metavar="PATH",
        help="the key's passphrase, held in this file",
    )
    tls.add_argument(
        "--tls-ca-cert-file",
        type=_given("a path", "no CA"),
        metavar="PATH",
        help="the CA certificates (PEM) client certificates are checked against",
    )
    tls.add_argument(
        "--tls-ca-cert-dir",
        type=_given("a directory", "no CA"),
        metavar="DIR",
        help="a directory of CA certificates (c_rehash's hashed names)",
    )
    tls.add_argument(
        "--tls-auth-clients",
        choices=("yes", "no", "optional"),
        default=None,
        help="require a client certificate (yes), check one if given (optional), or not (no); default: "
        "yes with a CA, else no",
    )
    tls.add_argument(
        "--tls-protocols",
        default=None,
        metavar="'TLSv1.2 TLSv1.3'",
        help="the TLS versions served (default: both)",
    )
    tls.add_argument(
        "--tls-ciphers", default=None, metavar="LIST", help="the TLSv1.2 ciphers, an OpenSSL cipher list"
    )
    tls.add_argument(
        "--tls-prefer-server-ciphers",
        choices=("yes", "no"),
        default=None,
        help="choose the cipher by the server's order rather than the client's (default: no)",
    )
    tls.add_argument(
        "--tls-handshake-timeout",
        type=_seconds_above_zero,
        default=None,
        metavar="SECONDS",
        help="close a TLS connection whose handshake takes longer (default: 10)",
    )
    s.set_defaults(func=cmd_serve, usage_error=s.error)

    s = sub.add_parser("http", help="serve the store over HTTP (JSON/binary REST API)")
    s.add_argument("--dir", type=_directory, required=True, help="store directory")
    s.add_argument("--host", type=_host, default="127.0.0.1", help=_HOST_HELP)
    s.add_argument("--port", type=_port, default=8380, help="TCP port (default: 8380; 0 picks a free one)")
    token = s.add_mutually_exclusive_group()
    token.add_argument(
        "--token",
        type=_given("a token", "none"),
        default=None,
        help="require 'Authorization: Bearer TOKEN' (visible in ps: prefer --token-file or $KVB_HTTP_TOKEN)",
    )
    token.add_argument(
        "--token-file",
        type=_secret_file,
        default=None,
        metavar="PATH",
        help="require the token held in this file (default: $KVB_HTTP_TOKEN, if set)",
    )
    s.add_argument(
        "--keep-alive",
        type=_seconds_above_zero,
        default=None,
        metavar="SECONDS",
        help="how long an idle connection stays open (default: $KVB_HTTP_KEEP_ALIVE or 5); behind a "
        "proxy, more than the proxy's idle timeout",
    )
    s.add_argument(
        "--header-timeout",
        type=_seconds_above_zero,
        default=None,
        metavar="SECONDS",
        help="how long a request's line and headers may take to arrive; a connection that sent nothing "
        "by then is closed, one that sent part of them answered 408 (default: $KVB_HTTP_HEADER_TIMEOUT "
        "or 20)",
    )
    s.add_argument(
        "--lock-timeout",
        type=_seconds_above_zero,
        default=None,
        metavar="SECONDS",
        help="how long a write (or a read catching up with another process's merge) waits for the "
        "store's write lock held by another process before it is answered 503 lock_timeout "
        "(default: $KVB_HTTP_LOCK_TIMEOUT or 5)",
    )
    s.add_argument(
        "--max-pending-bytes",
        type=_bytes_above_zero,
        default=None,
        metavar="BYTES",
        help="the most bytes of request bodies held at once; an upload that would pass it is answered "
        "503 too_many_uploads (default: $KVB_HTTP_MAX_PENDING_BYTES or 4 times the value limit)",
    )
    s.add_argument(
        "--ssl-certfile",
        type=_given("a file", "plain HTTP"),
        default=None,
        metavar="PATH",
        help="serve HTTPS with the certificate (chain) in this PEM file",
    )
    s.add_argument(
        "--ssl-keyfile",
        type=_given("a file", "the key in --ssl-certfile"),
        default=None,
        metavar="PATH",
        help="the certificate's private key, a PEM file (default: the key in --ssl-certfile)",
    )
    s.add_argument(
        "--ssl-keyfile-password-file",
        type=_secret_file,
        default=None,
        metavar="PATH",
        help="the password of an encrypted --ssl-keyfile, held in this file",
    )
    s.add_argument(
        "--ssl-ca-certs",
        type=_given("a file", "no client certificates"),
        default=None,
        metavar="PATH",
        help="the CA certificates (PEM) that sign the client certificates --ssl-cert-reqs asks for",
    )
    s.add_argument(
        "--ssl-cert-reqs",
        choices=("none", "optional", "required"),
        default="none",
        help="whether a client must show a certificate signed by a CA of --ssl-ca-certs: none "
        "(default), optional (verified if shown), required",
    )
    s.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        default="info",
        help="the least severe messages written to stderr, as uvicorn's option (default: info, which "
        "includes a line for each request)",
    )
    s.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no line on stdout for each request (uvicorn's access log), whatever --log-level says",
    )
    s.add_argument(
        "--workers",
        type=_processes,
        default=None,
        metavar="N",
        help="serve from N worker processes, each with its own connection limit, on one socket; one "
        "that is killed is replaced, and SIGHUP reloads them gracefully, reading the TLS files again "
        "(default: $KVB_HTTP_WORKERS or 1)",
    )
    s.add_argument(
        "--reload-timeout",
        type=_seconds_above_zero,
        default=None,
        metavar="SECONDS",
        help="with --workers 2 or more, how long a reload (SIGHUP) waits for its read of the TLS files, "
        "then for all its new workers to have the store open, before it gives up, the workers serving "
        "going on (default: "
        "$KVB_HTTP_RELOAD_TIMEOUT or 300)",
    )
    s.set_defaults(func=cmd_http, usage_error=s.error)
    return p


def _discard_output() -> None:
    """Point standard output's file descriptor at /dev/null: after a failed write, what Python still
    buffers for it would otherwise fail again in the flush at exit (a second message, status 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _Terminated(BaseException):
    """SIGTERM arrived while a command ran (raised by :func:`_on_sigterm`)."""


def _on_sigterm(signum: int, frame: object) -> None:
    """Stop the command as Ctrl-C does: by an exception, so that what it started is undone on the way
    out (the unfinished copy of salvage or restore is removed, the store is closed). A second SIGTERM
    is ignored, so it cannot cut that cleanup short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Terminated


def _on_sigint(signum: int, frame: object) -> None:
    """Stop the command as Python's own handler does (KeyboardInterrupt), but once: a second Ctrl-C
    is ignored, so it cannot cut short the cleanup the first one started (see :func:`_on_sigterm`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kvb``; return the exit status."""
    args = build_parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # text a terminal cannot encode is escaped, never a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    # The servers handle SIGTERM themselves (a clean shutdown, as for redis-server).
    previous = signal.getsignal(signal.SIGTERM)
    previous_int = signal.getsignal(signal.SIGINT)
    trap = args.func not in (cmd_serve, cmd_http) and threading.current_thread() is threading.main_thread()
    if trap:
        signal.signal(signal.SIGTERM, _on_sigterm)
        if previous_int is not signal.SIG_IGN:  # (nohup, a background job of a script: left ignored)
            signal.signal(signal.SIGINT, _on_sigint)
    try:
        code = int(args.func(args) or 0)
        _flush_output()
        return code
    except _OutputError as exc:
        _say(f"kvb: {exc}")
        _discard_output()  # what is still buffered would fail again at exit
        return 2
    except KVError as exc:
        _say(f"kvb: {_error_line(exc, args.command)}")
        return 2
    except KeyboardInterrupt:
        # One line, so that a log (of timeout -s INT, of a supervisor) says why the command stopped.
        _say("kvb: interrupted")
        return 130
    except _Terminated:
        _say("kvb: terminated")
        return 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM stopped
    except BrokenPipeError:
        # The reader went away (`kvb keys DIR | head`): stop quietly, as a program stopped by
        # SIGPIPE does, and point stdout at /dev/null so the final flush at exit cannot fail too.
        _discard_output()
        return 141
    finally:
        if trap:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous_int is None else previous_int)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
