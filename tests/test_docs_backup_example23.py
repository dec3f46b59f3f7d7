"""docs/backup.md's first example runs as written, on a local URL in place of its S3 bucket, and
prints what its comments show.

tests/test_docs_examples10.py runs the Python examples that need no server or cloud account; this
one names an S3 bucket, so it went unrun: its output comments (a report's line, a listing's line)
and its calls (restore by name, prune) are checked here against a ``file://`` URL.
"""

from __future__ import annotations

import contextlib
import io
import re

from test_docs_examples10 import ROOT, _blocks

from kv_backend import DB

BUCKET = "s3://my-bucket/kv-backups"
NAMED = "20261124T120000.004Z"  # the backup the example restores by name
NAME = r"\d{8}T\d{6}\.\d{3}Z"
SIZE = r"\d+(\.\d)? (B|KiB|MiB|GiB)"


def _example() -> str:
    """The block of docs/backup.md that backs up, lists, restores and prunes."""
    (code,) = [code for _, code in _blocks(ROOT / "docs" / "backup.md", "python") if "prune_backups(" in code]
    return code


def test_backup_md_example_runs_and_prints_what_its_comments_show(tmp_path, monkeypatch):
    code = _example()
    assert BUCKET in code and NAMED in code
    url = (tmp_path / "bucket").as_uri()
    code = code.replace(BUCKET, url)
    code = re.sub(
        r"([\"'])/(?:var/lib|srv|tmp)/([^\"']*)\1",
        lambda m: repr(str(tmp_path / m.group(2).replace("/", "_"))),
        code,
    )
    monkeypatch.chdir(tmp_path)
    # the store the example opens, holding a backup of the name it restores
    with DB(str(tmp_path / "app_kv")) as db:
        db.put(b"k", b"yesterday")
        db.backup(url, name=NAMED)
        db.put(b"k", b"today")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/backup.md", "exec"), {"__name__": "__doc_example__"})
    counts, report, *listing, verified = out.getvalue().splitlines()
    assert re.fullmatch(r"\d+ \d+ \d+", counts)
    # backup 20261125T120000.123Z complete at s3://...: 2 files copied (8.1 MiB), 14 unchanged ...
    assert re.fullmatch(
        rf"backup {NAME} complete at {re.escape(url)}: \d+ files copied \({SIZE}\), \d+ unchanged .*", report
    )
    # 20261125T120000.123Z  2026-11-25 12:00:00 UTC  16 files  1.9 GiB  from /var/lib/app/kv
    assert len(listing) == 2
    source = re.escape(str(tmp_path / "app_kv"))
    for line in listing:
        assert re.fullmatch(
            rf"{NAME}  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC  \d+ files  {SIZE}  from {source}", line
        )
    # True ['20261125T120000.123Z  ok', ...]: both backups (the prune keeps 7), read back and sound
    assert re.fullmatch(rf"True \['{NAME}  ok', '{NAME}  ok'\]", verified), verified
    with DB(str(tmp_path / "app_kv-restored"), read_only=True) as newest:
        assert newest[b"k"] == b"today"
    with DB(str(tmp_path / "yesterday"), read_only=True) as named:
        assert named[b"k"] == b"yesterday"
