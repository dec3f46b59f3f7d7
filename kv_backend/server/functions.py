"""Redis 7 functions (FUNCTION LOAD / FCALL / FCALL_RO ...): Lua libraries kept in the store.

A library is Lua code that starts with ``#!lua name=<library>`` and calls
``redis.register_function`` for each function it offers. The libraries' code is stored in the
engine under one reserved record (:data:`~kv_backend.structures.layout.FUNCTIONS`, outside every
key prefix, so SCAN/KEYS/DBSIZE never show it and FLUSHALL/FLUSHDB leave it, as Redis keeps
functions across a FLUSHALL); it survives restarts and every ``kvb serve`` on the same directory
sees it. Each server keeps the compiled libraries and re-reads the record when the store's change
token has moved since it last looked (at every FCALL, FCALL_RO and FUNCTION subcommand), so a
library another process loaded or deleted is seen by the next command that needs it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kv_backend.server.protocol import ErrorReply, OrderedSet
from kv_backend.structures import CommandError, glob_match, parse_int, rdb
from kv_backend.structures.errors import quoted
from kv_backend.structures.layout import FUNCTIONS

if TYPE_CHECKING:
    import builtins  # (``list`` is a method of Functions)

    from kv_backend.server.resp import Connection, Server
    from kv_backend.server.scripting import Scripts

_LEN = struct.Struct(">I")

#: The flags a function may have, in the order Redis lists them (replies: status strings).
_FLAGS = ("no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys")


@dataclass
class Function:
    name: str
    callback: Any
    flags: list[str]
    description: bytes | None


@dataclass
class Library:
    name: str
    code: bytes
    functions: dict[str, Function] = field(default_factory=dict)


class Functions:
    """The function libraries of one server, kept in step with the store's record of them."""

    def __init__(self, server: Server, scripts: Scripts) -> None:
        self.server = server
        self.scripts = scripts
        self.libraries: dict[str, Library] = {}
        #: Every function by its name in ASCII lower case: as in Redis, FCALL finds a function
        #: whatever the case of its name, and two libraries may not have names differing only so.
        self._functions: dict[bytes, tuple[Library, Function]] = {}
        self._token: int | None = None
        self._stored = b""

    # ------------------------------------------------------------ the stored record

    def sync(self) -> None:
        """Re-read the stored libraries if the store changed since the last look (another process
        may have loaded or deleted one)."""
        db = self.server.db
        token = db.change_token()
        if token == self._token:
            return
        stored = db.get(FUNCTIONS, b"")
        if stored != self._stored:
            libraries: dict[str, Library] = {}
            for code in _unpack(stored):
                try:
                    lib = self._compile(code)
                except CommandError as exc:  # stored by another version; skip it, say so
                    self.server.log(f"a stored function library does not load: {exc}")
                    continue
                libraries[lib.name] = lib
            self._install(libraries, stored)
        self._token = token

    def _install(self, libraries: dict[str, Library], stored: bytes) -> None:
        self.libraries = libraries
        functions: dict[bytes, tuple[Library, Function]] = {}
        for lib in libraries.values():
            for f in lib.functions.values():  # of two in one library differing in case, FCALL finds
                functions[_fold(f.name)] = (lib, f)  # the last (Redis: either, by its hash table)
        self._functions = functions
        self._stored = stored

    def _save(self, libraries: dict[str, Library]) -> None:
        """Store ``libraries`` (the caller holds the store lock) and use them."""
        db = self.server.db
        stored = b"".join(_LEN.pack(len(lib.code)) + lib.code for lib in libraries.values())
        if stored:
            db.put(FUNCTIONS, stored)
        else:
            db.delete(FUNCTIONS)
        self._install(libraries, stored)
        self._token = db.change_token()

    # ------------------------------------------------------------ FUNCTION LOAD

    def _compile(self, code: bytes) -> Library:
        """Run a library's code and collect the functions it registers (Redis's errors if it fails)."""
        name = _library_name(code)
        s = self.scripts
        s._runtime()
        newline = code.index(b"\n")
        loaded = s.function_loader(code[newline:])  # the shebang line left blank: lines keep their numbers
        chunk, err = loaded if isinstance(loaded, tuple) else (loaded, None)
        if chunk is None:
            raise CommandError(f"ERR Error compiling function: {_text(err)}")
        outcome = s.load_library(chunk)
        ok, found = outcome if isinstance(outcome, tuple) else (outcome, None)
        if not ok:
            raise CommandError(f"ERR Error registering functions: {_text(found)}")
        lib = Library(name, code)
        i = 1
        while found[i] is not None:
            entry = found[i]
            flags_table = entry[3]
            flags = [_text(flags_table[j]) for j in range(1, len(flags_table) + 1)]
            description = entry[4] if entry[4] is not False else None
            fname = _text(entry[1])
            lib.functions[fname] = Function(fname, entry[2], flags, description)
            i += 1
        if not lib.functions:
            raise CommandError("ERR No functions registered")
        return lib

    def load(self, code: bytes, replace: bool) -> bytes:
        db = self.server.db
        with db.locked():
            self.sync()
            name = _library_name(code)
            if name in self.libraries and not replace:  # checked before the code runs, as Redis
                raise CommandError(f"ERR Library '{name}' already exists")
            lib = self._compile(code)
            for fname in lib.functions:
                owner = self._functions.get(_fold(fname))
                if owner is not None and owner[0].name != lib.name:
                    raise CommandError(f"ERR Function {fname} already exists")
            libraries = dict(self.libraries)
            libraries[lib.name] = lib
            self._save(libraries)
        return lib.name.encode()

    def delete(self, name: bytes) -> None:
        db = self.server.db
        with db.locked():
            self.sync()
            key = name.decode("utf-8", "surrogateescape")
            if key not in self.libraries:
                raise CommandError("ERR Library not found")
            libraries = dict(self.libraries)
            del libraries[key]
            self._save(libraries)

    def flush(self) -> None:
        with self.server.db.locked():
            self._save({})

    # ------------------------------------------------------------ FUNCTION DUMP / RESTORE

    def dump(self) -> bytes:
        """Every library's code in Redis's FUNCTION DUMP format (libraries in name order)."""
        self.sync()
        return rdb.dump_functions([self.libraries[name].code for name in sorted(self.libraries)])

    def restore(self, payload: bytes, policy: bytes) -> None:
        """FUNCTION RESTORE: load the libraries of a FUNCTION DUMP payload, all or none of them.

        ``policy`` is ``APPEND`` (a library or function name already loaded is an error),
        ``REPLACE`` (libraries of the same names are replaced) or ``FLUSH`` (every loaded library
        goes first), with Redis's error texts.
        """
        codes = rdb.load_functions(payload)
        db = self.server.db
        with db.locked():
            self.sync()
            new: dict[str, Library] = {}
            owners: dict[bytes, tuple[str, str]] = {}  # a function (folded): its library and name
            for code in codes:
                lib = self._compile(code)
                if lib.name in new:
                    raise CommandError(f"ERR Library '{lib.name}' already exists")
                for fname in lib.functions:
                    if owners.get(_fold(fname), (lib.name,))[0] != lib.name:
                        raise CommandError(f"ERR Function {fname} already exists")
                    owners[_fold(fname)] = (lib.name, fname)
                new[lib.name] = lib
            libraries = {} if policy == b"FLUSH" else dict(self.libraries)
            for name in new:
                if name in libraries and policy == b"APPEND":
                    raise CommandError(f"ERR Library {name} already exists")
                libraries.pop(name, None)
            for lib in libraries.values():
                for fname in lib.functions:
                    if _fold(fname) in owners:  # named as Redis names it: the restored one
                        raise CommandError(f"ERR Function {owners[_fold(fname)][1]} already exists")
            libraries.update(new)
            self._save(libraries)

    # ------------------------------------------------------------ FUNCTION LIST / STATS

    def list(self, pattern: bytes | None, with_code: bool) -> list[dict[bytes, Any]]:
        self.sync()
        out = []
        for name in sorted(self.libraries):
            lib = self.libraries[name]
            raw = name.encode("utf-8", "surrogateescape")
            if pattern is not None and not glob_match(pattern, raw):
                continue
            entry: dict[bytes, Any] = {
                b"library_name": raw,
                b"engine": b"LUA",
                b"functions": [
                    {
                        b"name": f.name.encode("utf-8", "surrogateescape"),
                        b"description": f.description,
                        b"flags": OrderedSet(flag for flag in _FLAGS if flag in f.flags),
                    }
                    for f in (lib.functions[n] for n in sorted(lib.functions))
                ],
            }
            if with_code:
                entry[b"library_code"] = lib.code
            out.append(entry)
        return out

    def stats(self) -> Any:
        """FUNCTION STATS: the function running long (while one does: see busy.py), and the counts."""
        run = self.scripts.running
        if run is None:
            self.sync()  # (not while a function runs: the libraries it sees stay as they are)
        elif run.is_eval:  # as Redis: EVAL's scripts are not shown
            return ErrorReply(run.busy_error)
        functions = sum(len(lib.functions) for lib in self.libraries.values())
        counts = {b"libraries_count": len(self.libraries), b"functions_count": functions}
        running = None if run is None else run.stats()
        return {b"running_script": running, b"engines": {b"LUA": counts}}

    # ------------------------------------------------------------ FCALL

    def call(self, conn: Connection, command: builtins.list[bytes], read_only: bool) -> Any:
        """FCALL / FCALL_RO ``name numkeys key... arg...`` (run under the store lock, as EVAL)."""
        name, rest = command[1], command[2:]
        self.sync()
        found = self._functions.get(name.lower())
        if found is None:
            raise CommandError("ERR Function not found")
        try:
            numkeys = parse_int(rest[0])
        except (CommandError, ValueError):
            raise CommandError("ERR Bad number of keys provided") from None
        if numkeys < 0:
            raise CommandError("ERR Number of keys can't be negative")
        if numkeys > len(rest) - 1:
            raise CommandError("ERR Number of keys can't be greater than number of args")
        _, function = found
        no_writes = "no-writes" in function.flags
        if read_only and not no_writes:
            raise CommandError("ERR Can not execute a script with write flag using *_ro command.")
        return self.scripts.run_function(
            conn, function.callback, function.name, rest[1:], numkeys, no_writes, command
        )


def _fold(name: str) -> bytes:
    """A function's name as FCALL looks it up: its bytes in ASCII lower case (Redis's strcasecmp)."""
    return name.encode("utf-8", "surrogateescape").lower()


def _library_name(code: bytes) -> str:
    """The library name of ``#!<engine> name=<name>`` (Redis's errors for a bad first line)."""
    if not code.startswith(b"#!"):
        raise CommandError("ERR Missing library metadata")
    newline = code.find(b"\n")
    if newline < 0:
        raise CommandError("ERR Invalid library metadata")
    parts = code[2:newline].split(b" ")
    engine, name = parts[0], None
    for part in parts[1:]:
        if not part:
            continue
        if part.startswith(b"name="):
            if name is not None:
                raise CommandError("ERR Invalid metadata value, name argument was given multiple times")
            name = part[5:]
        else:
            raise CommandError(f"ERR Invalid metadata value given: {_text(part)}")
    if name is None:
        raise CommandError("ERR Library name was not given")
    if engine.lower() != b"lua":
        raise CommandError(f"ERR Engine '{_text(engine)}' not found")
    if not name or not all(c == 0x5F or (chr(c).isalnum() and c < 128) for c in name):
        raise CommandError(
            "ERR Library names can only contain letters, numbers, or underscores(_) "
            "and must be at least one character long"
        )
    return name.decode("ascii")


def _unpack(stored: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 4 <= len(stored):
        (size,) = _LEN.unpack_from(stored, pos)
        out.append(stored[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


def _text(value: Any) -> str:
    return quoted(value) if isinstance(value, bytes) else str(value)
