"""Checks of statements that docs/*.md make, found wrong in a review of the session's docs changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kv_backend import DB, record
from kv_backend.check import check
from kv_backend.cli import main
from kv_backend.structures import Structures


def test_sintercard_takes_the_names_as_a_list(tmp_path: Path) -> None:
    """docs/redis.md: ``sintercard`` takes the names as a list (as ``sinter`` and the other set
    commands on several keys do), as well as one name an argument."""
    s = Structures(tmp_path / "db")
    try:
        s.sadd("s1", "a", "b", "c")
        s.sadd("s2", "b", "c")
        assert s.sintercard(["s1", "s2"]) == 2
        assert s.sintercard(["s1", "s2"], limit=1) == 1
        assert s.sintercard("s1", "s2") == 2
    finally:
        s.close()


def test_reading_resumes_inside_the_damaged_header() -> None:
    """docs/file-format.md, rule 3: reading resumes at the first offset after the damaged header's
    first byte, so a sound record that starts inside the header's 22 bytes (5 bytes inserted
    before it) is found there, not lost."""
    first = record.encode(record.PUT, b"k1", b"v1")
    rest = record.encode(record.PUT, b"k2", b"v2") + record.encode(record.PUT, b"k3", b"v3")
    buf = first + b"\xff" * 5 + rest
    pos = len(first)

    def read(offset: int, n: int) -> bytes:
        return buf[offset : offset + n]

    assert record.resync(read, pos, len(buf)) == pos + 5 < pos + record.HEADER_SIZE


def test_check_reports_a_zeroed_header_in_a_closed_file(tmp_path: Path) -> None:
    """docs/engine.md: a header of zeros inside a closed file (not the end of its data there) is a
    damaged header that ``kvb check`` reports, reading on at the next sound record."""
    path = tmp_path / "db"
    db = DB(path, max_file_size=4096)
    for i in range(60):
        db[b"k%02d" % i] = b"x" * 100
    db.close()
    data = path / "0000000001-000.data"
    buf = bytearray(data.read_bytes())
    size = record.HEADER_SIZE + 3 + 100
    offset = record.FILE_HEADER_SIZE + 2 * size
    buf[offset : offset + record.HEADER_SIZE] = bytes(record.HEADER_SIZE)
    data.write_bytes(bytes(buf))
    report = check(str(path))
    assert not report.ok
    assert [(p.path, p.offset) for p in report.problems] == [(str(data), offset)]


def test_backups_json_of_a_damaged_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/backup.md: in ``kvb backups URL --json`` a damaged manifest has ``created``,
    ``created_utc``, ``files``, ``bytes`` and ``source`` null, comes after the sound ones, and the
    exit status is 1, as without --json."""
    db = DB(tmp_path / "db")
    db[b"a"] = b"1"
    db.backup(str(tmp_path / "bk"), name="good")
    db.close()
    (tmp_path / "bk" / "backups" / "a-bad.json").write_text('{"x":')
    assert main(["backups", str(tmp_path / "bk"), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    good, bad = out["backups"]
    assert (good["name"], good["ok"], bad["name"], bad["ok"]) == ("good", True, "a-bad", False)
    assert isinstance(good["created"], float) and good["source"] == str(tmp_path / "db")
    assert [bad[k] for k in ("created", "created_utc", "files", "bytes", "source")] == [None] * 5
    assert bad["error"]
