#!/usr/bin/env bash
# Make sure the external programs some tests use are present:
#   redis-server (Celery broker, and the peer the RESP server is compared with)
#   redis-cli, redis-benchmark (real clients for the RESP server)
# They come from Debian's redis-server and redis-tools packages. Without root (or
# sudo) nothing is installed and the tests that need them skip with a reason;
# under CI (CI=true) a missing tool is an error.
set -u
missing=()
for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "ensure-tools: missing ${missing[*]}; installing Debian's redis-server and redis-tools"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if [ "$SUDO" != "none" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null 2>&1 || true
    # The package may start a system redis on 6379; the tests start their own on free ports.
    $SUDO service redis-server stop >/dev/null 2>&1 || true
fi
for tool in redis-server redis-cli redis-benchmark; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "${CI:-}" = "true" ]; then
            echo "ensure-tools: $tool is still missing and CI requires it" >&2
            exit 1
        fi
        echo "ensure-tools: $tool unavailable; tests that need it will be skipped" >&2
    fi
done
exit 0
