#!/usr/bin/env python
"""Django cache backends through ``django.core.cache.caches``: kv_backend against its peers.

Runs the same workload on kv_backend's KVCache, diskcache.DjangoCache,
Django's FileBasedCache, LocMemCache and RedisCache (against a redis-server
this script starts on 127.0.0.1), with 1 and 4 processes, and reports the
median and 99th percentile latency of get, set and delete. Writes the
``django`` section of docs/benchmarks.md and docs/charts/django.png.

    python benchmarks/bench_django.py [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT, os.path.join(ROOT, "integrations")]

from _report import CHART_DIR, machine, table, write_section  # noqa: E402
from _services import ServiceError, start_redis_server, stop  # noqa: E402

BACKENDS = [
    ("kv_backend", "kv_backend_django.cache.KVCache"),
    ("diskcache", "diskcache.DjangoCache"),
    ("FileBasedCache", "django.core.cache.backends.filebased.FileBasedCache"),
    ("LocMemCache", "django.core.cache.backends.locmem.LocMemCache"),
    ("RedisCache", "django.core.cache.backends.redis.RedisCache"),
]
OPS = ("get", "set", "delete")
PHASE_BUDGET_NS = 20 * 10**9
VALUE = {"user_id": 4242, "name": "x" * 80, "roles": ["staff", "editor"], "active": True}


def start_redis(workdir: str) -> tuple[subprocess.Popen | None, str]:
    """Start redis-server on a free loopback port; return (process, URL) or (None, reason)."""
    try:
        proc, port = start_redis_server(workdir)
    except ServiceError as exc:
        return None, f"{exc}: RedisCache row skipped"
    return proc, f"redis://127.0.0.1:{port}"


def configure(workdir: str, redis_url: str | None) -> list[str]:
    """Configure Django with one alias per backend; return the aliases available."""
    import django
    from django.conf import settings

    caches: dict[str, Any] = {}
    for name, backend in BACKENDS:
        conf: dict[str, Any] = {"BACKEND": backend, "TIMEOUT": 3600, "OPTIONS": {"MAX_ENTRIES": 1_000_000}}
        if name == "RedisCache":
            if redis_url is None:
                continue
            conf["LOCATION"] = redis_url
            conf["OPTIONS"] = {}
        elif name == "LocMemCache":
            conf["LOCATION"] = "bench"
        else:
            conf["LOCATION"] = os.path.join(workdir, name)
        caches[name] = conf
    settings.configure(CACHES=caches, USE_TZ=True)
    django.setup()
    return list(caches)


def worker(
    alias: str, idx: int, nprocs: int, nops: int, keyspace: int, barrier: Any, out: Any
) -> None:  # pragma: no cover - runs in child processes
    from django.core.cache import caches

    cache = caches[alias]
    rng = random.Random(1000 + idx)
    keys = [f"bench:{i}" for i in range(keyspace)]
    if idx == 0 or alias == "LocMemCache":  # LocMemCache is per process: every worker fills its own
        for k in keys:
            cache.set(k, VALUE)
    for k in rng.sample(keys, min(200, keyspace)):  # warm-up
        cache.get(k)
    clock = time.perf_counter_ns
    results: dict[str, list[int]] = {}

    def timed(op: Any, arg_keys: list[str], *args: Any) -> list[int]:
        lat = []
        stop = clock() + PHASE_BUDGET_NS  # slow backends get fewer samples, not hours of run time
        for k in arg_keys:
            t0 = clock()
            op(k, *args)
            t1 = clock()
            lat.append(t1 - t0)
            if t1 > stop:
                break
        return lat

    barrier.wait()
    results["set"] = timed(cache.set, [rng.choice(keys) for _ in range(nops)], VALUE)
    barrier.wait()
    results["get"] = timed(cache.get, [rng.choice(keys) for _ in range(nops)])
    barrier.wait()
    mine = [k for i, k in enumerate(keys) if i % nprocs == idx][:nops]
    results["delete"] = timed(cache.delete, mine)
    out.put((idx, results))
    cache.close()


def run(alias: str, nprocs: int, nops: int, keyspace: int) -> dict[str, list[int]]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(nprocs)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(alias, i, nprocs, nops, keyspace, barrier, out))
        for i in range(nprocs)
    ]
    for p in procs:
        p.start()
    merged: dict[str, list[int]] = {op: [] for op in OPS}
    for _ in procs:
        _, res = out.get(timeout=1800)
        for op in OPS:
            merged[op].extend(res[op])
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{alias} worker failed with exit code {p.exitcode}")
    return merged


def clear(alias: str) -> None:
    ctx = mp.get_context("fork")

    def do() -> None:  # pragma: no cover - child
        from django.core.cache import caches

        caches[alias].clear()

    p = ctx.Process(target=do)
    p.start()
    p.join()


def pct(values: list[int], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer operations)")
    parser.add_argument(
        "--no-write", action="store_true", help="do not update docs/benchmarks.md or the chart"
    )
    args = parser.parse_args()
    nops = 1500 if args.quick else 8000
    keyspace = 1000 if args.quick else 2000

    load_before = os.getloadavg()[0]
    workdir = tempfile.mkdtemp(prefix="kvb-bench-django-")
    redis, redis_note = start_redis(workdir)
    redis_url = redis_note if redis is not None else None
    try:
        aliases = configure(workdir, redis_url)
        results: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
        for nprocs in (1, 4):
            for alias in aliases:
                clear(alias)
                t0 = time.time()
                lat = run(alias, nprocs, nops, keyspace)
                results[(alias, nprocs)] = {
                    op: (statistics.median(v) / 1000.0, pct(v, 0.99)) for op, v in lat.items()
                }
                r = results[(alias, nprocs)]
                print(
                    f"{alias:15} {nprocs}p  "
                    + "  ".join(f"{op} {r[op][0]:8.1f}/{r[op][1]:8.1f} us" for op in OPS)
                    + f"   ({time.time() - t0:.1f} s)",
                    flush=True,
                )
    finally:
        if redis is not None:
            stop(redis)
        shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for (alias, nprocs), r in results.items():
        rows.append([alias, nprocs] + [f"{r[op][0]:.1f} / {r[op][1]:.1f}" for op in OPS])
    lines = [
        f"Through `django.core.cache.caches[...]`: {nops} operations per process and operation, "
        f"keys drawn from {keyspace} shared keys, a {len(__import__('pickle').dumps(VALUE))}-byte "
        "pickled dict as the value, TIMEOUT 3600, MAX_ENTRIES 1,000,000. Latency in microseconds, "
        "median / 99th percentile (lower is better). LocMemCache is per process (nothing shared). "
        f"Each phase stops after {PHASE_BUDGET_NS // 10**9} s, so the slowest backends have fewer samples.",
        "",
        table(["backend", "processes", "get", "set", "delete"], rows),
        "",
    ]
    checks = []
    for nprocs in (1, 4):
        kv = results[("kv_backend", nprocs)]
        ratio_parts = []
        for peer in ("diskcache", "RedisCache", "FileBasedCache", "LocMemCache"):
            if (peer, nprocs) not in results:
                continue
            p = results[(peer, nprocs)]
            ratio_parts.append(
                f"{peer}: get {p['get'][0] / kv['get'][0]:.1f}x, set {p['set'][0] / kv['set'][0]:.1f}x"
            )
            if peer in ("diskcache", "RedisCache"):
                for op in ("get", "set"):
                    for i, stat in ((0, "median"), (1, "p99")):
                        ok = kv[op][i] < p[op][i]
                        checks.append(
                            f"{'PASS' if ok else 'FAIL'}: {op} {stat} with {nprocs} process(es) faster than "
                            f"{peer} ({kv[op][i]:.1f} vs {p[op][i]:.1f} us)"
                        )
        lines.append(
            f"- {nprocs} process(es), peer median latency / kv_backend median latency: "
            + "; ".join(ratio_parts)
        )
    set_p99 = results[("kv_backend", 4)]["set"][1]
    checks.append(
        f"{'PASS' if set_p99 < 1000 else 'FAIL'}: set p99 with 4 processes under 1 ms ({set_p99:.1f} us)"
    )
    if redis is None:
        lines.append(f"- {redis_note}")
    load_after = os.getloadavg()[0]
    lines.append(
        f"- Load average {load_before:.1f} before and {load_after:.1f} after the run on "
        f"{os.cpu_count()} cores: with more runnable processes than cores, p99 mostly measures "
        "how long a process waits for a core (a writer preempted while it holds the store's lock "
        "delays the others), so compare p99 figures only from a quiet machine."
    )
    lines += ["", "Targets:", ""] + [f"- {c}" for c in checks]
    lines += ["", "![Django cache latency](charts/django.png)"]
    markdown = "\n".join(lines)
    print()
    print(markdown)
    if not args.no_write:
        write_section("django", markdown)
        chart(results, aliases)
        print(f"\nwrote docs/benchmarks.md (section django) and docs/charts/django.png on {machine()}")
    return 0


def chart(results: dict[tuple[str, int], dict[str, tuple[float, float]]], aliases: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(CHART_DIR, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    width = 0.8 / len(aliases)
    for ax, nprocs in zip(axes, (1, 4), strict=True):
        for i, alias in enumerate(aliases):
            r = results[(alias, nprocs)]
            xs = [j + i * width for j in range(len(OPS))]
            ax.bar(xs, [r[op][0] for op in OPS], width, label=alias)
            ax.scatter(xs, [r[op][1] for op in OPS], marker="_", s=120, color="black", zorder=3)
        ax.set_xticks([j + width * (len(aliases) - 1) / 2 for j in range(len(OPS))], OPS)
        ax.set_yscale("log")
        ax.set_title(f"{nprocs} process{'es' if nprocs > 1 else ''}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("latency, microseconds (bar: median, dash: p99; log scale)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Django cache backends through caches[...]")
    fig.tight_layout()
    fig.savefig(os.path.join(CHART_DIR, "django.png"), dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
