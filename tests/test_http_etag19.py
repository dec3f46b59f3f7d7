"""Entity tags over HTTP: ETag on reads and writes, If-Match / If-None-Match with tags on every method
of a key, If-Range, and a compare-and-set raced by threads and by two ``kvb http`` processes."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from helpers import child_env, free_port, start_own_server

from kv_backend.db import DB

TAG = re.compile(r'^"[0-9a-f]{16}"$')


def tag_of(client, key: str = "k") -> str:
    etag = client.get(f"/v1/keys/{key}").headers["etag"]
    assert TAG.match(etag)
    return etag


def test_get_and_head_answer_one_strong_tag_that_every_write_changes(app_client, db, store_path):
    db.put(b"k", b"value")
    first = tag_of(app_client)
    assert app_client.head("/v1/keys/k").headers["etag"] == first
    assert app_client.get("/v1/keys/k?format=json").headers["etag"] == first
    with DB(store_path) as other:  # another handle (as another process) reads the same tag
        assert other.size_with_tag(b"k")[2] == other.get_with_tag(b"k")[2] == db.get_with_tag(b"k")[2]
    seen = {first}
    db.put(b"k", b"value")  # the same value written again
    seen.add(tag_of(app_client))
    db.expire(b"k", 100)
    seen.add(tag_of(app_client))
    db.put(b"k", b"other")
    seen.add(tag_of(app_client))
    assert len(seen) == 4
    r = app_client.put("/v1/keys/k", content=b"v2")
    assert r.status_code == 204 and r.headers["etag"] == tag_of(app_client) not in seen
    r = app_client.put("/v1/keys/new", content=b"1")
    assert r.status_code == 201 and r.headers["etag"] == tag_of(app_client, "new")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_reads_evaluate_if_none_match_and_if_match_with_tags(app_client, db, method):
    db.put(b"k", b"value", ttl=100)
    etag = tag_of(app_client)
    for sent in (etag, f"W/{etag}", f'"other", {etag}'):  # If-None-Match compares weakly
        r = app_client.request(method, "/v1/keys/k", headers={"If-None-Match": sent})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag, sent
        assert 99 < float(r.headers["x-kv-ttl"]) <= 100
    r = app_client.request(method, "/v1/keys/k", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200 and r.headers["etag"] == etag
    assert app_client.request(method, "/v1/keys/k", headers={"If-Match": f'"x", {etag}'}).status_code == 200
    for sent in ('"other"', f"W/{etag}"):  # If-Match compares strongly: a weak tag never matches
        assert app_client.request(method, "/v1/keys/k", headers={"If-Match": sent}).status_code == 412
    for header in ("If-Match", "If-None-Match"):  # a missing key is 404 whatever the condition
        assert app_client.request(method, "/v1/keys/missing", headers={header: etag}).status_code == 404


def test_put_with_if_match_is_a_compare_and_set(app_client, db):
    db.put(b"k", b"v1")
    old = tag_of(app_client)
    r = app_client.put("/v1/keys/k", content=b"v2", headers={"If-Match": old})
    assert r.status_code == 204
    new = r.headers["etag"]
    assert new == tag_of(app_client) != old
    for sent in (old, f"W/{new}", '"0000000000000000"'):
        r = app_client.put("/v1/keys/k", content=b"lost", headers={"If-Match": sent})
        assert r.status_code == 412 and r.json()["error"] == "precondition_failed", sent
        assert new in r.json()["message"] or sent != old
    assert db.get(b"k") == b"v2"
    assert (
        app_client.put("/v1/keys/k", content=b"v3", headers={"If-Match": f"{old}, {new}"}).status_code == 204
    )
    r = app_client.put("/v1/keys/missing", content=b"x", headers={"If-Match": new})
    assert r.status_code == 412 and db.get(b"missing") is None


def test_put_with_if_none_match_tags(app_client, db):
    db.put(b"k", b"v1")
    etag = tag_of(app_client)
    for sent in (etag, f"W/{etag}"):
        assert app_client.put("/v1/keys/k", content=b"no", headers={"If-None-Match": sent}).status_code == 412
    assert db.get(b"k") == b"v1"
    assert app_client.put("/v1/keys/k", content=b"v2", headers={"If-None-Match": '"x"'}).status_code == 204
    assert app_client.put("/v1/keys/new", content=b"n", headers={"If-None-Match": etag}).status_code == 201
    assert db.get(b"k") == b"v2" and db.get(b"new") == b"n"


def test_delete_incr_and_expire_take_tags(app_client, db):
    db.put(b"k", b"v")
    db.put(b"n", b"5")
    stale = tag_of(app_client)
    db.put(b"k", b"w")
    assert app_client.delete("/v1/keys/k", headers={"If-Match": stale}).status_code == 412
    assert app_client.delete("/v1/keys/k", headers={"If-None-Match": tag_of(app_client)}).status_code == 412
    assert db.get(b"k") == b"w"
    assert app_client.delete("/v1/keys/k", headers={"If-Match": tag_of(app_client)}).status_code == 204
    assert db.get(b"k") is None
    assert app_client.delete("/v1/keys/k", headers={"If-Match": stale}).status_code == 404

    n = tag_of(app_client, "n")
    r = app_client.post("/v1/keys/n/incr?delta=2", headers={"If-Match": n})
    assert r.status_code == 200 and r.json() == {"value": 7} and r.headers["etag"] == tag_of(app_client, "n")
    assert app_client.post("/v1/keys/n/incr", headers={"If-Match": n}).status_code == 412
    assert app_client.post("/v1/keys/fresh/incr", headers={"If-Match": n}).status_code == 412
    assert app_client.post("/v1/keys/fresh/incr", headers={"If-None-Match": n}).json() == {"value": 1}
    assert db.get(b"n") == b"7"
    assert app_client.post("/v1/keys/n/expire?ttl=50", headers={"If-Match": n}).status_code == 412
    assert db.ttl(b"n") is None
    current = tag_of(app_client, "n")
    r = app_client.post("/v1/keys/n/expire?ttl=50", headers={"If-Match": current})
    assert r.status_code == 200 and r.headers["etag"] == tag_of(app_client, "n") != current
    assert 49 < db.ttl(b"n") <= 50
    assert app_client.post("/v1/keys/gone/expire", headers={"If-Match": current}).status_code == 404


@pytest.mark.parametrize("sent", ["abc", '"a" "b"', '*, "a"', 'W/ "a"', '"a', ","])
def test_a_malformed_condition_is_400_and_changes_nothing(app_client, db, sent):
    db.put(b"k", b"v")
    for name in ("If-Match", "If-None-Match"):
        for r in (
            app_client.put("/v1/keys/k", content=b"x", headers={name: sent}),
            app_client.delete("/v1/keys/k", headers={name: sent}),
            app_client.post("/v1/keys/k/expire?ttl=5", headers={name: sent}),
            app_client.get("/v1/keys/k", headers={name: sent}),
        ):
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", (name, sent)
    assert db.get(b"k") == b"v" and db.ttl(b"k") is None


def test_if_range_serves_the_range_only_for_the_current_tag(app_client, db):
    db.put(b"k", b"0123456789")
    etag = tag_of(app_client)
    r = app_client.get("/v1/keys/k", headers={"Range": "bytes=2-4", "If-Range": etag})
    assert r.status_code == 206 and r.content == b"234" and r.headers["etag"] == etag
    for sent in (f"W/{etag}", '"0000000000000000"', "Wed, 21 Oct 2015 07:28:00 GMT"):
        r = app_client.get("/v1/keys/k", headers={"Range": "bytes=2-4", "If-Range": sent})
        assert r.status_code == 200 and r.content == b"0123456789", sent


def _race(attempts: list[Callable[[], int]]) -> list[int]:
    """Run the attempts in threads released at once; return their status codes, sorted."""
    barrier = threading.Barrier(len(attempts))
    codes: list[int] = []

    def run(attempt: Callable[[], int]) -> None:
        barrier.wait()
        codes.append(attempt())

    threads = [threading.Thread(target=run, args=(attempt,)) for attempt in attempts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(codes)


def test_threads_racing_one_compare_and_set_exactly_one_wins(app_client, db):
    def attempt(i: int, etag: str) -> Callable[[], int]:
        return lambda: (
            app_client.put("/v1/keys/k", content=b"t%d" % i, headers={"If-Match": etag}).status_code
        )

    for round_ in range(15):
        db.put(b"k", b"start")
        etag = tag_of(app_client)
        assert _race([attempt(i, etag) for i in range(8)]) == [204] + [412] * 7, round_
        assert db.get(b"k") != b"start"


def _serve(path: str, log) -> tuple[subprocess.Popen, str]:

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()  # (taken once the server listens: the next call finds another)
        args = [sys.executable, "-m", "kv_backend", "http", "--dir", path, "--port", str(port)]
        return subprocess.Popen(args, env=child_env(), stdout=log, stderr=subprocess.STDOUT), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2) as client:  # (one: each httpx.get builds a client and its TLS context)
        while time.monotonic() < deadline:
            assert proc.poll() is None, "kvb http exited"
            try:
                if client.get(url + "/healthz").status_code == 200:
                    return proc, url
            except httpx.TransportError:
                time.sleep(0.05)
    proc.kill()
    raise AssertionError("kvb http did not start")


def test_two_servers_on_one_store_let_exactly_one_compare_and_set_win(tmp_path):
    path = str(tmp_path / "store")
    procs = []
    with open(tmp_path / "log", "ab") as log:
        try:
            for _ in range(2):
                procs.append(_serve(path, log))
            urls = [url for _, url in procs]
            for round_ in range(3):
                assert httpx.put(f"{urls[0]}/v1/keys/k", content=b"r%d" % round_).status_code in (201, 204)
                etag = httpx.get(f"{urls[0]}/v1/keys/k").headers["etag"]
                assert httpx.head(f"{urls[1]}/v1/keys/k").headers["etag"] == etag  # the same in both
                clients = [httpx.Client(base_url=urls[i % 2], timeout=30) for i in range(6)]
                try:
                    codes = _race(
                        [
                            lambda c=c, i=i, etag=etag: (
                                c.put(
                                    "/v1/keys/k", content=b"w%d" % i, headers={"If-Match": etag}
                                ).status_code
                            )
                            for i, c in enumerate(clients)
                        ]
                    )
                finally:
                    for c in clients:
                        c.close()
                assert codes == [204] + [412] * 5, codes
                assert httpx.get(f"{urls[1]}/v1/keys/k").content.startswith(b"w")
        finally:
            for proc, _ in procs:
                proc.terminate()
                proc.wait(15)


def test_endpoints_other_than_a_key_still_refuse_conditions_and_name_the_ones_that_take_them(app_client):
    r = app_client.get("/v1/stats", headers={"If-Match": '"0000001a8c3e07f2"'})
    assert r.status_code == 400 and "incr, expire" in r.json()["message"]
