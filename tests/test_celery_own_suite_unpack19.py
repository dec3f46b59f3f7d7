"""benchmarks/celery_own_suite.py --unskip on an older Celery, whose sdist has no test_group_chains.py.

``--unskip`` rewrites the redis:// gate of three of Celery's integration test files; Celery 5.3's
sdist has no ``t/integration/test_group_chains.py``, and the script stopped with FileNotFoundError
before running anything (``make test-oldest``'s Celery line). A file the sdist lacks is left out.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import celery_own_suite  # noqa: E402

GATED = "@pytest.mark.skipif(not result_backend.startswith('redis'), reason='redis only')\n"


def _sdist(path, files: dict[str, str]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"celery-5.3.6/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_unskip_leaves_out_a_file_the_sdist_lacks(tmp_path):
    archive = _sdist(
        tmp_path / "celery-5.3.6.tar.gz",
        {
            "pyproject.toml": "[tool.pytest.ini_options]\n",
            "t/integration/test_tasks.py": GATED,
            "t/integration/test_canvas.py": GATED,
        },
    )
    root = celery_own_suite.unpack(archive, str(tmp_path / "src"), unskip=True)
    for name in ("test_tasks.py", "test_canvas.py"):
        with open(os.path.join(root, "t", "integration", name), encoding="utf-8") as f:
            assert "result_backend.startswith(('redis', 'kvb'))" in f.read()
    assert not os.path.exists(os.path.join(root, "t", "integration", "test_group_chains.py"))
