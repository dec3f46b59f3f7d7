"""``kvb check`` of a ``KVB_FORMAT`` whose lines end in a carriage return alone, or in both
(``\\r\\n``), or in a mix: every reader of the file (an open's check, the store's id, a backup's record
of it) reads it as ``open`` does by default, a line feed, a carriage return and the pair of them each
ending a line. ``kvb check`` split it at line feeds alone: it passed a lone-CR file whose second line
is no id (the store has none) or is followed by lines readers ignore, and reported a sound id followed,
after a lone CR, by another line as a damaged second line. It now judges the file as the readers read
it, and its repair advice (a backup's too) first turns such line ends into line feeds, which sed's line
numbers count."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import one_key_store

from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.errors import CorruptionError
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT
from kv_backend.store_id import format_repair, read_store_id

ID = "0123456789abcdef0123456789abcdef"
H = FORMAT_TEXT.rstrip("\n").encode()  # the first line, 26 bytes, without its end
L = f"id {ID}".encode()  # the id line, 35 bytes, without its end
TO_LINE_FEEDS = "sed -i -z -E 's/\\r\\n?/\\n/g'"

#: (format file, offset of the damage, its line as readers count, the cut its repair makes, whether the
#: repair turns lone carriage returns into line feeds first, the id readers take)
DAMAGED = {
    "CR: a second line that is no id": (H + b"\rgarbage\r", 27, 2, "sed -i '2,$d'", True, None),
    "CR: a line after a sound id": (H + b"\r" + L + b"\rjunk", 63, 3, "sed -i '3,$d'", True, ID),
    "CRLF: a line after a sound id": (
        H + b"\r\n" + L + b"\r\ngarbage\r\n",
        65,
        3,
        "sed -i '3,$d'",
        False,
        ID,
    ),
    "CRLF, then a CR after the id": (H + b"\r\n" + L + b"\rjunk\r\n", 64, 3, "sed -i '3,$d'", True, ID),
    "LF, then a CR after the id": (H + b"\n" + L + b"\rjunk\n", 63, 3, "sed -i '3,$d'", True, ID),
    "CR CR LF: an empty second line, the id on the third": (
        H + b"\r\r\n" + L + b"\n",
        29,
        3,
        "sed -i '2,$d'",
        True,
        None,
    ),
    "CR: not UTF-8 on the id line": (H + b"\rid \xff\r", 30, 2, "sed -i '2,$d'", True, None),
}

#: format files readers take whole, and the id they read
SOUND = {
    "CR with an id": (H + b"\r" + L + b"\r", ID),
    "CR, no last line end": (H + b"\r" + L, ID),
    "CR, the first line alone": (H + b"\r", None),
    "CR, blank lines after the id": (H + b"\r" + L + b"\r \r\r", ID),
    "CRLF with an id": (H + b"\r\n" + L + b"\r\n", ID),
    "CRLF, then CR": (H + b"\r\n" + L + b"\r", ID),
    "CR, then CRLF": (H + b"\r" + L + b"\r\n", ID),
    "LF, then CR": (H + b"\n" + L + b"\r", ID),
}


@pytest.mark.parametrize("case", SOUND)
def test_a_file_readers_take_whole_is_no_problem(tmp_path, case):
    data, store_id = SOUND[case]
    store = one_key_store(tmp_path, data)
    assert read_store_id(store) == store_id
    report = check(store)
    assert report.ok and report.problems == [] and report.records == 1, report.problems


@pytest.mark.parametrize("case", DAMAGED)
def test_damage_as_readers_read_the_file_is_a_problem(tmp_path, case):
    data, offset, line, cut, to_line_feeds, store_id = DAMAGED[case]
    store = one_key_store(tmp_path, data)
    if b"\xff" not in data:
        assert read_store_id(store) == store_id
    report = check(store)
    marker = os.path.join(store, FORMAT_FILE)
    assert not report.ok
    assert [(p.path, p.offset) for p in report.problems] == [(marker, offset)], report.problems
    what = report.problems[0].what
    advice = format_repair(marker, data, offset)
    assert advice in what and cut in advice, what
    assert (TO_LINE_FEEDS in advice) == to_line_feeds, advice
    if to_line_feeds:
        assert advice.index(TO_LINE_FEEDS) < advice.index(cut), advice  # (first)
    if store_id is not None:
        assert f"its id line is sound (id {store_id})" in advice, advice
    if b"\xff" in data:
        assert f"(0xff at byte {offset}, on its line {line})" in what, what
    elif line > 2:
        assert f"lines after the second that are not blank (from line {line} on" in what, what
    else:
        assert "a second line that is not the store's id" in what and "'garbage'" in what, what


@pytest.mark.skipif(shutil.which("sed") is None, reason="needs sed")
@pytest.mark.parametrize("case", DAMAGED)
def test_the_repair_advised_makes_the_file_sound(tmp_path, case):
    data, _, _, cut, to_line_feeds, store_id = DAMAGED[case]
    store = one_key_store(tmp_path, data)
    marker = os.path.join(store, FORMAT_FILE)
    for command in ([TO_LINE_FEEDS] if to_line_feeds else []) + [cut]:
        subprocess.run(f"{command} {marker}", shell=True, check=True)
    report = check(store)
    assert report.ok, (report.problems, Path(marker).read_bytes())
    assert read_store_id(store) == store_id


def test_a_backups_error_gives_the_same_advice(tmp_path):
    data, offset, *_ = DAMAGED["CR: not UTF-8 on the id line"]
    store = one_key_store(tmp_path, data)
    with pytest.raises(CorruptionError) as info:
        backup_store(store, str(tmp_path / "bk"))
    message = str(info.value)
    assert f"(0xff at byte {offset}, on its line 2)" in message, message
    assert (
        format_repair(os.path.join(store, FORMAT_FILE), data, offset) in message and TO_LINE_FEEDS in message
    )


def test_a_backup_records_the_file_as_readers_read_it(tmp_path):
    store = one_key_store(tmp_path, H + b"\r" + L + b"\r\n")
    backup_store(store, str(tmp_path / "bk"))
    restore(str(tmp_path / "bk"), str(tmp_path / "r"))
    assert (tmp_path / "r" / FORMAT_FILE).read_bytes() == H + b"\n" + L + b"\n"
    assert check(str(tmp_path / "r")).ok
