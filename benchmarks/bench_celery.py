"""Celery result backends compared: kvb:// (kv_backend) against Celery's redis:// and file:// backends.

One redis-server on loopback is the broker for those runs; one more run uses
``kvb serve`` as both broker and result backend (Celery's own redis://
transport and backend pointed at it). For each, a ``celery worker -P prefork
-c 2`` is started with this file as its app, and the client measures

* sequential round trips: ``add.delay(i, i).get()`` one after the other
  (median and p99 latency, and round trips per second);
* throughput: N tasks sent at once, then every result collected (tasks/s).

Run: ``python benchmarks/bench_celery.py [--quick]``. Writes the ``celery``
section of docs/benchmarks.md and docs/charts/celery.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from celery import Celery

# ---------------------------------------------------------------- the app
# The worker imports this file as its app module (``-A bench_celery``): the
# broker and the result backend come from the environment.

app = Celery(
    "bench_celery",
    broker=os.environ.get("KVB_BENCH_BROKER", "memory://"),
    backend=os.environ.get("KVB_BENCH_BACKEND", "disabled://"),
)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=3600,
    worker_prefetch_multiplier=4,
)


@app.task
def add(x: int, y: int) -> int:
    return x + y


# ------------------------------------------------------------- the bench

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [HERE, ROOT, os.path.join(ROOT, "integrations")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


class Worker:
    """A ``celery worker -P prefork -c 2`` subprocess using one result backend."""

    def __init__(self, broker: str, backend: str, log: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "bench_celery", "worker", "-P", "prefork", "-c", "2"),
                *("-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"),
                *("-n", f"bench-{os.getpid()}@%h", "--logfile", log),
            ],
            env=_env(KVB_BENCH_BROKER=broker, KVB_BENCH_BACKEND=backend),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5, limit=1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"the celery worker for {backend} did not start; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _use_broker(broker: str) -> None:
    """Point this process's app at ``broker`` (kombu keeps one pool per broker; the old one stays idle)."""
    if app.conf.broker_url == broker:
        return
    os.environ["KVB_BENCH_BROKER"] = broker
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = broker


def measure(label: str, broker: str, backend: str, n_seq: int, n_burst: int, log: str) -> dict:
    """Start a worker for ``backend`` and time sequential round trips and a burst."""
    _use_broker(broker)
    os.environ["KVB_BENCH_BACKEND"] = backend
    app.conf.result_backend = backend
    app.__dict__.pop("backend", None)  # rebuild app.backend for the new URL
    app._local.__dict__.pop("backend", None)
    worker = Worker(broker, backend, log)
    try:
        for i in range(10):  # warm up the pool processes and connections
            add.delay(i, i).get(timeout=30)
        latencies = []
        t_seq = time.perf_counter()
        for i in range(n_seq):
            t = time.perf_counter()
            assert add.delay(i, i).get(timeout=30) == 2 * i
            latencies.append(time.perf_counter() - t)
        t_seq = time.perf_counter() - t_seq
        t = time.perf_counter()
        results = [add.delay(i, 1) for i in range(n_burst)]
        for i, r in enumerate(results):
            assert r.get(timeout=120) == i + 1
        t_burst = time.perf_counter() - t
    finally:
        worker.stop()
    row = {
        "label": label,
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "seq_per_s": n_seq / t_seq,
        "burst_per_s": n_burst / t_burst,
        "n_seq": n_seq,
        "n_burst": n_burst,
        "latencies": latencies,
        "t_seq": t_seq,
    }
    print(
        f"{label:8} median {row['median_ms']:8.2f} ms  p99 {row['p99_ms']:8.2f} ms  "
        f"sequential {row['seq_per_s']:7.1f}/s  burst {row['burst_per_s']:7.1f} tasks/s",
        flush=True,
    )
    return row


def combine(rounds: list[dict]) -> dict:
    """One row from several rounds: latencies pooled, the best burst rate."""
    latencies = [x for r in rounds for x in r["latencies"]]
    return {
        "label": rounds[0]["label"],
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "seq_per_s": len(latencies) / sum(r["t_seq"] for r in rounds),
        "burst_per_s": max(r["burst_per_s"] for r in rounds),
        "rounds": len(rounds),
    }


def chart(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    x = range(len(rows))
    ax1.bar([i - 0.2 for i in x], [r["median_ms"] for r in rows], 0.4, label="median")
    ax1.bar([i + 0.2 for i in x], [r["p99_ms"] for r in rows], 0.4, label="p99")
    ax1.set_xticks(list(x), labels)
    ax1.set_yscale("log")
    ax1.set_ylabel("round trip, ms (log scale)")
    ax1.set_title("Sequential delay().get() latency")
    ax1.legend()
    ax2.bar([i - 0.2 for i in x], [r["seq_per_s"] for r in rows], 0.4, label="sequential")
    ax2.bar([i + 0.2 for i in x], [r["burst_per_s"] for r in rows], 0.4, label="burst")
    ax2.set_xticks(list(x), labels)
    ax2.set_ylabel("tasks per second")
    ax2.set_title("Round trips per second")
    ax2.legend()
    fig.suptitle("Celery brokers and result backends, worker -P prefork -c 2")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds per backend)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per backend (default 2, quick 1)")
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    n_seq, n_burst, n_seq_file = (60, 200, 12) if args.quick else (400, 1000, 40)

    sys.path[:0] = [ROOT, os.path.join(ROOT, "integrations")]  # this checkout's kv_backend first
    from _report import CHART_DIR, table, write_section

    workdir = tempfile.mkdtemp(prefix="kvb-bench-celery-")
    from _services import ServiceError, start_kvb_serve, start_redis_server, stop

    try:
        redis_proc, port = start_redis_server(workdir)
    except ServiceError as exc:
        sys.exit(f"{exc} (Debian: apt-get install redis-server)")
    kvb_proc, kvb_port = start_kvb_serve(os.path.join(workdir, "kvb-serve"))
    try:
        broker = f"redis://127.0.0.1:{port}/0"
        kvb_url = f"redis://127.0.0.1:{kvb_port}/0"
        runs = [
            ("kvb", broker, f"kvb://{workdir}/kvb-results", n_seq),
            ("redis", broker, f"redis://127.0.0.1:{port}/1", n_seq),
            ("file", broker, f"file://{workdir}/file-results", n_seq_file),
            ("kvb serve", kvb_url, kvb_url, n_seq),
        ]
        os.makedirs(f"{workdir}/file-results")
        # Several rounds in alternating order, so that a burst of load from
        # elsewhere on the machine doesn't land on one backend only. file://
        # is dominated by its 0.5 s poll and runs once.
        rounds: dict[str, list[dict]] = {label: [] for label, *_ in runs}
        for n in range(args.rounds):
            order = runs if n % 2 == 0 else runs[::-1]
            for label, broker_url, url, seq in order:
                if label == "file" and rounds["file"]:
                    continue
                log = os.path.join(workdir, f"worker-{label.replace(' ', '-')}-{n}.log")
                rounds[label].append(measure(label, broker_url, url, seq, n_burst, log))
        rows = [combine(rounds[label]) for label, *_ in runs]
    finally:
        stop(redis_proc)
        stop(kvb_proc)
        shutil.rmtree(workdir, ignore_errors=True)

    by = {r["label"]: r for r in rows}
    kvb, red, served = by["kvb"], by["redis"], by["kvb serve"]
    ratio_lat = kvb["median_ms"] / red["median_ms"]
    ratio_seq = kvb["seq_per_s"] / red["seq_per_s"]
    ratio_burst = kvb["burst_per_s"] / red["burst_per_s"]
    served_lat = served["median_ms"] / red["median_ms"]
    served_burst = served["burst_per_s"] / red["burst_per_s"]
    print(
        f"kvb/redis: median latency x{ratio_lat:.2f}, sequential rate x{ratio_seq:.2f}, "
        f"burst rate x{ratio_burst:.2f}; kvb serve (broker and backend) / redis: median latency "
        f"x{served_lat:.2f}, burst rate x{served_burst:.2f}"
    )
    md = table(
        [
            "broker / result backend",
            "median delay().get() ms",
            "p99 delay().get() ms",
            "sequential round trips/s",
            "burst tasks/s",
        ],
        [
            [
                "kvb serve / kvb serve (`redis://` to both)"
                if r["label"] == "kvb serve"
                else f"redis-server / `{r['label']}://`",
                f"{r['median_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{r['seq_per_s']:.1f}",
                f"{r['burst_per_s']:.1f}",
            ]
            for r in rows
        ],
    )
    print(md)
    if args.no_write:
        return
    chart_path = os.path.join(CHART_DIR, "celery.png")
    chart(rows, chart_path)
    text = f"""
Same run; a redis-server broker on loopback for the first three rows, `kvb serve` as
broker *and* result backend for the last (Celery's `redis://` transport and backend
pointed at it); one `celery worker -P prefork -c 2` per row. Sequential:
`add.delay(i, i).get()` one after the other ({n_seq} round trips; {n_seq_file} for
`file://`, whose `get()` polls every 0.5 s). Burst: {n_burst} tasks sent at once, then
every result collected. {args.rounds} round(s) per backend in alternating order
(`file://` once): latencies pooled, best burst.{" Quick run (`--quick`)." if args.quick else ""}

{md}

kvb:// against redis://: median round trip x{ratio_lat:.2f}, sequential rate x{ratio_seq:.2f},
burst rate x{ratio_burst:.2f}. `get()` on kvb:// wakes on the store's next write instead of
polling, so it follows the redis backend's pub/sub closely; `file://` pays Celery's 0.5 s poll.
kvb serve as broker and backend against redis-server as both: median round trip
x{served_lat:.2f}, burst rate x{served_burst:.2f}, with every queued task and result in a
durable store.

![Celery result backends](charts/celery.png)
"""
    write_section("celery", text)
    print(f"wrote docs/benchmarks.md (section celery) and {os.path.relpath(chart_path, ROOT)}")


if __name__ == "__main__":
    main()
