"""COMMAND DOCS of ``kvb serve``'s commands: a summary, the Redis version that brought the command
(``since``), its group, its complexity in kvb, its deprecation and its arguments, which ``redis-cli``
shows as ``help`` and hints, and IDEs and client generators read.

Each command's arguments are written as a syntax line (:mod:`kv_backend.server.commands.docs_table`)
and turned here into Redis 7's argument descriptions:

* an upper-case word is a token (``NX``, ``LIMIT``; a quoted one, ``"*"``, is any other text): alone
  it is a ``pure-token`` argument, before an argument or a group it is that argument's token;
* a lower-case word is an argument: ``name`` or ``name:type`` (``integer``, ``double``, ``key``,
  ``pattern``, ``unix-time``; ``string`` unless told, ``key`` for the argument named ``key``), and
  ``@N`` after the type: the index of its key specification (by default, key arguments take the
  specifications in order);
* ``[...]`` is optional, ``(...)`` a group; inside either, ``|`` separates alternatives (a ``oneof``)
  and several arguments in a row make a ``block``;
* ``...`` after an argument or group: it may be repeated; ``*`` after a token's argument: repeated
  with its token each time (``[GET pattern*]``: ``GET a GET b``).
"""

from __future__ import annotations

import re
from typing import Any

from kv_backend.server.commands.docs_table import DOCS
from kv_backend.server.protocol import OrderedSet

_TYPES = ("integer", "double", "key", "pattern", "unix-time", "string")
_TOKEN = re.compile(r'"[^"]+"|[A-Z][A-Z0-9_-]*(?![a-z])')
_LEXEME = re.compile(r'\s*("[^"]+"|\.\.\.|[\[\]()|*]|[^\s\[\]()|*".]+)')


class SyntaxLineError(ValueError):
    """A syntax line of the docs table that cannot be read (a defect of the table: the first command
    the server runs, and the tests, fail with it)."""


class Argument:
    """One argument of a command's docs: its reply is what COMMAND DOCS sends for it."""

    def __init__(
        self, kind: str, name: str, token: str | None = None, children: list[Argument] | None = None
    ):
        self.kind, self.name, self.token = kind, name, token
        self.children = children or []
        self.optional = self.multiple = self.multiple_token = False
        self.key_spec_index: int | None = None

    def reply(self) -> dict[bytes, Any]:
        out: dict[bytes, Any] = {b"name": self.name.encode(), b"type": self.kind.encode()}
        if self.key_spec_index is not None:
            out[b"key_spec_index"] = self.key_spec_index
        if self.token is not None:
            out[b"token"] = self.token.encode()
        flags = [
            flag
            for flag, on in (
                ("optional", self.optional),
                ("multiple", self.multiple),
                ("multiple_token", self.multiple_token),
            )
            if on
        ]
        if flags:
            out[b"flags"] = OrderedSet(flags)
        if self.children:
            out[b"arguments"] = [child.reply() for child in self.children]
        return out

    def min_words(self) -> int:
        """How many words of a call this argument takes at the least."""
        if self.optional:
            return 0
        own = 1 if self.token is not None and self.kind != "pure-token" else 0
        if self.kind == "block":
            return own + sum(child.min_words() for child in self.children)
        if self.kind == "oneof":
            return own + min(child.min_words() for child in self.children)
        return own + 1


def parse_syntax(line: str) -> list[Argument]:
    """The arguments a syntax line describes (see the module's docstring)."""
    words = []
    at = 0
    line = line.rstrip()
    while at < len(line):
        found = _LEXEME.match(line, at)
        if found is None:
            raise SyntaxLineError(f"cannot read {line[at:]!r} in {line!r}")
        words.append(found.group(1))
        at = found.end()
    reader = _Reader(words, line)
    args = reader.sequence(())
    if reader.at != len(words):
        raise SyntaxLineError(f"unexpected {words[reader.at]!r} in {line!r}")
    return args


class _Reader:
    def __init__(self, words: list[str], line: str) -> None:
        self.words, self.line, self.at = words, line, 0

    def peek(self) -> str | None:
        return self.words[self.at] if self.at < len(self.words) else None

    def take(self) -> str:
        word = self.words[self.at]
        self.at += 1
        return word

    def sequence(self, ends: tuple[str, ...]) -> list[Argument]:
        out = []
        while self.peek() is not None and self.peek() not in ends and self.peek() != "|":
            out.append(self.item())
        return out

    def alternatives(self, close: str) -> Argument:
        options = [self.sequence((close,))]
        while self.peek() == "|":
            self.take()
            options.append(self.sequence((close,)))
        if self.peek() != close:
            raise SyntaxLineError(f"missing {close!r} in {self.line!r}")
        self.take()
        if any(not option for option in options):
            raise SyntaxLineError(f"an empty alternative in {self.line!r}")
        parts = [option[0] if len(option) == 1 else _block(option) for option in options]
        if len(parts) == 1:
            return parts[0]
        return Argument("oneof", "-or-".join(part.name for part in parts), children=parts)

    def item(self) -> Argument:
        word = self.take()
        if word == "[":
            arg = self.alternatives("]")
            arg.optional = True
        elif word == "(":
            arg = self.alternatives(")")
        elif _TOKEN.fullmatch(word):
            token = word.strip('"')
            follows = self.peek()
            if follows is not None and (follows == "(" or _is_name(follows)):
                arg = self.item()
                if arg.token is not None or arg.optional or arg.multiple:  # (a group of one such part)
                    arg = _block([arg])
                arg.token = token
                if arg.kind in ("block", "oneof"):
                    arg.name = token.lower()
            else:
                arg = Argument("pure-token", _token_name(token), token)
        elif _is_name(word):
            name, _, kind = word.rpartition(":")
            kind, _, spec = kind.partition("@")  # (``@N``: the index of its key specification)
            if not name or kind not in _TYPES:
                name, kind = word, "key" if word == "key" else "string"
            arg = Argument(kind, name)
            if spec:
                arg.key_spec_index = int(spec)
        else:
            raise SyntaxLineError(f"unexpected {word!r} in {self.line!r}")
        if self.peek() == "...":
            self.take()
            arg.multiple = True
        elif self.peek() == "*" and arg.token is not None:
            self.take()
            arg.multiple = arg.multiple_token = True
        return arg


def _is_name(word: str) -> bool:
    return word[:1].islower()


def _token_name(token: str) -> str:
    return {"*": "auto-id", "$": "last-id", "=": "equal", "~": "approximately"}.get(token, token.lower())


def _block(args: list[Argument]) -> Argument:
    return Argument("block", "-".join(arg.name for arg in args), children=args)


def _number_keys(args: list[Argument], counter: list[int], last: int) -> None:
    """Give each key argument the index of its key specification: in order, as the keys come."""
    for arg in args:
        if arg.kind == "key" and arg.key_spec_index is None:
            arg.key_spec_index = min(counter[0], last)
            counter[0] += 1
        _number_keys(arg.children, counter, last)


class Docs:
    """One command's entry of the docs table, read."""

    __slots__ = ("arguments", "complexity", "deprecated", "since", "summary")

    def __init__(self, since: str, syntax: str, summary: str, complexity: str, deprecated: str) -> None:
        self.since, self.summary, self.complexity = since, summary, complexity
        self.deprecated = deprecated  # "VERSION what replaces it", or ""
        self.arguments = parse_syntax(syntax)

    def min_words(self) -> int:
        return sum(arg.min_words() for arg in self.arguments)

    def reply(self, group: str, key_specs: int) -> dict[bytes, Any]:
        out: dict[bytes, Any] = {
            b"summary": self.summary.encode(),
            b"since": self.since.encode(),
            b"group": group.encode(),
            b"complexity": self.complexity.encode(),
        }
        if self.deprecated:
            version, _, replaced_by = self.deprecated.partition(" ")
            out[b"doc_flags"] = OrderedSet(["deprecated"])
            out[b"deprecated_since"] = version.encode()
            out[b"replaced_by"] = replaced_by.encode()
        if self.arguments:
            _number_keys(self.arguments, [0], max(key_specs - 1, 0))
            out[b"arguments"] = [arg.reply() for arg in self.arguments]
        return out


def read_table(text: str = DOCS) -> dict[str, Docs]:
    """The docs table: per command (``container|sub`` for a subcommand), lines of its entry. A line
    ``NAME SINCE`` starts one; ``= `` lines hold its syntax, ``- `` its summary, ``~ `` its complexity
    and ``! `` its deprecation (the version, then what to use instead)."""
    entries: dict[str, Docs] = {}
    parts: dict[str, list[str]] = {}
    name = since = ""

    def done() -> None:
        if name:
            text = {mark: " ".join(lines) for mark, lines in parts.items()}
            if not text.get("-") or not text.get("~"):
                raise SyntaxLineError(f"the docs of {name} lack a summary or a complexity")
            entries[name] = Docs(since, text.get("=", ""), text["-"], text["~"], text.get("!", ""))

    for line in text.strip().splitlines():
        line = line.strip()
        if line[:2] in ("= ", "- ", "~ ", "! "):
            parts.setdefault(line[0], []).append(line[2:].strip())
            continue
        done()
        name, since = line.split()
        parts = {}
    done()
    return entries
