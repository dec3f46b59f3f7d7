"""``kvb http --workers N``: one rule for the number of workers, restarts backed off in a crash loop,
and SIGHUP's graceful reload (real processes where servers run)."""

from __future__ import annotations

import pytest

from kv_backend.cli import build_parser
from kv_backend.errors import ConfigurationError

# (values, and whether they are a number of workers)
COUNTS = [("1", 1), ("4", 4), (" 3 ", 3), ("+2", 2), ("0", None), ("-1", None), ("two", None), ("1.5", None)]


def _from_cli(value: str, capsys: pytest.CaptureFixture[str]) -> int | str:
    try:
        args = build_parser().parse_args(["http", "--dir", "d", f"--workers={value}"])
    except SystemExit as exc:
        assert exc.code == 2
        return capsys.readouterr().err.splitlines()[-1]
    return int(args.workers)


def _from_env(value: str, monkeypatch: pytest.MonkeyPatch) -> int | str:
    from kv_backend.http.server import _env_workers

    monkeypatch.setenv("KVB_HTTP_WORKERS", value)
    try:
        return _env_workers()
    except ConfigurationError as exc:
        return str(exc)


@pytest.mark.parametrize(("value", "count"), COUNTS)
def test_the_option_the_variable_and_serve_take_the_same_counts(value, count, capsys, monkeypatch):
    from kv_backend.server import worker_count

    cli, env = _from_cli(value, capsys), _from_env(value, monkeypatch)
    rule = f"must be a whole number of processes >= 1, not {value!r}"
    if count is None:
        with pytest.raises(ValueError, match="^" + rule.replace("+", r"\+").replace(".", r"\.") + "$"):
            worker_count(value)
        assert cli.endswith(f"argument --workers: {rule}")  # (argparse's usage error, exit 2)
        assert env == f"KVB_HTTP_WORKERS {rule}"  # (ConfigurationError: kvb's one line, exit 2)
    else:
        assert worker_count(value) == cli == env == count


def test_serve_says_the_same_rule_for_its_workers_argument(tmp_path):
    from kv_backend.http import serve

    for bad in (0, -1, True, "2", 1.0):
        with pytest.raises(ConfigurationError) as info:
            serve(tmp_path / "store", port=0, workers=bad)  # type: ignore[arg-type]
        assert str(info.value) == f"workers must be a whole number of processes >= 1, not {bad!r}"
    assert not (tmp_path / "store").exists()
