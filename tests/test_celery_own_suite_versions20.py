"""benchmarks/celery_own_suite.py on Celery 5.3: the failures it expects are that line's, and the
suite's side-effect Redis is the broker's server.

On Celery 5.3 the script exited 1: its list of the tests that fail with Celery's own redis:// result
backend too was Celery 5.7's, and Celery 5.3's suite reached the Redis that records side effects on
port 6379 whatever REDIS_PORT said, so every test using it failed ('Connection refused'), on redis://
as on kvb://.
"""

from __future__ import annotations

import os
import sys

import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import celery_own_suite  # noqa: E402
from test_celery_own_suite_unpack19 import _sdist  # noqa: E402

CONFTEST_5_3 = (
    "import os\n\n\n"
    "def get_redis_connection():\n"
    "    from redis import StrictRedis\n"
    "    return StrictRedis(host=os.environ.get('REDIS_HOST'))\n"
)


@pytest.mark.parametrize(
    ("version", "line"),
    [
        ("5.3.6", (5, 3)),
        ("5.7.0", (5, 7)),
        ("5.7.1rc1", (5, 7)),
        ("5.5.2", (5, 3)),
        ("6.0.0", (5, 7)),
        ("5.2.7", (5, 3)),
    ],
)
def test_the_known_failures_are_those_of_the_release_line(version, line):
    chosen, known = celery_own_suite.known_failures(version)
    assert chosen == line and known is celery_own_suite.KNOWN_FAILURES[line]


def test_each_line_has_its_own_list():
    lists = celery_own_suite.KNOWN_FAILURES
    assert {(5, 3), (5, 7)} <= set(lists) and set(lists) == set(celery_own_suite.KVB_ONLY)
    assert lists[(5, 3)] != lists[(5, 7)]
    for known in lists.values():
        assert all(node.startswith("t/integration/test_") and "::" in node for node in known)
        assert all(reason for reason in known.values())


#: What failed on kvb:// with Celery 5.3.6 (test_tasks.py, test_canvas.py, --unskip, a redis-server broker).
FAILED_ON_5_3 = [
    "t/integration/test_tasks.py::test_trace_log_arguments::test_task_success",
    "t/integration/test_tasks.py::test_trace_log_arguments::test_task_failed",
    "t/integration/test_tasks.py::test_task_replacement::test_replaced_task_nesting_level_0",
    "t/integration/test_canvas.py::test_chain::test_group_results_in_chain",
    "t/integration/test_canvas.py::test_chain::test_nested_chain_group_lone",
    "t/integration/test_canvas.py::test_group::test_nested_group_chord_body_chain",
    "t/integration/test_canvas.py::test_chord::test_add_to_chord",
    "t/integration/test_canvas.py::test_chord::test_add_chord_to_chord",
    "t/integration/test_canvas.py::test_chord::test_error_propagates_from_chord",
    "t/integration/test_canvas.py::test_chord::test_enabling_flag_allow_error_cb_on_chord_header",
    "t/integration/test_canvas.py::test_chord::test_disabling_flag_allow_error_cb_on_chord_header",
    "t/integration/test_canvas.py::test_chord::test_flag_allow_error_cb_on_chord_header_on_upgraded_chord",
]


def test_celery_5_3s_failures_are_all_expected_on_5_3_only(capsys):
    assert celery_own_suite.unexpected_failures(FAILED_ON_5_3, "5.3.6", "kvb") == []
    assert "FAILED" not in capsys.readouterr().out
    # (Celery 5.7's lists: the three canvases 5.3 expects to time out are unexpected failures there.)
    assert celery_own_suite.unexpected_failures(FAILED_ON_5_3, "5.7.0", "kvb") == FAILED_ON_5_3[3:6]
    # (A redis:// reference run has no kvb:// limits.)
    assert celery_own_suite.unexpected_failures(FAILED_ON_5_3, "5.3.6", "redis") == FAILED_ON_5_3[3:8]


@pytest.mark.parametrize("unskip", [False, True])
def test_celery_5_3s_suite_reaches_redis_at_redis_port(tmp_path, monkeypatch, unskip):
    archive = _sdist(
        tmp_path / "celery-5.3.6.tar.gz",
        {"pyproject.toml": "", "t/integration/conftest.py": CONFTEST_5_3, "t/integration/test_tasks.py": ""},
    )
    root = celery_own_suite.unpack(archive, str(tmp_path / "src"), unskip=unskip)
    with open(os.path.join(root, "t", "integration", "conftest.py"), encoding="utf-8") as f:
        text = f.read()
    namespace: dict[str, object] = {}
    exec(text, namespace)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", "16389")
    client = namespace["get_redis_connection"]()  # type: ignore[operator]
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", 16389)
