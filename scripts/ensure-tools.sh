#!/usr/bin/env bash
# Make sure the external programs some tests use are present:
#   redis-server (Celery broker, and the peer the RESP server is compared with)
#   redis-cli, redis-benchmark (real clients for the RESP server)
# They come from Debian's redis-server and redis-tools packages. With --bench, also what
# benchmarks/bench_http.py runs: wrk (the HTTP load generator) and webdis (its peer), from
# Debian too. Without root (or sudo) nothing is installed and the tests that need them skip
# with a reason; under CI (CI=true) a missing tool is an error.
set -u
tools=(redis-server redis-cli redis-benchmark)
packages=(redis-server redis-tools)
if [ "${1:-}" = "--bench" ]; then
    tools+=(wrk webdis)
    packages+=(wrk webdis)
fi
missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "ensure-tools: missing ${missing[*]}; installing Debian's ${packages[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if [ "$SUDO" != "none" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 || true
    # The packages may start a system redis on 6379 (and webdis on 7379); the tests and benchmarks
    # start their own on free ports.
    $SUDO service redis-server stop >/dev/null 2>&1 || true
    $SUDO service webdis stop >/dev/null 2>&1 || true
fi
for tool in "${tools[@]}"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "${CI:-}" = "true" ]; then
            echo "ensure-tools: $tool is still missing and CI requires it" >&2
            exit 1
        fi
        echo "ensure-tools: $tool unavailable; the tests (or benchmarks) that need it will skip (or stop)" >&2
    fi
done
exit 0
