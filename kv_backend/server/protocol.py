"""RESP2/RESP3 wire format: an incremental request parser and a reply serializer.

Requests are arrays of bulk strings (what every client sends) or inline
commands (a line of words, what ``telnet`` sends). The parser keeps its state
between reads, so pipelined and partially received input are both handled, and
it enforces limits on line, array and bulk sizes: input beyond them is a
:class:`ProtocolError`, after which the connection is closed. When the
``hiredis`` package is installed (the ``server`` extra), a read made of whole
commands is parsed by its C reader, several times faster; anything else
(partial commands, inline commands, malformed input) takes the pure-Python
parser, which is also the whole parser without ``hiredis``.

Replies are plain Python values mapped to RESP types: ``bytes`` bulk string,
``str`` simple string, ``int`` integer, ``float`` double, ``None`` null,
``list``/``tuple`` array, ``dict`` map (:class:`Pairs`: one whose keys may repeat),
``set``/``frozenset`` set (sorted; :class:`OrderedSet`: in order),
:class:`Verbatim` verbatim string, :class:`DoubleText` a double in given digits,
:class:`ErrorReply` error, :class:`Push` out-of-band push, :data:`NULL_ARRAY` the RESP2 null
array. RESP2 connections get the RESP2 spelling of the RESP3 types.
"""

from __future__ import annotations

import os
import re
from typing import Any

from kv_backend.errors import KVError
from kv_backend.structures import format_float

try:
    from hiredis import Reader as _HiredisReader

    if not hasattr(_HiredisReader, "has_data"):  # an old release: keep to the Python parser
        _HiredisReader = None  # type: ignore[assignment,misc]
except ImportError:  # optional: the pure-Python parser handles everything alone
    _HiredisReader = None  # type: ignore[assignment,misc]


MAX_INLINE = 64 * 1024
MAX_ARRAY = 2**31 - 1  # as Redis: an int's worth of arguments (they are only kept as they arrive)
MAX_BULK = 512 * 1024 * 1024
#: Before AUTH (with a password set) a client may send no more than this, as Redis allows:
#: a stranger cannot make the server hold large requests.
UNAUTH_ARRAY = 10
UNAUTH_BULK = 16 * 1024
#: Reads shorter than this go to hiredis: their commands stay far inside the limits above.
_FAST = 64 * 1024
_join = b"".join


class ProtocolError(KVError):
    """The client sent bytes that are not valid RESP (the connection is closed after replying).

    ``commands`` are the whole commands the same read held before the bad one: Redis runs them
    (and sends their replies) before it answers the error.
    """

    commands: list[list[bytes]] = []


class ErrorReply:
    """An error reply; ``message`` starts with the error code (``ERR``, ``WRONGTYPE``...)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message.replace("\r", " ").replace("\n", " ")

    def __repr__(self) -> str:
        return f"ErrorReply({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)


class Push(list[Any]):
    """An out-of-band message (pub/sub): a RESP3 push, a plain array in RESP2."""


class OrderedSet(list[Any]):
    """A set whose members are sent in this order (COMMAND's flags): a RESP3 set, an array in RESP2."""


class Pairs(list[Any]):
    """A map given as a list of ``(key, value)`` pairs, whose keys may repeat (XREAD naming a stream
    twice answers it twice, as Redis does): a RESP3 map, a flat array in RESP2, like a ``dict``."""


class Verbatim(bytes):
    """Text for people (INFO, CLIENT LIST): a RESP3 verbatim string, a bulk string in RESP2."""

    #: Its RESP3 format, three bytes (a script's ``{verbatim_string=...}`` reply may give another).
    format = b"txt"


class BigNumber(bytes):
    """The digits of a big number (a script's ``{big_number=...}`` reply): RESP3's ``(``, a bulk
    string in RESP2."""


class DoubleText(bytes):
    """A double given by its exact text (GEOPOS's 17 decimals): a RESP3 double, a bulk string in RESP2."""


class Replies(list[Any]):
    """Several replies to one command, sent back to back (SUBSCRIBE with several channels)."""


class _NullArray:
    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY: Any = _NullArray()
OK = "OK"


class Parser:
    """Incremental RESP request parser: :meth:`feed` bytes, then take the complete commands.

    Unfinished input is kept as a list of chunks and only joined once enough
    bytes for the pending bulk string have arrived, so a large value sent in
    many small reads costs linear time.
    """

    __slots__ = ("args", "args_size", "chunks", "have", "held", "limited", "need", "reader", "start", "want")

    def __init__(self, limited: bool = False) -> None:
        #: True until the client authenticates: requests are held to UNAUTH_ARRAY/UNAUTH_BULK,
        #: and parsed one at a time (an AUTH lifts the limits for the requests after it).
        self.limited = limited
        self.held = False  # complete input is waiting: feed(b"") once the last command has run
        self.start = 0  # where held input resumes in chunks[0] (kept whole: no copy per request)
        self.reader = _HiredisReader() if _HiredisReader is not None else None
        self.chunks: list[bytes] = []
        self.have = 0  # bytes in chunks
        self.want = 0  # bytes needed before parsing is worth trying again
        self.args: list[bytes] | None = None
        self.args_size = 0  # bytes of the bulk strings in ``args`` (the command still arriving)
        self.need = 0  # bulk strings still missing from ``args``

    @property
    def pending_size(self) -> int:
        """Bytes held for requests still arriving: unparsed input, and the arguments of an unfinished
        command (what client-query-buffer-limit bounds)."""
        return self.have + self.args_size

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add received bytes and return the commands they complete (possibly none)."""
        chunks = self.chunks
        limited = self.limited
        if not chunks and self.args is None and data[:1] == b"*" and len(data) < _FAST and not limited:
            # The usual read: one whole command, as a client sends it without pipelining.
            one = _one_command(data)
            if one is not None:
                return [one]
            reader = self.reader
            if reader is not None and _small_enough(data):
                commands = _read_whole(reader, data)
                if commands is not None:
                    return commands
                self.reader = _HiredisReader()  # drop its partial state: this read takes the long way
        pos = 0
        if chunks:
            if data or not self.held:
                if self.start:
                    chunks[0] = chunks[0][self.start :]
                    self.start = 0
                chunks.append(bytes(data))
                self.have += len(data)
                if self.have < self.want:
                    return []
                buf = b"".join(chunks)
            else:  # held input of an unauthenticated client: go on where the last request ended
                buf, pos = chunks[0], self.start
        else:
            buf = bytes(data)
        out: list[list[bytes]] = []
        n = len(buf)
        stopped = False
        args = self.args
        args_size = self.args_size
        need = self.need
        want = 0
        try:
            while True:
                if args is None:
                    if pos >= n:
                        break
                    if buf[pos] == 42:  # '*'
                        nl = buf.find(b"\r\n", pos)
                        if nl < 0:
                            if n - pos > MAX_INLINE:
                                raise ProtocolError("Protocol error: too big mbulk count string")
                            break
                        raw = buf[pos + 1 : nl]
                        count = int(raw) if raw.isdigit() and raw[0] != 48 and len(raw) < 12 else _length(raw)
                        if count is None or count > MAX_ARRAY:
                            raise ProtocolError("Protocol error: invalid multibulk length")
                        if limited and count > UNAUTH_ARRAY:
                            raise ProtocolError("Protocol error: unauthenticated multibulk length")
                        pos = nl + 2
                        if count <= 0:  # an empty, null or negative array: ignored, as Redis does
                            continue
                        args = []
                        args_size = 0
                        need = count
                    else:
                        nl = buf.find(b"\n", pos)
                        if nl < 0:
                            if n - pos > MAX_INLINE:
                                raise ProtocolError("Protocol error: too big inline request")
                            break
                        if nl - pos > MAX_INLINE:
                            raise ProtocolError("Protocol error: too big inline request")
                        words = split_inline(buf[pos:nl])
                        pos = nl + 1
                        if words:
                            out.append(words)
                            if limited:
                                stopped = True
                                break
                        continue
                while need:
                    if pos >= n:
                        break
                    if buf[pos] != 36:  # '$'
                        raise ProtocolError(f"Protocol error: expected '$', got '{chr(buf[pos])}'")
                    nl = buf.find(b"\r\n", pos)
                    if nl < 0:
                        if n - pos > MAX_INLINE:
                            raise ProtocolError("Protocol error: too big bulk count string")
                        break
                    raw = buf[pos + 1 : nl]
                    size = int(raw) if raw.isdigit() and raw[0] != 48 and len(raw) < 12 else _length(raw)
                    if size is None or size < 0 or size > MAX_BULK:
                        raise ProtocolError("Protocol error: invalid bulk length")
                    if limited and size > UNAUTH_BULK:
                        raise ProtocolError("Protocol error: unauthenticated bulk length")
                    end = nl + 2 + size
                    if end + 2 > n:
                        want = end + 2 - pos
                        break
                    if buf[end : end + 2] != b"\r\n":
                        raise ProtocolError("Protocol error: bulk string not terminated by CRLF")
                    args.append(buf[nl + 2 : end])
                    args_size += size
                    pos = end + 2
                    need -= 1
                if need:
                    break
                out.append(args)
                args = None
                if limited:
                    stopped = True
                    break
        except ProtocolError as exc:  # the commands before the bad one are still run, as in Redis
            exc.commands = out
            raise
        self.held = stopped and pos < n
        self.args = args
        self.args_size = args_size if args is not None else 0
        self.need = need
        self.want = want
        if pos < n:
            if self.held:
                self.chunks, self.start = [buf], pos
                self.have = n - pos
            else:
                rest = buf[pos:] if pos else buf
                self.chunks, self.start = [rest], 0
                self.have = len(rest)
        elif chunks:
            self.chunks, self.start = [], 0
            self.have = 0
        return out


def _length(raw: bytes) -> int | None:
    """An array's or bulk string's length as Redis reads it (its ``string2ll``), or None: only a
    plain decimal within 64 bits, minus sign allowed, is one (no ``+``, spaces, leading zeros or ``-0``:
    Redis refuses ``*01`` and ``$04`` as invalid lengths). The parser reads plain digits without
    a leading zero itself, the usual case; this takes the others. hiredis reads lengths so already."""
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit() or (digits[0] == 48 and len(raw) > 1) or len(digits) > 19:
        return None
    value = int(raw)
    return value if -(2**63) <= value < 2**63 else None


#: An array (or RESP3 set, push, map, attribute) header of 1,000 or more elements after the first
#: line of a read.
_BIG_COUNT = re.compile(rb"\n[*~>%|]\d{4}")


def _small_enough(data: bytes) -> bool:
    """Whether ``data`` (a read that starts with an array header) announces no array of 1,000 or
    more elements: only then is it given to hiredis, which makes a list as long as an array's count
    as soon as it reads the count, also for arrays nested where no request has one (``*2147483647``
    alone held the server for seconds; a read of nested ``*99999`` for half a second). The Python
    parser takes the others, element by element as they arrive."""
    return not data[1:5].isdigit() and _BIG_COUNT.search(data) is None


#: ``*N`` and ``$N`` as clients write them, for the single-command check below.
_ARRAY_HEADS = [b"*%d" % n for n in range(65)]
_BULK_HEADS = [b"$%d" % n for n in range(1024)]


def _one_command(data: bytes) -> list[bytes] | None:
    """The command in ``data`` if the read is exactly one array of bulk strings; else None.

    Splitting at every CRLF and checking that the pieces are ``*N``, then N
    pairs of ``$len`` and an argument of that length, and nothing after the
    last CRLF proves that ``data`` is the one canonical encoding of those
    arguments (an argument holding a CRLF cannot pass the length checks as
    split). Anything else (several commands, partial input, other spellings
    of the lengths, more than 64 arguments) returns None and takes the general
    parser, which also owns the error messages.
    """
    parts = data.split(b"\r\n")
    n = len(parts)
    count = (n - 2) >> 1
    if n & 1 or not 0 < count <= 64 or parts[0] != _ARRAY_HEADS[count] or parts[-1]:
        return None
    args = parts[2::2]  # the pieces at odd places are the lengths and, last, the empty tail
    heads = _BULK_HEADS
    i = 1
    for arg in args:
        size = len(arg)
        if parts[i] != (heads[size] if size < 1024 else b"$%d" % size):
            return None
        i += 2
    return args


#: A command no client can guess, fed after each read: reading it back proves the read ended
#: on a command boundary (hiredis does not tell how far into a message it is).
_END = os.urandom(16).hex().encode()
_END_MSG = b"*1\r\n$%d\r\n%b\r\n" % (len(_END), _END)


def _read_whole(reader: Any, data: bytes) -> list[list[bytes]] | None:
    """The commands in ``data`` read by hiredis, or None unless it holds whole, plain commands.

    Empty and null arrays are skipped, as the Python parser does. Anything
    that is not an array of bulk strings (an integer, a simple string or a
    nested array where an argument belongs), a hiredis error, or a command
    left unfinished at the end of the read (then the end marker is swallowed
    into it) returns None, and the caller parses the read itself.
    """
    if b"\r\n+" in data or b"\r\n=" in data:
        return None  # maybe a simple or verbatim string where a bulk string belongs: hiredis would take it
    reader.feed(data)
    reader.feed(_END_MSG)
    out: list[list[bytes]] = []
    try:
        cmd = reader.gets()
        while cmd is not False:
            if cmd:
                if type(cmd) is not list:
                    return None
                _join(cmd)  # a TypeError unless every argument is a string
                out.append(cmd)
            cmd = reader.gets()
    except Exception:  # hiredis's ProtocolError, a TypeError from the check, anything odd:
        return None  # the Python parser has the last word (and the error messages)
    if not out or out[-1] != [_END] or reader.has_data():
        return None
    out.pop()
    return out


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command into words as Redis splits one (its ``sdssplitargs``).

    Words are separated by whitespace; a quote anywhere in a word opens a quoted part, which
    must close at the end of the word: ``"..."`` reads the escapes ``\\n \\r \\t \\b \\a``
    and ``\\xHH`` (any other escaped character stands for itself), ``'...'`` only ``\\'``. A
    quoted part left open, or closed in the middle of a word, is Redis's "unbalanced quotes"
    error.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    if b'"' not in line and b"'" not in line and b"\x0b" not in line and b"\x0c" not in line:
        return line.split()
    words: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return words
        word = bytearray()
        quote = 0
        while True:
            if i >= n:
                if quote:
                    raise ProtocolError("Protocol error: unbalanced quotes in request")
                break
            c = line[i]
            if quote == 34:  # '"'
                if c == 92 and i + 3 < n and line[i + 1] == 120 and _hex_pair(line[i + 2 : i + 4]):
                    word.append(int(line[i + 2 : i + 4], 16))  # \xHH
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    word.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ProtocolError("Protocol error: unbalanced quotes in request")
                    i += 1
                    break
                else:
                    word.append(c)
            elif quote == 39:  # "'"
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    word.append(39)
                    i += 1
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ProtocolError("Protocol error: unbalanced quotes in request")
                    i += 1
                    break
                else:
                    word.append(c)
            elif c in _WORD_END:
                break
            elif c == 34 or c == 39:
                quote = c
            else:
                word.append(c)
            i += 1
        words.append(bytes(word))


#: What Redis skips between words (C's isspace), and what ends a word outside quotes.
_SPACE = frozenset(b" \t\n\r\x0b\x0c")
_WORD_END = frozenset(b" \t\n\r")
_ESCAPES = {110: 10, 114: 13, 116: 9, 98: 8, 97: 7}  # \n \r \t \b \a
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _hex_pair(two: bytes) -> bool:
    return len(two) == 2 and two[0] in _HEX and two[1] in _HEX


def encode(value: Any, resp3: bool) -> bytes:
    """Serialize one reply for a RESP2 (``resp3=False``) or RESP3 connection."""
    t = type(value)
    if t is bytes:  # the most common replies first, without building a list
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if value is OK:
        return b"+OK\r\n"
    if t is int:
        return b":%d\r\n" % value
    out: list[bytes] = []
    _encode(value, resp3, out)
    return b"".join(out)


def wire_text(text: str) -> bytes:
    """A status or error text as sent: UTF-8, with the bytes that were not UTF-8 (kept as surrogate
    escapes: a script's reply, a client's argument an error quotes) written back as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "replace")


def _encode(value: Any, resp3: bool, out: list[bytes]) -> None:
    t = type(value)
    if t is bytes:
        out.append(b"$%d\r\n%b\r\n" % (len(value), value))
    elif t is str:
        out.append(b"+" + wire_text(value).replace(b"\r\n", b" ") + b"\r\n")
    elif t is int:
        out.append(b":%d\r\n" % value)
    elif value is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif t is list or t is tuple:
        out.append(b"*%d\r\n" % len(value))
        for v in value:
            _encode(v, resp3, out)
    elif t is ErrorReply:
        out.append(b"-" + wire_text(value.message) + b"\r\n")
    elif t is bool:
        out.append((b"#t\r\n" if value else b"#f\r\n") if resp3 else b":%d\r\n" % value)
    elif t is float:
        text = format_float(value)
        out.append(b",%b\r\n" % text if resp3 else b"$%d\r\n%b\r\n" % (len(text), text))
    elif t is dict:
        out.append((b"%%%d\r\n" if resp3 else b"*%d\r\n") % (len(value) * (1 if resp3 else 2)))
        for k, v in value.items():
            _encode(k, resp3, out)
            _encode(v, resp3, out)
    elif t is Pairs:
        out.append((b"%%%d\r\n" if resp3 else b"*%d\r\n") % (len(value) * (1 if resp3 else 2)))
        for k, v in value:
            _encode(k, resp3, out)
            _encode(v, resp3, out)
    elif t is set or t is frozenset:
        out.append((b"~%d\r\n" if resp3 else b"*%d\r\n") % len(value))
        for v in sorted(value):
            _encode(v, resp3, out)
    elif t is OrderedSet:
        out.append((b"~%d\r\n" if resp3 else b"*%d\r\n") % len(value))
        for v in value:
            _encode(v, resp3, out)
    elif t is Push:
        out.append((b">%d\r\n" if resp3 else b"*%d\r\n") % len(value))
        for v in value:
            _encode(v, resp3, out)
    elif t is Verbatim:
        if resp3:
            out.append(b"=%d\r\n%b:%b\r\n" % (len(value) + 4, value.format, value))
        else:
            out.append(b"$%d\r\n%b\r\n" % (len(value), value))
    elif t is BigNumber:
        out.append(b"(%b\r\n" % value if resp3 else b"$%d\r\n%b\r\n" % (len(value), value))
    elif t is DoubleText:
        out.append(b",%b\r\n" % value if resp3 else b"$%d\r\n%b\r\n" % (len(value), value))
    elif t is Replies:
        for v in value:
            _encode(v, resp3, out)
    elif value is NULL_ARRAY:
        out.append(b"_\r\n" if resp3 else b"*-1\r\n")
    else:
        raise TypeError(f"cannot encode a reply of type {t.__name__}")
