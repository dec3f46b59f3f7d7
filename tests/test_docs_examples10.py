"""The user documentation (README.md, docs/*.md) checked against the code, mechanically.

Every ``kvb SUBCOMMAND --flag`` the docs show names a subcommand and a flag the
``kvb`` parser has (and the option tables of docs/redis.md and docs/http.md
give the parser's defaults); every ``manage.py kv_* --flag`` a flag of that
management command; every dotted ``kv_backend...`` name imports, every repository
path (``tests/test_x.py::test_y``) exists, and every ``KVB_*``
variable is read by the code; every relative link and ``#anchor`` resolves; every Python
block compiles; and the Python examples that need no server (docs/engine.md,
docs/store.md, the README's quick look, the ``encode_key`` example of
docs/http.md, the ``Structures`` example of docs/redis.md) run, their paths
moved into a temporary directory, with the results their comments show
(``expr  # b'value'``, ``expr  # raises SomeError``) checked. Nothing here
starts a server; the whole file runs in well under a few seconds.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "example_project" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.S | re.M)


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _blocks(path: Path, language: str | None = None) -> list[tuple[int, str]]:
    """(line, code) of each fenced block of ``path`` (of ``language`` if given), dedented."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        if language is not None and m.group(2) != language:
            continue
        indent = len(m.group(1))
        code = "\n".join(line[indent:] for line in m.group(3).splitlines())
        out.append((text.count("\n", 0, m.start()) + 1, code))
    return out


def _code_lines(path: Path) -> list[str]:
    """Every line of every fenced block, and every inline code span, of ``path``."""
    text = path.read_text()
    lines = [line for _, code in _blocks(path) for line in code.splitlines()]
    prose = FENCE.sub("", text)
    lines += [m.group(2).replace("\n", " ") for m in re.finditer(r"(`+)(.+?)\1", prose, re.S)]
    return lines


# -- kvb SUBCOMMAND --flag ---------------------------------------------------------------------

_KVB = re.compile(r"(?:^|[\s(=;&])(?:kvb|python -m kv_backend)\s+([a-z][\w-]*)(.*)")
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)")


def _kvb_mentions() -> list[tuple[str, str, list[str], str]]:
    """(doc, subcommand, flags, text) for every ``kvb SUB ...`` in code of the docs."""
    found = []
    for path in DOCS:
        for line in _code_lines(path):
            # one command per piece: a line may list several (docs/engine.md's summary)
            for piece in re.split(r"\s(?=(?:kvb|python -m kv_backend)\s)", line):
                m = _KVB.search(piece)
                if not m or piece[m.start() :].lstrip().startswith(("kvb:", "kvb-")):
                    continue
                # the command's own words end at a comment or at a pipe into another program
                # (`| xargs -0`); `(VALUE | --stdin)` is one of its alternatives
                tail = re.split(r"\s#|\|\s*(?=[A-Za-z])", m.group(2))[0]
                found.append((_doc_id(path), m.group(1), _FLAG.findall(tail), piece.strip()))
    return found


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from kv_backend.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_docs_mention_kvb_commands_at_all():
    """The scan below finds what it is meant to (a regex that matched nothing would pass)."""
    seen = {(sub, flag) for _, sub, flags, _ in _kvb_mentions() for flag in flags}
    assert {("keys", "-0"), ("put", "--stdin"), ("backups", "--keep"), ("serve", "--unixsocket")} <= seen


def test_every_kvb_subcommand_and_flag_in_the_docs_exists():
    subparsers = _subparsers()
    wrong = []
    for doc, sub, flags, text in _kvb_mentions():
        if sub not in subparsers:
            wrong.append(f"{doc}: `kvb {sub}` is no subcommand ({text!r})")
            continue
        known = subparsers[sub]._option_string_actions
        wrong += [f"{doc}: `kvb {sub}` has no {flag} ({text!r})" for flag in flags if flag not in known]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("doc", "sub"), [("docs/redis.md", "serve"), ("docs/http.md", "http")])
def test_option_tables_give_the_parsers_options_and_defaults(doc, sub):
    """Rows such as ``| `--port` | `6380` | ...`` of the server docs' option tables."""
    parser = _subparsers()[sub]
    rows = re.findall(r"^\| `(--[\w-]+)[^`]*`[^|]*\| ([^|]*) \|", (ROOT / doc).read_text(), re.M)
    assert len(rows) >= 4, rows
    for flag, default in rows:
        action = parser._option_string_actions.get(flag)
        assert action is not None, f"{doc}: `kvb {sub}` has no {flag}"
        default = default.strip()
        if default.strip("()") == "required":
            assert action.required, f"{doc}: {flag} is documented as required"
        elif default == "none":
            assert action.default is None and not action.required, f"{doc}: {flag} default"
        elif re.fullmatch(r"`[^`]+`", default):
            assert str(action.default) == default.strip("`"), f"{doc}: {flag} default {default}"


def test_every_management_command_flag_in_the_docs_exists():
    pytest.importorskip("django")
    from importlib import import_module

    wrong, seen = [], 0
    for path in DOCS:
        for line in _code_lines(path):
            for m in re.finditer(r"manage\.py (kv_\w+)(.*)", line):
                name = m.group(1)
                try:
                    module = import_module(f"kv_backend_django.management.commands.{name}")
                except ImportError:
                    wrong.append(f"{_doc_id(path)}: no management command {name}")
                    continue
                known = module.Command().create_parser("manage.py", name)._option_string_actions
                for flag in _FLAG.findall(m.group(2).split("#")[0]):
                    seen += 1
                    if flag not in known:
                        wrong.append(f"{_doc_id(path)}: `manage.py {name}` has no {flag}")
    assert not wrong, "\n".join(wrong)
    assert seen >= 5


def test_every_script_and_flag_of_python_benchmarks_lines_exists():
    """``python benchmarks/soak.py run --seconds 600 ...``: the script, and each flag as an argument."""
    seen = 0
    for path in DOCS:
        for line in _code_lines(path):
            for m in re.finditer(r"python ((?:benchmarks|example_project)/[a-z0-9_]+\.py)([^#|]*)", line):
                script = ROOT / m.group(1)
                assert script.exists(), f"{_doc_id(path)}: no {m.group(1)}"
                source = script.read_text()
                for flag in _FLAG.findall(m.group(2)):
                    seen += 1
                    assert f'"{flag}"' in source, f"{_doc_id(path)}: {m.group(1)} takes no {flag}"
    assert seen >= 5


# -- names ---------------------------------------------------------------------------------------


def _docs_text() -> str:
    return "\n".join(path.read_text() for path in DOCS)


def test_every_dotted_kv_backend_name_in_the_docs_exists():
    """``kv_backend.state.in_use``, ``kv_backend.http:app_from_env``, ``kv_backend_django.W002``..."""
    from importlib import import_module

    names = set(re.findall(r"\bkv_backend(?:_django|_celery)?(?:[.:][A-Za-z_]\w*)+", _docs_text()))
    assert len(names) >= 20, names
    checks = (ROOT / "integrations" / "kv_backend_django" / "checks.py").read_text()
    wrong = []
    for name in sorted(names):
        if re.fullmatch(r"kv_backend_django\.[EW]\d{3}", name):  # a system check's id
            if f'id="{name}"' not in checks:
                wrong.append(f"no system check {name}")
            continue
        parts = name.replace(":", ".").split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                wrong.append(f"{name}: no {attr} in {'.'.join(parts[:cut])}")
            break
        else:
            wrong.append(f"{name}: nothing of it imports")
    assert not wrong, "\n".join(wrong)


def test_every_repository_path_in_the_docs_exists():
    """``tests/test_permissions.py``, ``benchmarks/soak.py``, ``.ci/oldest.txt``, ``file.py::test_x``..."""
    tops = r"(?:tests|benchmarks|example_project|kv_backend|integrations|docs|scripts|\.ci)/"
    paths = set(re.findall(rf"(?<![\w./-])({tops}[\w./-]*\w(?:::\w+)?)", _docs_text()))
    assert len(paths) >= 15, paths
    wrong = []
    made_at_run_time = {"example_project/var"}  # the demo's data directory
    for path in sorted(paths - made_at_run_time):
        if re.search(r"[A-Z]{2,}", path):  # a placeholder: benchmarks/bench_NAME.py
            continue
        file, _, test = path.partition("::")
        if not (ROOT / file).exists():
            wrong.append(f"no {file}")
        elif test and not re.search(rf"^(?:async )?def {test}\b", (ROOT / file).read_text(), re.M):
            wrong.append(f"no {test} in {file}")
    assert not wrong, "\n".join(wrong)


def test_every_kvb_environment_variable_in_the_docs_is_read_somewhere():
    names = set(re.findall(r"\bKVB_[A-Z_]+\b", _docs_text())) - {"KVB_FORMAT"}  # a file, not a variable
    assert len(names) >= 5, names
    sources = "\n".join(
        p.read_text()
        for top in ("kv_backend", "integrations", "example_project")
        for p in (ROOT / top).rglob("*.py")
    )
    missing = sorted(n for n in names if re.search(rf"[\"']{n}[\"']", sources) is None)
    assert not missing, f"documented but read nowhere: {missing}"


# -- links and anchors ---------------------------------------------------------------------------


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of ``path``: lower case, punctuation dropped, spaces as ``-``."""
    out: set[str] = set()
    counts: dict[str, int] = {}
    for m in re.finditer(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_every_relative_link_and_anchor_resolves():
    wrong, checked = [], 0
    for path in DOCS:
        prose = FENCE.sub("", path.read_text())
        prose = re.sub(r"(`+).+?\1", "", prose, flags=re.S)  # code spans are no links
        for link in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto:...
                continue
            checked += 1
            target, _, anchor = link.partition("#")
            file = (path.parent / target).resolve() if target else path
            if not file.exists():
                wrong.append(f"{_doc_id(path)}: {link}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                wrong.append(f"{_doc_id(path)}: {link}: no heading #{anchor} in {file.name}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 20


# -- Python examples -----------------------------------------------------------------------------


def test_every_python_block_compiles():
    for path in DOCS:
        for line, code in _blocks(path, "python"):
            compile(code, f"{_doc_id(path)}:{line}", "exec")


_RUN = {
    "README.md": "from kv_backend import DB",
    "docs/engine.md": "",
    "docs/store.md": "",
    "docs/http.md": "from kv_backend.http import decode_key, encode_key",
    "docs/redis.md": "from kv_backend.structures import Structures",
}


def _examples() -> list:
    out = []
    for doc, marker in _RUN.items():
        for line, code in _blocks(ROOT / doc, "python"):
            if marker in code:
                out.append(pytest.param(code, id=f"{doc}:{line}"))
    return out


def _leading_literal(comment: str) -> tuple[bool, object]:
    """The Python literal a result comment starts with (``b'x'``, ``1, atomic...``), if any."""
    ends = [m.start() for m in re.finditer(r",\s|\s\(|\s+like\s", comment)] + [len(comment)]
    for end in sorted(ends, reverse=True):
        try:
            return True, ast.literal_eval(comment[:end].strip())
        except (ValueError, SyntaxError):
            continue
    return False, None


def _with_checks(code: str) -> str:
    """``code`` with each ``expr  # literal`` asserted, and each ``expr  # raises Error`` expected."""
    lines = code.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type != tokenize.COMMENT:
            continue
        row, col = tok.start
        before = lines[row - 1][:col]
        expr, indent = before.strip(), before[: len(before) - len(before.lstrip())]
        try:
            ast.parse(expr, mode="eval")
        except SyntaxError:
            continue  # a statement (`for ...:`, `x = ...`), not a result
        comment = tok.string[1:].strip()
        raises = re.match(r"raises (\w+)", comment)
        if raises:
            lines[row - 1] = (
                f"{indent}try:\n{indent}    {expr}\n{indent}except {raises.group(1)}:\n{indent}    pass\n"
                f"{indent}else:\n{indent}    raise AssertionError({expr!r} + ' did not raise')"
            )
            continue
        ok, value = _leading_literal(comment)
        if ok:
            check = f"assert _result == {value!r}, ({expr!r}, _result)"
            lines[row - 1] = f"{indent}_result = {expr}\n{indent}{check}"
    return "\n".join(lines)


@pytest.mark.parametrize("code", _examples())
def test_python_example_runs(code, tmp_path, monkeypatch):
    import shelve

    # Absolute paths of the examples go to the temporary directory, which is also the working
    # directory; the migration example of docs/store.md reads a stdlib shelf named "old".
    code = re.sub(
        r"([\"'])/(?:var/lib|srv|tmp)/([^\"']*)\1",
        lambda m: repr(str(tmp_path / m.group(2).replace("/", "_"))),
        code,
    )
    monkeypatch.chdir(tmp_path)
    with shelve.open(os.path.join(tmp_path, "old")) as old:
        old["config"] = {"retries": 3}
    exec(compile(_with_checks(code), "<doc example>", "exec"), {"__name__": "__doc_example__"})
