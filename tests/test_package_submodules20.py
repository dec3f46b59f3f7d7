"""``import kv_backend`` makes the public submodules the docs show as ``kv_backend.X.`` reachable.

``import kv_backend; kv_backend.shelve.open(...)`` (as ``import dbm; dbm.open(...)`` in the stdlib, and as
the docs write it) raised AttributeError unless something had imported ``kv_backend.shelve`` before;
so did ``kv_backend.dbm``, ``kv_backend.check``, ``kv_backend.salvage`` and ``kv_backend.structures``.
They are now imported at their first use, and ``import kv_backend`` still imports none of them.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import ROOT, run_python

LAZY = ["check", "dbm", "salvage", "shelve", "structures"]


def test_the_submodules_are_attributes_imported_at_first_use(tmp_path):
    out = run_python(
        f"""
        import json, sys
        import kv_backend

        lazy = {LAZY!r}
        report = {{"imported_at_import": [m for m in lazy if "kv_backend." + m in sys.modules]}}
        report["in_dir"] = [m for m in lazy if m in dir(kv_backend)]
        with kv_backend.shelve.open({str(tmp_path / "shelf")!r}) as shelf:
            shelf["k"] = [1]
        with kv_backend.dbm.open({str(tmp_path / "shelf")!r}, "r") as db:
            report["keys"] = [k.decode() for k in db.keys()]
        report["check_ok"] = kv_backend.check.check({str(tmp_path / "shelf")!r}).ok
        report["same"] = all(getattr(kv_backend, m) is sys.modules["kv_backend." + m] for m in lazy)
        report["classes"] = [kv_backend.salvage.SalvageError.__name__]
        report["classes"].append(kv_backend.structures.Structures.__name__)
        try:
            kv_backend.no_such_thing
        except AttributeError as exc:
            report["missing"] = str(exc)
        report["has_missing"] = hasattr(kv_backend, "no_such_thing")
        before = set(sys.modules)
        exec("from kv_backend import *", {{}})
        report["star_imports"] = sorted(m for m in set(sys.modules) - before if m.startswith("kv_backend"))
        print(json.dumps(report))
        """
    ).stdout
    report = json.loads(out)
    assert report["imported_at_import"] == []
    assert report["in_dir"] == LAZY
    assert report["keys"] == ["k"] and report["check_ok"] and report["same"]
    assert report["classes"] == ["SalvageError", "Structures"]
    assert report["missing"] == "module 'kv_backend' has no attribute 'no_such_thing'"
    assert report["has_missing"] is False
    # (The star import binds restore, which imports the backup modules, but none of the submodules.)
    assert not {f"kv_backend.{m}" for m in LAZY} & set(report["star_imports"]), report["star_imports"]


def test_from_kv_backend_import_a_submodule_still_works():
    out = run_python(
        """
        from kv_backend import dbm, shelve
        import kv_backend.dbm
        print(dbm is kv_backend.dbm, shelve.open.__module__)
        """
    ).stdout.split()
    assert out == ["True", "kv_backend.shelve"]


def test_a_type_checker_sees_the_submodules_as_attributes(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy to run this check)")
    from mypy import api

    sample = tmp_path / "sample.py"
    sample.write_text(
        "import kv_backend\n\n"
        "with kv_backend.shelve.open('p') as shelf:\n"
        "    reveal_type(shelf)\n"
        "reveal_type(kv_backend.dbm.open('p', 'c'))\n"
        "reveal_type(kv_backend.check.check('p').ok)\n"
        "reveal_type(kv_backend.salvage.SalvageError)\n"
        "reveal_type(kv_backend.structures.Structures)\n"
        "kv_backend.nonexistent_module\n"
    )
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nmypy_path = {ROOT}\n[mypy-kv_backend.*]\nfollow_imports = silent\n")
    out, err, _ = api.run(["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), str(sample)])
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(str(sample))]
    assert len(lines) == 6, out + err
    assert lines[0] == 'note: Revealed type is "kv_backend.shelve.KVShelf"'
    assert lines[1] == 'note: Revealed type is "kv_backend.dbm.Database"'
    assert lines[2] in ('note: Revealed type is "bool"', 'note: Revealed type is "builtins.bool"')
    assert "-> kv_backend.salvage.SalvageError" in lines[3]
    assert "-> kv_backend.structures.Structures" in lines[4]
    # (A module __getattr__ a type checker sees makes every name valid: typos too.)
    assert lines[5] == 'error: Module has no attribute "nonexistent_module"  [attr-defined]'
