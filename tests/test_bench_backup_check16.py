"""benchmarks/bench_backup.py --check-rate, the figure docs/backup.md quotes for the record check a backup
runs on the files it sends: it runs (on a small store here) and prints a rate for each value size."""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_check_rate_prints_seconds_per_50_mb_for_each_value_size(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spec = importlib.util.spec_from_file_location("bench_backup16", ROOT / "benchmarks" / "bench_backup.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.check_rate(target=400_000)
    out = capsys.readouterr().out
    rows = re.findall(r"^\| ([\d,]+) B \| ([\d,]+) \| \d+ \| (\d+\.\d\d) \|$", out, re.M)
    assert [size for size, _, _ in rows] == ["60", "1,024", "4,096"], out
    assert all(int(n.replace(",", "")) > 0 and float(rate) > 0 for _, n, rate in rows), out
    assert list(tmp_path.iterdir()) == []  # its stores are removed
    assert "`benchmarks/bench_backup.py --check-rate`" in (ROOT / "docs" / "backup.md").read_text()
