"""Where the data of a data file ends when no STATE page gives its published end.

A store copied without its ``STATE`` page, or written before the page existed, or whose page
names another file (a rotation that died), has no published end for its newest files: where
their data ends is read from the bytes alone (docs/file-format.md, "The end of the active
file", step 2). Tail recovery cuts the file there, and replay, ``kvb check`` and ``kvb salvage``
read the file up to there by the published rules, so all of them keep the same records.

A killed writer leaves at most one unfinished write at the end of its data: a prefix of one
record or batch (or the records of a transaction before its COMMIT). The engine grows a file
before it writes into it, so that write's lengths, torn or not, point inside the file, and
nothing but zeros (reserved space) follows where they point. Anything else where the data
seems to end (lengths that are not sound, bytes after where they point) is damage, and the
records after it were acknowledged: reading goes on at the next confirmed sound record, as
in published data (rule 3).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable

from kv_backend import record as rec
from kv_backend.files import FileId, data_name, list_data_files, missing_data_files
from kv_backend.record import reader_of
from kv_backend.state import page_words

Read = Callable[[int, int], bytes]


def rotation_unpublished(fids: list[FileId], published: tuple[int, int] | None) -> bool:
    """Whether the newest of ``fids`` (its header alone) may be the file of a rotation that died
    before publishing it, so that the file before it (minor id 0) may still end in reserved zeros or
    a torn write; not if the ``published`` tail names it (the rotation had closed that file first)."""
    return len(fids) > 1 and fids[-2][1] == 0 and (published is None or published[0] != fids[-1][0])


def tail_files(fids: list[FileId], head: bytes | None, published: tuple[int, int] | None) -> tuple[int, int]:
    """Which of the data files ``fids`` may end in an unfinished write: ``(newest, rotated)``, the index
    of the active file (the newest, or the one before it when the newest holds part of a header and
    the page, if any, names that one: a rotation died before the header was whole), and that of the file a
    rotation that died may have left unclosed, -1 if none: where the ``published`` tail names a file
    older than the newest, that one (recovery closes it); without a page, the one before a newest file
    holding its header alone, or part of it (see :func:`rotation_unpublished`). ``head``
    holds the first bytes of the newest file if it holds at most a file header, else None. Past the
    ``published`` end (where the page gives one) they may; all the other files were closed before
    anything after them was published, damage at their end included. Where the newest file is a merge
    output, no file is active: ``(len(fids), -1)``."""
    if fids and fids[-1][1] != 0:
        # (Every file is closed: tail recovery creates the active file.)
        return len(fids), -1
    newest, rotated = len(fids) - 1, -1
    # By its size alone, as tail recovery goes: a file of at most a header holds no record, whatever
    # its bytes (a damaged header is reported as such). Only where the page names the file before
    # it (or there is no page) is that file still the active one: where the page names the short
    # file, it is the active file cut inside its header, and a merge output before it is closed.
    short = head is not None and len(head) < rec.FILE_HEADER_SIZE
    if short and len(fids) > 1 and fids[-2][1] == 0 and (published is None or published[0] == fids[-2][0]):
        newest -= 1
        if published is None:
            rotated = newest  # (without a page, recovery closes it before completing the new file)
        return newest, rotated
    if published is not None:
        # Where the page names a file older than the newest (a rotation that died after creating the
        # next file; or the page lags files a power failure kept, which hold records), recovery closes
        # that one from its published end on, as the active file's end is recovered (its reserved
        # zeros, a torn write there, are no damage); it names none of the others.
        if (published[0], 0) in fids[:newest]:
            rotated = fids.index((published[0], 0))
    elif head is not None and not short and rotation_unpublished(fids, published):
        rotated = newest - 1
    return newest, rotated


#: The most a power failure takes from the data file a page names before newer files (see
#: :func:`trusted_page`): what no fsync made durable, the writes in flight (under ``sync="always"``) or
#: those of the last interval (under ``sync=<seconds>``). A published end further past the file's end is
#: a damaged tail word (a bit of its end flipped, from bit 26 up), whose zeros every reader would read.
MAX_LOSS = 64 << 20


def trusted_page(
    fids: list[FileId],
    head: bytes | None,
    published: tuple[int, int] | None,
    file_of: Callable[[int], tuple[Read, int]],
    intent: tuple[int, int] | None,
) -> tuple[int, int] | None:
    """The ``published`` tail of a STATE page, or None where it is damaged and every reader reads the
    store as without a page (``fids`` and ``head`` as for :func:`tail_files`; ``file_of(i)`` gives
    ``(read, size)`` of the data file ``fids[i]``). It is damaged where the file it names is the
    active one, or one older than the newest that recovery closes from its published end on (see
    :func:`tail_files`), and that end lies inside a sound record of the file: what follows it is not
    what a writer leaves (:func:`_may_start_a_write`), and following the file's sound records one
    after the other from its header (the unpublished rules first, for speed), one reaches past it.
    (A damaged record whose lengths the sound record right after it confirms is stepped over, and a
    damaged region up to where replay reads on after it, where that is not past the end.)
    No writer publishes such an end, and recovery would cut that record and every one after it off
    the file, all acknowledged (a damaged end, or a major id that damage turned into an older
    file's). Zeros at the end pass for reserved space only where the ``intent`` word equals the tail
    (or is unknown): where it lies past it, the file is read to make sure (a run of zeros inside a
    value is no rarity, and the end of a damaged tail that the intent vouches for, moved back, lands
    in one as readily).

    It is damaged too where it names a file that newer files follow with an end past that file's end
    (which every reader would read, and recovery fill, with zeros up to there: the file lost bytes,
    see :func:`filled_end`) and the page's ``intent`` word (read after the tail) does not vouch for
    its tail (:func:`vouches`): a bit flipped in the end (or in the major id, naming an older file)
    would have had every reader read a sound file as damaged, with up to a terabyte of zeros. So it is
    where that end lies more than :data:`MAX_LOSS` past the file's end, even where the intent vouches for
    it (a bit flipped in each word, or one in the tail while the intent names the next file's header):
    every reader would resynchronise over its zeros for hours. So it is where the file reaches that end
    but the intent word names an end in it more than :data:`MAX_LOSS` past the file's end: a writer grows
    the file over its write before it stores its intent, and a power failure takes no more than that from
    it, so a bit flipped in the intent word carried it there, and it vouches for nothing (with a bit
    flipped in the tail too, moving its end past a transaction a killed writer left without its COMMIT,
    that transaction would be applied). And it
    is damaged where it names a file that is gone, older than the active one (:func:`names_a_gone_file`).
    And wherever the ``intent`` word, known, does not vouch for the tail, which no writer leaves: a bit
    flipped in the end can move it past the data into the reserved zeros after it, past the records of
    a transaction a killed writer left there without its COMMIT, which would then be read as published,
    the zeros as a damaged header, and the open batch applied (rule 3)."""
    if published is None or names_a_gone_file(fids, published):
        return None
    if intent is not None and not vouches(intent, published):
        return None
    newest, rotated = tail_files(fids, head, published)
    named = (published[0], 0)
    if rotated >= 0 and fids[rotated] == named:
        i = rotated
    elif newest < len(fids) and fids[newest] == named:
        i = newest
    else:
        return published
    read, size = file_of(i)
    end = published[1]
    if i == rotated and end > size and (not vouches(intent, published) or end - size > MAX_LOSS):
        return None
    if intent is not None and intent[0] == published[0] and end <= size and intent[1] - size > MAX_LOSS:
        return None  # (an intent past the file a writer grew over it before storing it: damaged)
    if not rec.FILE_HEADER_SIZE < end < size:
        return published
    head = read(end, rec.HEADER_SIZE)
    if _inside_a_batch(read, end, size):
        return None
    if _may_start_a_write(head) and (head.strip(b"\0") or intent is None or intent == published):
        return published  # (a clean page, or a writer's record there: nothing more is read)
    # (Zeros at an end the intent word is past: where a writer died between storing its intent and writing,
    # or a bit flipped in the tail moved its end into a run of zeros inside a value.)
    pos, _ = _strict(read, rec.FILE_HEADER_SIZE, end)
    # (From the last boundary found, past the records of a batch whose COMMIT the end may cut, past a
    # damaged record whose lengths are confirmed, and past a damaged region to where replay reads on,
    # unless that is past the end: what lay at the end is then unknown.)
    while pos < end:
        if n := rec.sound_size(read, pos, size) or _confirmed_size(read, pos, size):
            pos += n
        elif (nxt := rec.resync(read, pos, size)) is not None and nxt <= end:
            pos = nxt
        elif _inside_an_open_batch(read, pos, end, size) or _zeros_after_an_open_batch(read, pos, end):
            return None
        else:
            break
    return None if pos > end else published


def _zeros_after_an_open_batch(read: Read, pos: int, end: int) -> bool:
    """Whether nothing but zeros lies from ``pos``, where following the records of a data file from its
    header stopped (no reading resumes after it before ``end``), to its published ``end``, and records of a
    batch without their COMMIT come before them (read from the header by the rules of the published part),
    where the page's intent word lies past that end (see :func:`trusted_page`). A writer publishes a batch
    with its COMMIT: either a power failure lost that COMMIT with what followed it, in a write that had not
    returned (``sync="always"`` fsyncs it before it returns, and any later fsync would have kept it), which,
    read as without the page, is the file's unfinished write, as good as applying it; or a bit flipped in
    the tail carried it past a transaction a killed writer left after the end, into the reserved zeros
    there, with one flipped in the intent word leaving it at or past that tail (so it vouches for it, by
    however few bits, where a flip beyond :data:`MAX_LOSS` is caught as past the file). Read with it, the
    zeros would be a damaged header and the open batch applied (rule 3), values never committed."""
    return (
        not read(pos, rec.HEADER_SIZE).strip(b"\0")
        and rec.only_zeros(read, pos, end)
        and _batch_records(read, rec.FILE_HEADER_SIZE, pos) > 0
    )


def _inside_an_open_batch(read: Read, pos: int, end: int, size: int) -> bool:
    """Whether the published ``end`` of a data file of ``size`` bytes lies inside the damaged record at
    ``pos``, reached from the file's header (no reading resumes after it before ``end``), of a batch open
    there: its lengths sound and inside the file, records of a batch without their COMMIT before it (read
    from the header by the rules of the published part), and no sound record between it and ``end``, where
    that COMMIT would lie had it been published. No writer publishes an end inside a record or a batch: a
    bit flipped in the tail moved it into a transaction a killed writer left after the end, whose records a
    power failure damaged, and its intent word vouches for it. Read with it, that record would be a damaged
    header and the batch applied (rule 3), returning values never committed."""
    framed = _framed(read, pos)
    if framed is None or not end < pos + framed[1] <= size:
        return False
    return _batch_records(read, rec.FILE_HEADER_SIZE, pos) > 0 and not rec.sound_within(read, pos + 1, end)


def _inside_a_batch(read: Read, end: int, size: int) -> bool:
    """Whether the published ``end`` of a data file of ``size`` bytes lies inside a batch, where the record
    there is a batch's or a COMMIT (what a writer leaves past its end only when it died in a batch or a
    transaction: this reads nothing more for the reserved zeros of a live store). A record's batch flag
    says so even where its type byte is damaged, and a damaged record without a key is a COMMIT (rule 1):
    the rest of the batch, its COMMIT and acknowledged records may follow that one damaged record, which
    recovery would cut with them. No writer publishes an
    end there (a batch is published with its COMMIT), and recovery would cut the batch, and every
    acknowledged record after it, off the file (damage to the tail word that left a record boundary).

    Read from ``end`` by the unpublished rules, what follows is either what a writer that died there
    leaves (records of its batch, the last perhaps torn, then zeros or the end of the file: nothing more is
    read) or not; where not, it does if, reading the file from its header by the rules of the published
    part, a batch is open at ``end``. And where ``k`` records of a batch read from ``end`` are followed by a
    COMMIT whose count ``n`` is larger (no writer leaves that after its end: a batch, or a transaction, is
    written whole after it, its COMMIT counting its own records), that COMMIT decides alone where damage
    stops the reading from the header before ``end``."""
    head = read(end, rec.HEADER_SIZE).ljust(rec.HEADER_SIZE, b"\0")
    _, rtype, flags, klen, _, _ = rec.HEADER.unpack(head)
    # (A damaged record without a key is a COMMIT, by rule 1; a sound one without a key is one of its type.)
    commit = rtype == rec.COMMIT or (not klen and head.strip(b"\0") and not rec.sound_size(read, end, size))
    if not commit and not flags & rec.FLAG_BATCH:
        return False  # (the common case, reserved zeros: nothing more is read)
    stop, at, kept = _stop_after(read, end, size)
    orphan = stop == "orphan commit" and kept == end
    if not orphan and (at >= size or may_be_torn(read, at, size)):
        return False  # (a writer's write that it died in, or none)
    before = _batch_records(read, rec.FILE_HEADER_SIZE, end)
    if before >= 0 or not orphan:
        return before > 0
    after = _batch_records(read, end, at)
    n: int = rec.COUNT.unpack(read(at + rec.HEADER_SIZE, 4))[0]
    return after >= 0 and n > after


def _stop_after(read: Read, end: int, size: int) -> tuple[str, int, int]:
    """Read from ``end`` to ``size`` by the unpublished rules: (why the reading stopped, "" where nothing
    stopped it; where the record that stopped it starts, ``size`` if none; where the data read ends)."""
    stop, at, kept = "", size, end
    for base, res in rec.scan_read(read, end, size, open_end=True):
        stop, kept = res.stop_reason or "", base + res.end
        at = base + res.stop_at if stop else size
    return stop, at, kept


def _batch_records(read: Read, pos: int, end: int) -> int:
    """How many records of a batch still open at ``end`` end the records read from ``pos`` up to ``end`` by
    the rules of the published part (a damaged record whose lengths are confirmed stepped over as rule 1
    has it), -1 where a damaged header stops them before it (see _inside_a_batch)."""
    last = deque(rec.scan_read(read, pos, end, trust_lengths=True), maxlen=1)
    if not last or (res := last[0][1]).stop_reason is None:
        return 0
    return len(res.pending or ()) if res.stop_reason == "uncommitted batch" else -1


def _framed(read: Read, pos: int) -> tuple[int, int] | None:
    """``(key length, size)`` that the record header at ``pos`` gives itself, whatever its checksum and
    type say (a damaged record's lengths may still be sound); None where no whole header is there, it is
    zeros (reserved space), or its lengths are past the format's bounds."""
    head = read(pos, rec.HEADER_SIZE)
    if len(head) < rec.HEADER_SIZE or not head.strip(b"\0"):
        return None
    _, _, _, klen, vlen, _ = rec.HEADER.unpack(head)
    if klen > rec.MAX_KEY_SIZE or vlen > rec.MAX_VALUE_SIZE:
        return None
    return klen, rec.HEADER_SIZE + klen + vlen


def _confirmed_size(read: Read, pos: int, size: int) -> int:
    """The size the damaged record at ``pos`` of a file of ``size`` bytes gives itself where its lengths
    are confirmed by a sound record right after it (rule 1 of the published part), else 0: a bit flipped
    in a record before a damaged page's end does not hide that the end lies inside a record."""
    framed = _framed(read, pos)
    if framed is None or pos + framed[1] > size:
        return 0
    n = framed[1]
    return n if rec.sound_size(read, pos + n, size) else 0


def names_a_gone_file(fids: list[FileId], published: tuple[int, int]) -> bool:
    """Whether the ``published`` tail of a STATE page names a data file the store does not hold, older
    than its newest data file, the active one (minor id 0): no writer leaves that (a rotation publishes
    the file it created, and a merge never removes the active file), so its major id is damaged (or the
    file the page named was deleted), and the page says nothing of where any file ends. Read with it,
    the file before a newest one that a rotation that died left holding at most a header would read as
    closed, its reserved zeros as damage that no merge gets past (for :func:`trusted_page`)."""
    return bool(fids) and fids[-1][1] == 0 and published[0] < fids[-1][0] and (published[0], 0) not in fids


#: How many times ``kvb check`` and ``kvb salvage`` list and read a store again where a merge in another
#: process removed a file they listed before they opened it (their listing may have run across its unlinks).
PASSES = 5


def page_and_files(
    store: str,
) -> tuple[tuple[int, int] | None, tuple[int, int] | None, list[FileId]]:
    """The STATE page's tail and intent words (:func:`~kv_backend.state.page_words`) and the data files of
    the store at ``store``, read so that they go together beside live writers, without the write lock
    (``kvb check``, ``kvb salvage``).

    The files are listed first, the page read after: every file listed but the newest was closed
    before a newer one was published, so only the file the page names (or the newest) may still end
    in reserved zeros (a rotation in flight). But a directory listing is no snapshot: a file made while
    it runs may be missing from it while one made after that file is listed (ext4 lists by the names'
    hashes: beside a writer rotating 4 KiB files, a few listings in a thousand list the newest file
    and not the one made just before it). The active file missed so, the next rotation's file listed
    and the page naming the active file (that rotation not yet published), the page named a file that
    is gone, older than the newest (:func:`names_a_gone_file`: a damaged page); published, the active
    file was a gap in the sequence of names (a file deleted, it said) and went unread. So where the
    listing misses a file of that sequence (:func:`~kv_backend.files.missing_data_files`), or the one
    the page names, older than the newest (the first of a store never merged, which the sequence does
    not tell missing), the files are listed again, after the page was read, and the files of that
    second listing older than the first's newest are added: all of them were made before the first
    listing ended, and the file the page names before it was read, so that the second listing holds
    them (but for those a merge removed meanwhile, older than the active file). A file missing from
    both is gone."""
    fids = list_data_files(store)
    published, intent = page_words(store)
    if missing_data_files(fids) or (published is not None and names_a_gone_file(fids, published)):
        newest = fids[-1]
        fids = sorted(set(fids).union(fid for fid in list_data_files(store) if fid < newest))
    return published, intent, fids


def vouches(intent: tuple[int, int] | None, published: tuple[int, int]) -> bool:
    """Whether the ``intent`` word of a STATE page (``(major, end)``, None if unknown) agrees with its
    tail ``published`` as writers leave them: equal; in the same file past it (a write in flight, or
    a writer that died in it); or the header's end of the next file (a rotation between its two
    stores). A damaged tail word rarely does (the intent lies in another word)."""
    if intent is None:
        return False
    return (intent[0] == published[0] and intent[1] >= published[1]) or intent == (
        published[0] + 1,
        rec.FILE_HEADER_SIZE,
    )


def _may_start_a_write(head: bytes) -> bool:
    """Whether ``head``, the bytes at a published end (up to a record header's), are what a writer
    leaves there: reserved zeros, or a record's header (a type of 1 to 3, flags of at most 1, lengths
    in bounds), complete or not. Bytes inside a record rarely are (for :func:`trusted_page`, which
    otherwise reads the file to make sure: a torn header may send it there too)."""
    fields: tuple[int, int, int, int, int, float] = rec.HEADER.unpack(head.ljust(rec.HEADER_SIZE, b"\0"))
    _, rtype, flags, klen, vlen, _ = fields
    if not rtype:
        return not head.strip(b"\0")
    return (
        rtype <= rec.COMMIT
        and flags <= rec.FLAG_BATCH
        and klen <= rec.MAX_KEY_SIZE
        and vlen <= rec.MAX_VALUE_SIZE
    )


def trusted_page_of(
    store: str, fids: list[FileId], published: tuple[int, int] | None, intent: tuple[int, int] | None
) -> tuple[int, int] | None:
    """:func:`trusted_page` of the data files ``fids`` of the store at ``store`` (an OSError if one
    cannot be read)."""
    if published is None:
        return None
    fds: list[int] = []

    def file_of(i: int) -> tuple[Read, int]:
        try:
            fds.append(os.open(os.path.join(store, data_name(fids[i])), os.O_RDONLY))
        except FileNotFoundError:
            return reader_of(b""), 0  # (a merge removed it since it was listed: nothing to go by)
        return rec.file_reader(fds[-1]), os.fstat(fds[-1]).st_size

    try:
        head = None
        if fids:
            read, size = file_of(len(fids) - 1)
            head = read(0, rec.FILE_HEADER_SIZE) if size <= rec.FILE_HEADER_SIZE else None
        return trusted_page(fids, head, published, file_of, intent)
    finally:
        for fd in fds:
            os.close(fd)


def holds_nothing(
    fids: list[FileId], i: int, newest: int, rotated: int, published: tuple[int, int] | None
) -> bool:
    """Whether the data file ``fids[i]``, shorter than a file header, holds nothing whatever its bytes
    (``newest`` and ``rotated`` from :func:`tail_files`): the active file or a newer one (a rotation
    that died before the header was whole, or the active file cut inside it: its end read from its
    bytes), without a ``published`` end the file a rotation that died did not close, and with one any
    file after the one it names (rotations that died after it). Recovery removes it or gives it its
    header. Any other such file was closed whole: it lost its records, and every reader reports it
    (docs/file-format.md); which keys they held cannot be known (a read of such a key finds the value
    it had before, or none), unless its hint file names them (their reads then raise CorruptionError)."""
    if published is not None and fids[i] > (published[0], 0) and fids[i][1] == 0:
        return True  # (never published: rotations that died after the page's file, see tail recovery)
    return fids[i][1] == 0 and (i >= newest or (i == rotated and published is None))


def filled_end(
    fids: list[FileId], i: int, newest: int, published: tuple[int, int] | None, size: int
) -> int | None:
    """The published end up to which every reader reads the data file ``fids[i]`` of ``size`` bytes as
    if zeros followed its bytes, None for a file read as it is. That is the file the ``published``
    tail names where a newer file follows it that tail recovery adopts (``i`` below ``newest``, from
    :func:`tail_files`, and no merge output newest), when it lost bytes below its published end
    (not down to inside its header: it then lost all its records, see :func:`holds_nothing`): a
    rotation that died had created the next file, so it was published whole up to there, and the
    records it lost were acknowledged. Cut at a record boundary, it would read as a sound file and
    the loss go unseen; recovery, which closes it, fills it with zeros up to there, and every reader
    reports them as damage (docs/file-format.md, "The file before the active one")."""
    end = page_end(published, fids[i])
    if end is not None and i < newest < len(fids) and rec.FILE_HEADER_SIZE <= size < end:
        return end
    return None


def zero_filled(read: Read, size: int, end: int) -> Read:
    """``read(offset, n)`` of a file of ``size`` bytes read as if zeros followed them up to ``end``
    (see :func:`filled_end`): fewer bytes only past ``end``. It tells where those zeros are (see
    :func:`kv_backend.record.data_from`): readers skip them unread."""

    def fill(offset: int, n: int) -> bytes:
        n = max(0, min(n, end - offset))
        got = read(offset, min(n, size - offset)) if offset < size else b""
        return got + bytes(n - len(got))

    return rec.zeros_past(fill, size, read)


def page_end(published: tuple[int, int] | None, fid: FileId) -> int | None:
    """The published end the ``published`` tail (``(major, end)`` of a STATE page, or None) gives the
    data file ``fid``: only the file it names has one (for :func:`tail_end`)."""
    return published[1] if published is not None and fid == (published[0], 0) else None


def tail_end(read: Read, size: int, page_end: int | None, *, closing: bool = False) -> int:
    """Where the published part of a data file of ``size`` bytes that may end in an unfinished write
    ends (what follows is read by the unpublished rules): the published end ``page_end`` where a
    page names the file and the file reaches it. A file shorter than that lost bytes: all of it was
    published when a rotation that died had created the next file (``closing``: recovery closes it
    whole, so a record cut at its end is damage), else it is the active file, whose end is read
    from its bytes as without a page (recovery rescans it). Without a page: :func:`end_without_page`.
    """
    if page_end is not None:
        if page_end <= size:
            return page_end
        if closing:
            return size
        return end_without_page(read, size)
    return end_without_page(read, size, closing=closing)


def closed_whole(closing: bool, published: tuple[int, int] | None, end: int, size: int) -> bool:
    """Whether the file a rotation that died did not finish ``closing``, without a ``published`` page,
    is read whole: its data ``end`` (:func:`end_without_page`) reaches its ``size``, so none of it can be
    an unfinished write, and recovery closes it as it is. A batch still open at its end is then a closed
    file's, which lost its COMMIT: damage (docs/file-format.md), never a torn write cut on next open.
    (With a page, see :func:`closed_at`.)"""
    return closing and published is None and end >= size


def closed_at(read: Read, closing: bool, published: tuple[int, int] | None, end: int, size: int) -> int:
    """Where recovery closes the file of ``size`` bytes a rotation that died did not finish ``closing``,
    which the ``published`` page names with its published ``end`` (:func:`tail_end`): at the end of the
    records it keeps past that end (:func:`kept_end`), everything after them cut (an unfinished write);
    -1 for any other file. Where it keeps none, what follows that end is what a writer that died there
    leaves (as :func:`trusted_page` judges it: nothing, reserved zeros, a torn write) and its published
    part ends in a batch without its COMMIT (:func:`open_batch_at`: no writer publishes such an end,
    damage moved the page's end back inside the batch, and the file lost the rest), at the start of that
    batch: the batch is cut with what follows it, an unfinished write as at the end of the active file,
    never applied and no damage. Read up to there, the file is a closed one (a batch still open at its
    end, where something else follows, is damage)."""
    if not closing or published is None or end > size:
        return -1
    if left_as_it_died(read, end, size) and (start := open_batch_at(read, end)) >= 0:
        return start
    return kept_end(read, end, size)


def left_as_it_died(read: Read, end: int, size: int) -> bool:
    """Whether what follows the published ``end`` of a data file of ``size`` bytes is what a writer that
    died there leaves, none of it kept: read by the unpublished rules, nothing, reserved zeros or a torn
    write (records of a batch before them, the last perhaps torn), not a COMMIT (see :func:`closed_at`).
    Not a damaged record with sound records after it: that is damage, and a batch open at ``end`` may be
    one acknowledged with its COMMIT among them, left for every reader to report."""
    stop, at, kept = _stop_after(read, end, size)
    return kept == end and stop != "orphan commit" and (at >= size or may_be_torn(read, at, size))


def open_batch_at(read: Read, end: int) -> int:
    """Where a batch without its COMMIT starts that ends the published part of a data file (up to ``end``)
    as replay reads it (the published rules, reading on past a damaged header at the next confirmed sound
    record), -1 if none does (see :func:`closed_at`)."""
    pos = rec.FILE_HEADER_SIZE
    while pos < end:
        base, res = pos, None
        for base, res in rec.scan_read(read, pos, end, trust_lengths=True):
            pos = base + res.end
        if res is None or res.stop_at < 0:
            return -1
        if res.stop_reason == "uncommitted batch":
            return pos
        nxt = rec.resync(read, base + res.stop_at, end)
        if nxt is None:
            return -1
        pos = nxt
    return -1


def end_without_page(read: Read, size: int, *, closing: bool = False) -> int:
    """Where the data of a file of ``size`` bytes that no published end bounds ends: that of the
    active file (:func:`data_end`), or of the file a rotation that died did not finish ``closing``,
    which ends there only if what follows can be an unfinished write (reserved zeros, one torn
    write: :func:`may_be_torn`), else at its end (docs/file-format.md, "The file before the active
    one"): anything else after it belongs to the published part."""
    end = data_end(read, rec.FILE_HEADER_SIZE, size)
    if not closing or end == size or may_be_torn(read, end, size) or unfinished_batch(read, end, size):
        return end
    return size


def unfinished_batch(read: Read, pos: int, size: int) -> bool:
    """Whether what starts at ``pos`` in a data file of ``size`` bytes, where its data ends, is a transaction
    a writer died in: up to reserved zeros that run to the end of the file, records of a batch that check
    out, without their COMMIT, and no other record that checks out (no COMMIT, none without the batch
    flag, also where the lengths of bytes that are no record lead: :func:`_commit_by_lengths`), with
    bytes that are no record around them (one torn at the end, or sectors of the transaction
    that a power failure lost while it kept later ones); or records of a batch every one of which a power
    failure damaged, of the dying writer's transaction or batch (:func:`_damaged_batch`). A killed writer's
    rotation cuts it (tail recovery)
    before it closes the file, but a power failure can lose that cut with the page, and keep the file's
    reserved zeros and the new file shorter than its header: it is the unfinished write of the file a
    rotation that died did not close (see :func:`end_without_page`), never applied. (Records that
    ``sync="always"`` acknowledged were fsynced before the rotation began, and a power failure damages no
    fsynced byte. A batch that reaches the end of the file lost its COMMIT with what followed: the rotation
    had cut the reserved zeros, so the file was closed.)"""
    zeros = rec.zeros_start(read, pos, size)
    start, found = pos, False
    while pos < zeros:
        if n := rec.sound_size(read, pos, size):
            _, rtype, flags, _, _, _ = rec.HEADER.unpack(read(pos, rec.HEADER_SIZE))
            if rtype == rec.COMMIT or not flags & rec.FLAG_BATCH:
                return False
            found, pos = True, pos + n
        elif _commit_by_lengths(read, pos, zeros, size):
            return False
        elif (nxt := rec.resync(read, pos, size)) is not None and nxt < zeros:
            pos = nxt
        else:
            break
    return zeros < size and (found or _damaged_batch(read, start, zeros, size))


def _commit_by_lengths(read: Read, pos: int, zeros: int, size: int) -> bool:
    """Whether stepping from ``pos`` (bytes that are no record, before ``zeros``) over damaged records by
    their sound lengths reaches a sound record, so confirming those lengths (rule 1 of the published part),
    and a COMMIT is among what it reached: a sound COMMIT or record without the batch flag, or a damaged
    record without a key (rule 1: a COMMIT). A dying writer writes a transaction's COMMIT last, so the
    batch before it committed: damage, not the unfinished write (the COMMIT itself may be no confirmed
    record, followed by a sector of the next transaction the power failure kept, and reading would not
    resume there)."""
    keyless = False
    while pos < zeros:
        framed = _framed(read, pos)
        if framed is None:
            return False
        keyless = keyless or framed[0] == 0
        pos += framed[1]
        if pos < zeros and rec.sound_size(read, pos, size):
            _, rtype, flags, _, _, _ = rec.HEADER.unpack(read(pos, rec.HEADER_SIZE))
            return keyless or rtype == rec.COMMIT or not flags & rec.FLAG_BATCH
    return False


def _damaged_batch(read: Read, pos: int, zeros: int, size: int) -> bool:
    """Whether, from ``pos`` to ``zeros``, where reserved zeros start that run to the end of a data file of
    ``size`` bytes, lie records of a batch none of which checks out (see :func:`unfinished_batch`): two or
    more with the batch flag and sound lengths, each ending where the next starts, the last at or past
    ``zeros`` (its value may end in zeros), as a power failure leaves a transaction or a batch it lost a
    sector of each record of (an intact header, part of the value lost). Junk, lengths out of bounds, a
    record without the flag: no. (One such record is a torn last write: :func:`may_be_torn`.)"""
    count = 0
    while pos < zeros:
        head = read(pos, rec.HEADER_SIZE)
        if len(head) < rec.HEADER_SIZE:
            return False
        _, _, flags, klen, vlen, _ = rec.HEADER.unpack(head)
        if not flags & rec.FLAG_BATCH or klen > rec.MAX_KEY_SIZE or vlen > rec.MAX_VALUE_SIZE:
            return False
        pos += rec.HEADER_SIZE + klen + vlen
        count += 1
    return count > 1 and pos <= size


def data_end(read: Read, start: int, size: int) -> int:
    """Where the data of a file of ``size`` bytes (read with ``read(offset, n)``) ends, reading it from
    ``start`` (a record boundary) with no published end to go by.

    The unpublished rules read it first; where they stop, records with sound lengths are stepped
    over one by one, and where sound records or committed batches follow, the data goes on to the
    end of the last of them. Where nothing more is found that way, the record where reading
    stopped is the file's unfinished last write if it can be one (:func:`may_be_torn`), and so is a
    transaction a writer died in, some of its sectors perhaps lost (:func:`unfinished_batch`): the data
    ends there. Otherwise it is damage: the published rules 1 and 2 read on from the end found so
    far (a damaged record whose lengths a sound record confirms is skipped, a batch holding one
    commits with its COMMIT), and where they stop too, reading resumes at the next confirmed sound
    record (:func:`~kv_backend.record.resync`, the end of the file being the region's end); all of
    this applies again from there.
    """
    best, origin = _strict(read, start, size)
    pos = best
    while True:
        while pos < size:
            framed = _framed(read, pos)  # (None: the end of the file, reserved zeros, or no lengths)
            if framed is None or pos + framed[1] > size:
                break
            nxt = pos + framed[1]
            pos, stop = _strict(read, nxt, size, chunk=1 << 16)
            if pos > nxt:
                best, origin = pos, stop
            else:
                pos = _next_step(read, nxt, stop)
        if origin >= size or may_be_torn(read, origin, size) or unfinished_batch(read, best, size):
            return best  # (a torn last write, or a transaction a power failure tore: see unfinished_batch)
        # Damage, not a torn write: read on by the published rules 1 and 2 (a damaged record whose
        # lengths something sound after it confirms is skipped, and its batch commits with its
        # COMMIT); where they stop too, at a damaged header, by rule 3.
        pos, stop = _strict(read, best, size, trust_lengths=True)
        if pos > best:
            best, origin = pos, stop  # past the old origin, so this loop ends
            continue
        found = rec.resync(read, origin, size)
        if found is None:
            return best
        pos, origin = _strict(read, found, size)  # origin: past ``found``, so this loop ends
        if pos > found:
            best = pos


def kept_end(read: Read, end: int, size: int) -> int:
    """Where the data of a data file of ``size`` bytes ends past its published ``end``, where what follows
    that end is kept as tail recovery keeps it: the end of the last complete record or committed batch
    read from there by the unpublished rules (docs/file-format.md, "The end of the active file")."""
    return _strict(read, end, size)[0]


def _next_step(read: Read, nxt: int, stop: int) -> int:
    """The record boundary to step from after a strict reading from ``nxt`` found nothing, up to where
    it stopped at ``stop``: so the records in between are all the open batch's (a plain record
    or a COMMIT closing it would have been found), and reading from any boundary among them stops
    at ``stop`` as well, finding nothing, unless ``stop`` is a COMMIT of count ``n`` and the
    boundary is the one ``n`` records before it. Stepping over each of them in turn (reading to
    ``stop`` from every one) took time quadratic in the size of a transaction a crash cut short."""
    bounds = []
    p = nxt
    while p < stop:
        bounds.append(p)
        head = read(p, rec.HEADER_SIZE)
        if len(head) < rec.HEADER_SIZE:
            return nxt
        _, _, _, klen, vlen, _ = rec.HEADER.unpack(head)
        p += rec.HEADER_SIZE + klen + vlen
    if p != stop or not bounds:
        return nxt
    head = read(stop, rec.HEADER_SIZE + 4)
    n = -1
    if len(head) == rec.HEADER_SIZE + 4:
        crc, rtype, _, klen, vlen, _ = rec.HEADER.unpack_from(head)
        if rtype == rec.COMMIT and klen == 0 and vlen == 4 and rec.crc32(head[4:]) == crc:
            n = rec.COUNT.unpack_from(head, rec.HEADER_SIZE)[0]
    return bounds[len(bounds) - n - 1] if 0 < n < len(bounds) else bounds[-1]


def _strict(
    read: Read, start: int, size: int, chunk: int = rec.SCAN_CHUNK, *, trust_lengths: bool = False
) -> tuple[int, int]:
    """Read from ``start`` by the unpublished rules (with ``trust_lengths``, by the published rules 1
    and 2, the end of the file confirming nothing): (the end of the last complete record or
    committed batch, where the record that stopped the reading starts; ``size`` if nothing did)."""
    end, stop = start, size
    scans = rec.scan_read(read, start, size, chunk=chunk, trust_lengths=trust_lengths, open_end=True)
    for base, res in scans:
        end = base + res.end
        stop = base + res.stop_at if res.stop_at >= 0 else size
    return end, stop


def may_be_torn(read: Read, pos: int, size: int) -> bool:
    """Whether what starts at ``pos`` can be a writer's unfinished last write: reserved zeros up to
    the end of the file, or one record whose lengths are sound and point inside the file followed
    by nothing but zeros (its first bytes reached the file, the rest is still zeros)."""
    head = read(pos, rec.HEADER_SIZE)
    if len(head) == rec.HEADER_SIZE and head.strip(b"\0"):
        _, _, _, klen, vlen, _ = rec.HEADER.unpack(head)
        pos += rec.HEADER_SIZE + klen + vlen
        if klen > rec.MAX_KEY_SIZE or vlen > rec.MAX_VALUE_SIZE or pos > size:
            return False
    return rec.only_zeros(read, pos, size)
