"""kv_backend as pip installs it: what a bare install (no extra) says of what needs an extra, and
what the built wheel holds (packages, markers, metadata, entry points)."""

from __future__ import annotations

import email.message
import email.parser
import os
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)


def _without(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make ``packages`` unimportable (as in an install without the extra that brings them) and
    forget kv_backend.http's modules, so that the next import of it runs again. All of it is undone
    at the test's end: the modules, and kv_backend's ``http`` attribute, which a new import replaces
    (other tests reach kv_backend.http through it)."""
    import kv_backend.http

    monkeypatch.setattr(sys.modules["kv_backend"], "http", kv_backend.http)
    for name in packages:
        monkeypatch.setitem(sys.modules, name, None)
    for name in list(sys.modules):
        if name == "kv_backend.http" or name.startswith("kv_backend.http."):
            monkeypatch.delitem(sys.modules, name)


def test_kvb_http_without_starlette_names_the_extra_not_a_traceback(monkeypatch, capsys, store_path):
    """`pip install kv-backend` (no [server]) then `kvb http`: a ModuleNotFoundError traceback for
    starlette. Now one line that says which extra to install, exit 2, as other configuration errors."""
    _without(monkeypatch, "starlette")
    code, out, err = run(capsys, "http", "--dir", store_path)
    assert (code, out) == (2, "")
    assert err == (
        "kvb: kv_backend.http (kvb http) needs the starlette package: pip install 'kv-backend[server]'\n"
    )
    assert not os.path.exists(store_path)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'kv-backend\[server\]'") as info:
        import kv_backend.http  # noqa: F401
    assert info.value.name == "starlette"


def test_kvb_http_without_uvicorn_names_the_extra(monkeypatch, capsys, store_path):
    _without(monkeypatch, "uvicorn")
    code, out, err = run(capsys, "http", "--dir", store_path)
    assert (code, out) == (2, "")
    assert err == (
        "kvb: serving kv_backend.http (kvb http) needs the uvicorn package: "
        "pip install 'kv-backend[server]'\n"
    )
    assert not os.path.exists(store_path)


ROOT = Path(__file__).resolve().parent.parent
#: The wheel's import packages and where their source lies in the repository.
PACKAGES = {
    "kv_backend": ROOT / "kv_backend",
    "kv_backend_django": ROOT / "integrations" / "kv_backend_django",
    "kv_backend_celery": ROOT / "integrations" / "kv_backend_celery",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Iterator[zipfile.ZipFile]:
    """The wheel pip installs, built once (in-process, a fraction of a second) by the project's own
    build backend."""
    builder = pytest.importorskip(
        "hatchling.builders.wheel",
        reason="needs hatchling, the build backend (in the dev extra), to build the wheel in-process",
    )
    out = tmp_path_factory.mktemp("dist")
    [path] = builder.WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])
    with zipfile.ZipFile(path) as built:
        yield built


def test_the_wheel_holds_every_module_and_no_junk(wheel):
    names = set(wheel.namelist())
    for package, source in PACKAGES.items():
        modules = {
            f"{package}/{p.relative_to(source).as_posix()}"
            for p in source.rglob("*.py")
            if "__pycache__" not in p.parts
        }
        assert modules and not modules - names, f"{package}: missing from the wheel: {modules - names}"
    junk = [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo")) or n.startswith("tests/")]
    assert not junk
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(PACKAGES)


def test_every_typed_package_has_its_py_typed_marker(wheel):
    """kv_backend_django and kv_backend_celery are annotated like kv_backend, and the project says
    "Typing :: Typed", but only kv_backend had py.typed: mypy skipped `from kv_backend_django.cache
    import KVCache` ("module is installed, but missing library stubs or py.typed marker")."""
    names = set(wheel.namelist())
    assert {f"{package}/py.typed" for package in PACKAGES} <= names


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.BytesParser().parsebytes(wheel.read(name))


def test_the_wheel_carries_the_license_text(wheel):
    """The project is MIT-licensed, whose one condition is that its notice goes with every copy, yet
    the repository had no license file, so neither the wheel nor the sdist held one."""
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(name).decode().startswith("MIT License\n")
    metadata = _metadata(wheel)
    assert (metadata["License-Expression"], metadata["License-File"]) == ("MIT", "LICENSE")


def test_the_classifiers_name_the_supported_python_and_django_releases(wheel):
    """README's "Supported: Python 3.10+, Django 4.2 and 5.2 (and 6.x ...), Linux and macOS" was not in
    the metadata: PyPI (and tools that read its classifiers) saw no Python or Django release at all."""
    metadata = _metadata(wheel)
    classifiers = set(metadata.get_all("Classifier"))
    assert metadata["Requires-Python"] == ">=3.10"
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)} <= classifiers
    assert {f"Framework :: Django :: {line}" for line in ("4.2", "5.2", "6")} <= classifiers
    assert {"Operating System :: POSIX :: Linux", "Operating System :: MacOS"} <= classifiers


def test_the_lower_bounds_are_the_release_lines_test_oldest_runs(wheel):
    """Every ``>=`` bound of a dependency (of the install or of an extra, the test tools of dev aside)
    is the release line .ci/oldest.txt pins for ``make test-oldest``: a bound below what is tested
    would admit releases nothing has run on."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = {}
    for line in (ROOT / ".ci" / "oldest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = Version(version.strip().removesuffix(".*"))
    bounds = {}
    for text in _metadata(wheel).get_all("Requires-Dist"):
        requirement = Requirement(text)
        extras = ("", "django", "celery", "s3", "backup", "server")
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in extras):
            continue
        for spec in requirement.specifier:
            if spec.operator == ">=":
                bounds[requirement.name.lower()] = Version(spec.version)
    assert {"django", "celery", "fsspec", "starlette", "uvicorn"} <= set(bounds)
    assert {name: pins.get(name) for name in bounds} == bounds


def _extra_brings(wheel: zipfile.ZipFile, extra: str) -> set[str]:
    """The names of the distributions that ``pip install "kv-backend[EXTRA]"`` adds to the plain
    install, through the extras it names in turn (``kv-backend[backup]``)."""
    from packaging.requirements import Requirement

    requirements = [Requirement(text) for text in _metadata(wheel).get_all("Requires-Dist")]
    brought: set[str] = set()
    todo, seen = [extra], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        for requirement in requirements:
            if requirement.marker is None or not requirement.marker.evaluate({"extra": name}):
                continue
            if requirement.name.lower() == "kv-backend":
                todo.extend(e for e in requirement.extras if e not in seen)
            else:
                brought.add(requirement.name.lower())
    return brought


def test_the_django_extra_brings_what_the_management_commands_use(wheel):
    """docs/django.md installs ``kv-backend[django]``, and its kv_backup and kv_restore then failed
    with "backups need the fsspec package: pip install 'kv-backend[backup]'", and no command showed
    the progress bar it documents (tqdm)."""
    assert {"django", "fsspec", "tqdm"} <= _extra_brings(wheel, "django")


def test_the_entry_points_that_installing_registers(wheel):
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(name).decode()
    assert "[console_scripts]\nkvb = kv_backend.cli:main\n" in text
    assert "[celery.result_backends]\nkvb = kv_backend_celery.backend:KVBackend\n" in text
    assert "[celery.commands]\nkvb-recover-chords = kv_backend_celery.cli:recover_chords\n" in text


def test_eval_without_lupa_names_the_extra(monkeypatch):
    """EVAL on a `kvb serve` installed without the server extra said "pip install lupa" only; it now
    names the extra, as every other command that needs one does."""
    from kv_backend.server.scripting import Scripts
    from kv_backend.structures.errors import CommandError

    monkeypatch.setitem(sys.modules, "lupa", None)
    monkeypatch.setitem(sys.modules, "lupa.lua51", None)
    needs = r"^ERR scripting needs the 'lupa' package: pip install 'kv-backend\[server\]'"
    with pytest.raises(CommandError, match=needs):
        Scripts(server=None)._runtime()  # type: ignore[arg-type]


def test_the_sdist_holds_what_its_tests_read(tmp_path):
    """The sdist ships tests/ (distributions run them from it) but not example_project/, .ci/ or the
    Makefile those tests read: from an unpacked sdist, tests/test_docs_examples10.py failed ("no
    example_project/run_demo.py") and so did the Django example tests."""
    builder = pytest.importorskip(
        "hatchling.builders.sdist",
        reason="needs hatchling, the build backend (in the dev extra), to build the sdist in-process",
    )
    [path] = builder.SdistBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    with tarfile.open(path) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    assert {
        "tests/conftest.py",
        "example_project/run_demo.py",
        "example_project/manage.py",
        ".ci/oldest.txt",
        "Makefile",
        "scripts/ensure-tools.sh",
        "LICENSE",
    } <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_kvb_version_says_which_release_is_installed(capsys):
    """`kvb --version` was a usage error ("the following arguments are required: command"), where
    redis-server, celery and django-admin print their version."""
    from kv_backend import __version__

    assert run(capsys, "--version") == (0, f"kvb {__version__}\n", "")


def test_the_wheel_version_is_the_one_kv_backend_reports(wheel):
    """pyproject.toml's version and kv_backend.__version__ (kvb --version, HELLO, INFO, the OpenAPI
    document) are written in two places: they must not drift apart."""
    from kv_backend import __version__

    assert _metadata(wheel)["Version"] == __version__


def test_a_backup_to_s3_without_s3fs_names_the_s3_extra(monkeypatch, capsys, store_path):
    """With the backup extra alone, `kvb backup DIR s3://...` said "install the fsspec driver for this
    protocol, e.g. s3fs": right, but not the s3 extra that README's install lines give for it."""
    import importlib

    from kv_backend import DB

    DB(store_path).close()
    registry = importlib.import_module("fsspec.registry")  # the module (fsspec.registry is a mapping)
    monkeypatch.delitem(registry._registry, "s3", raising=False)  # forget a class imported before
    monkeypatch.setitem(sys.modules, "s3fs", None)
    code, out, err = run(capsys, "backup", store_path, "s3://bucket/kv")
    assert (code, out) == (2, "")
    assert err.startswith("kvb: cannot use s3://bucket/kv: ")
    assert err.endswith(" (pip install 'kv-backend[s3]', which brings s3fs)\n")
    code, out, err = run(capsys, "backup", store_path, "gcs://bucket/kv")  # no extra: the driver's name
    assert code == 2 and err.endswith("(install the fsspec driver for this protocol, e.g. s3fs for s3://)\n")


def test_http_backup_without_fsspec_is_501_as_docs_http_says(monkeypatch, db, tmp_path):
    """docs/http.md: 501 not_implemented when "backup support is missing from this installation"
    (pip install 'kv-backend[server]' without the backup extra). It answered 502 backup_failed,
    which says the destination failed: the fsspec ImportError reached the app as a BackupError."""
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    monkeypatch.setitem(sys.modules, "fsspec", None)
    with TestClient(create_app(db)) as client:
        r = client.post("/v1/backup", json={"url": str(tmp_path / "backups")})
    assert r.status_code == 501
    assert r.json()["error"] == "not_implemented"
    assert "pip install 'kv-backend[backup]'" in r.json()["message"]
    assert not (tmp_path / "backups").exists()


def test_importing_on_windows_says_the_platform_is_not_supported(monkeypatch):
    """The wheel is pure Python, so pip installs it on Windows too, where `import kv_backend` failed
    with "No module named 'fcntl'"; README supports Linux and macOS. The package's first lines are run
    here, under another name, as on Windows: they refuse with the reason."""
    import importlib.util

    init = ROOT / "kv_backend" / "__init__.py"
    spec = importlib.util.spec_from_file_location("kv_backend_on_windows", init)
    assert spec is not None and spec.loader is not None
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(ImportError, match=r"^kv_backend runs on Linux and macOS only \(POSIX\).*WSL$"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
