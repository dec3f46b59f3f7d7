"""``kvb check`` of a store whose format file (``KVB_FORMAT``) is damaged: bytes that are not UTF-8, a
second line that is neither empty nor ``id`` and 32 lowercase hex digits, lines after it that are not
blank. It said the store was fine, and the operator found out at the next backup (which fails on bytes
that are not UTF-8). It is a problem now, with the backup error's repair advice (one text, both use it),
in the text and JSON reports, exit 1; the data files are checked as usual."""

from __future__ import annotations

import json
import os

import pytest
from helpers import data_files, one_key_store
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import record
from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.errors import CorruptionError
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT
from kv_backend.store_id import format_repair

ID = "0123456789abcdef0123456789abcdef"
HEAD = FORMAT_TEXT.encode()  # its first line, 27 bytes with its line feed
ID_LINE = f"id {ID}\n".encode()

#: (format file, offset of the damage, the sed command its repair starts with)
DAMAGED = {
    "not UTF-8 on the id line": (HEAD + b"id \xff\xfe\n", 30, "sed -i '2,$d'"),
    "not UTF-8 after a sound id": (HEAD + ID_LINE + b"ok\xff\n", 65, "sed -i '3,$d'"),
    "second line not an id": (HEAD + b"id 0123\n", 27, "sed -i '2,$d'"),
    "second line in upper case": (HEAD + f"id {ID.upper()}\n".encode(), 27, "sed -i '2,$d'"),
    "a line after a sound id": (HEAD + ID_LINE + b"garbage\n", 63, "sed -i '3,$d'"),
    "zeros after a sound id": (HEAD + ID_LINE + b"\0" * 100, 63, "sed -i '3,$d'"),
    "a line after an empty second line": (HEAD + b"\n" + ID_LINE, 28, "sed -i '2,$d'"),
}

SOUND = {
    "first line alone": HEAD,
    "with an id": HEAD + ID_LINE,
    "with an id, no last line feed": HEAD + ID_LINE[:-1],
    "with an id and CRLF": FORMAT_TEXT.encode().replace(b"\n", b"\r\n") + ID_LINE.replace(b"\n", b"\r\n"),
    "an empty second line": HEAD + b"\n",
    "blank lines after the id": HEAD + ID_LINE + b"\n \n",
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_format_file_is_a_problem_and_the_data_is_checked(tmp_path, case):
    data, offset, sed = DAMAGED[case]
    store = one_key_store(tmp_path, data)
    report = check(store)
    marker = os.path.join(store, FORMAT_FILE)
    assert not report.ok
    assert [(p.path, p.offset) for p in report.problems] == [(marker, offset)], report.problems
    what = report.problems[0].what
    assert sed in what and format_repair(marker, data, offset) in what, what
    assert (report.files, report.records) == (1, 1)  # (the data checked as usual)


@pytest.mark.parametrize("case", SOUND)
def test_a_sound_format_file_is_no_problem(tmp_path, case):
    report = check(one_key_store(tmp_path, SOUND[case]))
    assert report.ok and report.problems == [] and report.records == 1, report.problems


def test_kvb_check_reports_it_with_the_backup_errors_repair_advice(tmp_path, capsys):
    data = HEAD + b"id \xff\xfe\n"
    store = one_key_store(tmp_path, data)
    marker = os.path.join(store, FORMAT_FILE)
    advice = format_repair(marker, data, 30)
    with pytest.raises(CorruptionError) as info:
        backup_store(store, str(tmp_path / "bk"))
    assert advice in str(info.value)  # (the one text, in both)

    code, out, err = run(capsys, "check", store)
    assert code == 1, (out, err)
    assert f"DAMAGED: {marker} @ 30: " in out and advice in out, out
    assert "1 files, 1 records" in out and "ok: no damaged records" not in out, out
    assert "1 damaged spot(s)" in out and "restore the affected keys" not in out, out

    code, out, err = run(capsys, "check", store, "--json")
    assert code == 1, (out, err)
    doc = json.loads(out)
    assert (doc["ok"], doc["damaged"], doc["records"]) == (False, 1, 1)
    [problem] = doc["problems"]
    assert (problem["file"], problem["offset"]) == (FORMAT_FILE, 30) and advice in problem["what"], problem


def test_damaged_records_and_format_file_are_both_reported(tmp_path, capsys):
    store = one_key_store(tmp_path, HEAD + ID_LINE + b"garbage\n")
    path = data_files(store)[0]
    with open(path, "r+b") as f:  # (the record's key byte: a checksum mismatch)
        f.seek(record.FILE_HEADER_SIZE + record.HEADER_SIZE)
        f.write(b"K")
    code, out, _ = run(capsys, "check", store)
    assert code == 1
    assert f"DAMAGED: {os.path.join(store, FORMAT_FILE)} @ 63: " in out
    assert f"DAMAGED: {path} @ {record.FILE_HEADER_SIZE}: checksum mismatch" in out
    assert "2 damaged spot(s)" in out and "restore the affected keys from a backup" in out, out


def test_a_restore_of_a_backup_recording_an_odd_second_line_still_succeeds(tmp_path):
    """A restore checks the copy it builds (check_kept): the format file the backup recorded, which a
    backup takes as it is where it is text, is not the data it checks."""
    store = one_key_store(tmp_path, HEAD + b"something else\n")
    url = str(tmp_path / "bk")
    backup_store(store, url)
    restore(url, str(tmp_path / "r"))
    assert not check(store).ok and check(str(tmp_path / "r")).problems[0].offset == 27
