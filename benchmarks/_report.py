"""Shared helpers for the benchmark scripts: timing, tables, and docs/benchmarks.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
CHART_DIR = os.path.join(ROOT, "docs", "charts")


def machine() -> str:
    """One line describing the machine and interpreter the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"
    )


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(headers: list[str], rows: list[list[object]]) -> str:
    """Return a Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


def write_section(name: str, markdown: str) -> None:
    """Replace the section ``name`` of docs/benchmarks.md (between its BEGIN/END markers)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    block = f"{begin}\n{markdown.strip()}\n\n_Measured on {machine()}, revision {git_revision()}._\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(text)


def grouped_bars(
    values: dict[str, list[float]],
    groups: tuple[str, ...],
    path: str,
    *,
    title: str,
    ylabel: str,
    log: bool = False,
    size: tuple[float, float] = (9, 4.5),
) -> None:
    """Write a bar chart to ``path``: for each of ``groups`` (the x axis), one bar per name of ``values``
    (``values[name][i]`` is its figure for ``groups[i]``), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(values)
    fig, ax = plt.subplots(figsize=size)
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        ax.bar([i + j * width for i in range(len(groups))], values[name], width, label=name)
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels(groups)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
