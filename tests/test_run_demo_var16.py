"""example_project/run_demo.py empties its data directory only if an earlier demo made it.

It deleted whatever ``--var`` named before every run (``shutil.rmtree``, errors ignored): a
mistyped ``--var ~`` or ``--var /srv/data`` would have deleted that directory's files.
"""

from __future__ import annotations

import importlib.util
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
