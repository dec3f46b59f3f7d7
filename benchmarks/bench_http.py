"""wrk against ``kvb http`` and webdis (Redis's HTTP front end) in front of a redis-server, same run.

Servers, each on a store of its own, alternating, best of ``--rounds`` runs each:

- ``kvb http``: the command as users start it (h11 parser, request-head timer, connection limit,
  uvicorn's access log, here written to /dev/null);
- ``kvb http --no-access-log``: the same without the access log, and with ``--workers 2`` (two
  worker processes on one socket);
- ``uvicorn, h11``: the same API through ``uvicorn --factory kv_backend.http:app_from_env --http h11
  --no-access-log``, without kvb http's head timer and connection limit, to show what those cost;
- ``uvicorn, httptools``: the same with uvicorn's C parser, to show what the parser costs;
- ``webdis + redis-server``: the peer, a C HTTP server in front of an in-memory redis-server.

``PUT`` writes 100-byte values to 10,000 keys in turn, then ``GET`` reads them back in the same turn.
wrk and the servers share the machine's cores, so compare the ratios, measured in the same run.

    python benchmarks/bench_http.py [--quick] [--seconds S] [--rounds R] [--no-write]

Needs ``wrk`` and ``webdis`` (Debian: ``apt-get install wrk webdis``) and redis-server; ``make bench``
installs them where it can.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report
from _services import ROOT, ServiceError, free_port, start_redis_server, stop, wait_for_port

KEYS = 10_000
VALUE = "v" * 100
OPS = ("PUT", "GET")
KVB = "kvb http"
QUIET = "kvb http --no-access-log"
WORKERS = "kvb http --no-access-log --workers 2"
H11 = "uvicorn, h11"
HTTPTOOLS = "uvicorn, httptools"
WEBDIS = "webdis + redis-server"

# wrk's request generator: the method and path prefix come from the command line (wrk passes what
# follows "--" to init), keys cycle through KEYS names, a PUT sends VALUE as its body.
WRK_SCRIPT = """
local method, prefix, body
local n, keys = 0, {keys}
function init(args)
  method, prefix = args[1], args[2]
  if method == "PUT" then body = string.rep("v", 100) end
end
function request()
  n = n + 1
  return wrk.format(method, prefix .. "bench" .. (n % keys), nil, body)
end
""".replace("{keys}", str(KEYS))


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Wait until ``url`` answers 200 (kvb http listens before its store is open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"the server for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise ServiceError(f"{url} did not answer 200 within {timeout} s")


def prefill_store(path: str) -> None:
    """Write every key the GETs read into the store at ``path``, before its server starts."""
    from kv_backend import DB

    value = VALUE.encode()
    with DB(path) as db:
        for i in range(KEYS):
            db.put(b"bench%d" % i, value)


def prefill_redis(port: int) -> None:
    """Write every key the GETs read into the redis-server on ``port``, in one pipeline."""
    commands = b"".join(
        b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(VALUE), VALUE.encode())
        for k in (b"bench%d" % i for i in range(KEYS))
    )
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(commands)
        got = b""
        while got.count(b"+OK\r\n") < KEYS:
            chunk = conn.recv(65536)
            if not chunk:
                raise ServiceError("redis-server closed the connection while the keys were written")
            got += chunk


def start_kvb_http(path: str, *options: str) -> tuple[subprocess.Popen, int]:
    prefill_store(path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kv_backend", "http", "--dir", path, "--port", str(port), *options],
        env=_python_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
    return proc, port


def start_uvicorn(path: str, parser: str) -> tuple[subprocess.Popen, int]:
    prefill_store(path)
    port = free_port()
    env = _python_env()
    env["KVB_HTTP_DIR"] = path
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--factory", "kv_backend.http:app_from_env"),
            *("--port", str(port), "--http", parser, "--no-access-log", "--log-level", "warning"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
    return proc, port


def start_webdis(workdir: str, redis_port: int) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("webdis")
    if exe is None:
        raise ServiceError("webdis is not installed (Debian: apt-get install webdis)")
    port = free_port()
    config = os.path.join(workdir, "webdis.json")
    settings = {
        "redis_host": "127.0.0.1",
        "redis_port": redis_port,
        "http_host": "127.0.0.1",
        "http_port": port,
        "threads": 2,
        "pool_size": 20,
        "daemonize": False,
        "database": 0,
        "verbosity": 0,
        "logfile": os.path.join(workdir, "webdis.log"),
    }
    with open(config, "w", encoding="utf-8") as f:
        json.dump(settings, f)
    proc = subprocess.Popen([exe, config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc, port


def run_wrk(
    script: str, url: str, method: str, prefix: str, seconds: float, clients: int
) -> dict[str, float]:
    """One wrk run; requests per second and the median and 99th percentile latency in ms."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        script,
        url,
        "--",
        method,
        prefix,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw failed requests against {url}:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    if not (rate and p50 and p99):
        raise SystemExit(f"wrk gave no figure for {url}:\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rate": float(rate.group(1)),
        "p50": float(p50.group(1)) * scale[p50.group(2)],
        "p99": float(p99.group(1)) * scale[p99.group(2)],
    }


def chart(best: dict[str, dict[str, dict[str, float]]], path: str) -> None:
    _report.grouped_bars(
        {name: [res[op]["rate"] for op in OPS] for name, res in best.items()},
        OPS,
        path,
        title="HTTP: kvb http vs webdis + redis-server (wrk)",
        ylabel="requests per second (higher is better)",
        size=(8, 4),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run (1 s per test, one round)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per wrk run (default 4)")
    ap.add_argument(
        "--rounds", type=int, default=None, help="runs per server and test, best kept (default 3)"
    )
    ap.add_argument("--clients", type=int, default=32, help="open connections (wrk -c)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    for tool in ("wrk", "webdis", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install wrk webdis redis-server)")
    seconds = args.seconds or (1 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 3)
    seconds_text = f"{seconds:g}"
    load_before = os.getloadavg()[0]
    best: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="kvb-bench-http-") as tmp:
        script = os.path.join(tmp, "requests.lua")
        with open(script, "w", encoding="utf-8") as f:
            f.write(WRK_SCRIPT)
        procs: list[subprocess.Popen] = []
        try:
            redis_proc, redis_port = start_redis_server(tmp)
            procs.append(redis_proc)
            prefill_redis(redis_port)
            servers: dict[str, tuple[int, str]] = {}
            kvb_servers = (
                (KVB, ()),
                (QUIET, ("--no-access-log",)),
                (WORKERS, ("--no-access-log", "--workers", "2")),
            )
            for name, options in kvb_servers:
                proc, port = start_kvb_http(os.path.join(tmp, name.replace(" ", "_")), *options)
                procs.append(proc)
                servers[name] = (port, "/v1/keys/")
            parsers = [(H11, "h11")]
            if importlib.util.find_spec("httptools") is not None:
                parsers.append((HTTPTOOLS, "httptools"))
            else:
                print(
                    "httptools is not installed (pip install httptools): its row is left out", file=sys.stderr
                )
            for name, parser in parsers:
                proc, port = start_uvicorn(os.path.join(tmp, parser), parser)
                procs.append(proc)
                servers[name] = (port, "/v1/keys/")
            proc, port = start_webdis(tmp, redis_port)
            procs.append(proc)
            servers[WEBDIS] = (port, "/SET/")
            best = {name: {} for name in servers}
            for op in OPS:  # every PUT first, so the GETs find every key
                for _ in range(rounds):  # alternate the servers; keep each one's best run (a shared machine)
                    for name, (port, prefix) in servers.items():
                        if name == WEBDIS and op == "GET":
                            prefix = "/GET/"
                        got = run_wrk(script, f"http://127.0.0.1:{port}", op, prefix, seconds, args.clients)
                        if got["rate"] > best[name].get(op, {}).get("rate", 0.0):
                            best[name][op] = got
                        print(f"{op} {name:24s} {got['rate']:>10,.0f} req/s", flush=True)
        finally:
            for proc in reversed(procs):
                stop(proc)
    load_after = os.getloadavg()[0]
    peer = best[WEBDIS]
    rows = []
    for name, res in best.items():
        cells: list[object] = [name]
        for op in OPS:
            cells += [f"{res[op]['rate']:,.0f}", f"{res[op]['p50']:.2f} / {res[op]['p99']:.2f}"]
        cells += [f"{res[op]['rate'] / peer[op]['rate']:.0%}" for op in OPS]
        rows.append(cells)
    table = _report.table(
        [
            "server",
            "PUT req/s",
            "PUT ms p50 / p99",
            "GET req/s",
            "GET ms p50 / p99",
            "PUT vs webdis",
            "GET vs webdis",
        ],
        rows,
    )
    log = [best[KVB][op]["rate"] / best[QUIET][op]["rate"] for op in OPS]
    timer = [best[QUIET][op]["rate"] / best[H11][op]["rate"] for op in OPS]
    scale = [best[WORKERS][op]["rate"] / best[QUIET][op]["rate"] for op in OPS]
    parser = [best[HTTPTOOLS][op]["rate"] / best[H11][op]["rate"] for op in OPS if HTTPTOOLS in best]
    summary = (
        f"kvb http answers {best[KVB]['PUT']['rate'] / peer['PUT']['rate']:.0%} of webdis's PUTs and "
        f"{best[KVB]['GET']['rate'] / peer['GET']['rate']:.0%} of its GETs per second. With its access log, "
        f"kvb http serves {min(log):.0%} to {max(log):.0%} of the requests it serves without. Its "
        f"request-head timer and connection limit: without the access log, kvb http's rate is "
        f"{min(timer):.0%} to {max(timer):.0%} of the same app under plain uvicorn with the same parser "
        f"(h11). Two worker processes (`--workers 2`) serve {min(scale):.1f}x to {max(scale):.1f}x the "
        "requests of one, wrk sharing the same 2 cores."
    )
    if parser:
        low, high = min(parser), max(parser)
        summary += f" uvicorn's httptools parser instead of h11: {low:.0%} to {high:.0%} of h11's rate."
    print(table)
    print(summary)
    if args.no_write:
        return 0
    chart(best, os.path.join(_report.CHART_DIR, "http.png"))
    busy = load_before > 1 or load_after > 1
    md = (
        f"`wrk -t1 -c{args.clients} -d{seconds_text}s --latency`: `PUT` of a 100-byte value to {KEYS:,} keys "
        "in turn, then `GET` of the same keys, against each server on a store of its own, alternating, "
        f"best of {rounds} run(s) each. `kvb http` as started by its command (h11 parser, request-head "
        "timer, connection limit, uvicorn's access log, written to /dev/null here), with "
        "`--no-access-log`, and with `--workers 2` too; the same API under "
        "`uvicorn --factory kv_backend.http:app_from_env "
        "--no-access-log` with `--http h11` (and `--http httptools` where httptools is installed); and "
        "webdis (Debian's, 2 threads) in front of a "
        "redis-server without persistence. kvb acknowledges a PUT once it is in its log (durable against "
        "a killed process, `KVB_HTTP_SYNC=never`); redis-server here keeps everything in memory only. "
        "wrk and the servers share the 2 cores. "
        f"Load average {load_before:.1f} before and {load_after:.1f} after"
        + (": a busy machine, so these figures are provisional." if busy else ".")
        + f"\n\n{table}\n\n{summary}\n\n![HTTP chart](charts/http.png)"
    )
    _report.write_section("http", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
