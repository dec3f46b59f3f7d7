"""benchmarks/bench_backup.py --verify-rate, the figures docs/backup.md quotes for a verify of a backup
against a restore of it: it runs (on a small store here) and prints both."""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_verify_rate_prints_a_verify_and_a_restore_of_the_same_backup(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spec = importlib.util.spec_from_file_location("bench_backup31", ROOT / "benchmarks" / "bench_backup.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.verify_rate(target=300_000)
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (verify \(kvb backups --verify\)|restore) \| (\d+\.\d\d) \| (\d+) \|$", out, re.M)
    assert [op for op, _, _ in rows] == ["verify (kvb backups --verify)", "restore"], out
    assert list(tmp_path.iterdir()) == []  # its store, backup and restored copies are removed
    assert "`benchmarks/bench_backup.py --verify-rate`" in (ROOT / "docs" / "backup.md").read_text()
