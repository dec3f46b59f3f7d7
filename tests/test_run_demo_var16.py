"""example_project/run_demo.py empties its data directory only if an earlier demo made it.

It deleted whatever ``--var`` named before every run (``shutil.rmtree``, errors ignored): a
mistyped ``--var ~`` or ``--var /srv/data`` would have deleted that directory's files.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("run_demo16", ROOT / "example_project" / "run_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_directory_of_other_files_is_refused_and_kept(demo, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds files this demo did not make"):
        demo.prepare_var_dir(tmp_path, keep=False)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert demo.main(["--var", str(tmp_path)]) == 2  # refused before anything starts
    assert (tmp_path / "precious.txt").exists()


def test_a_directory_of_an_earlier_run_is_emptied(demo, tmp_path):
    var = tmp_path / "var"
    demo.prepare_var_dir(var, keep=False)  # new: made and marked
    (var / "cache").mkdir()
    (var / "cache" / "old").write_text("x")
    demo.prepare_var_dir(var, keep=True)  # --keep leaves it
    assert (var / "cache" / "old").exists()
    demo.prepare_var_dir(var, keep=False)
    assert sorted(p.name for p in var.iterdir()) == [demo.DEMO_MARK]


def test_an_empty_directory_is_used(demo, tmp_path):
    demo.prepare_var_dir(tmp_path, keep=False)
    assert (tmp_path / demo.DEMO_MARK).exists()


def test_the_sites_cache_is_in_the_data_directory_whatever_the_environment(demo, tmp_path, monkeypatch):
    """KVB_EXAMPLE_CACHE, exported for a run of the site by hand, would have put the demo's cache
    outside the data directory, which a run empties: the next run found the earlier one's entries."""
    monkeypatch.setenv("KVB_EXAMPLE_CACHE", str(tmp_path / "by-hand-cache"))
    var = tmp_path / "var"
    env = demo.child_env(var)
    code = "from django.conf import settings; print(settings.CACHES['default']['LOCATION'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=var.parent, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(var / "cache")
