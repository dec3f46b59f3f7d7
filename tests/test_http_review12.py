"""HTTP interface review 12: a cheap HEAD, OPTIONS, and what API users expect of the rest (#7)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from helpers import data_files, patch_engine
from helpers import key_url as url
from starlette.testclient import TestClient

import kv_backend.http.app as app_module
from kv_backend import DB, record
from kv_backend.errors import CorruptionError
from kv_backend.http import create_app


def _damage(store: str, db: DB, key: bytes, where: str) -> None:
    """Flip one byte of ``key``'s newest record on disk: in its value, or in its key."""
    loc = db._ix.kd[key]
    offset = (loc >> 32) & ((1 << 40) - 1)
    pos = offset + record.HEADER_SIZE + (len(key) + 1 if where == "value" else 0)
    (path,) = data_files(store)
    with open(path, "r+b") as f:
        f.seek(pos)
        byte = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([byte ^ 1]))


# ------------------------------------------------------- a cheap HEAD


def test_size_with_expiry_reads_a_keys_size_and_expiry(store_path):
    with DB(store_path) as db, DB(store_path) as other:
        db.put(b"k", b"x" * 1000, ttl=100)
        db.put(b"empty", b"")
        db.put(b"gone", b"v", ttl=0.001)
        size, expiry = db.size_with_expiry(b"k")
        assert size == 1000 and expiry == db.get_with_expiry(b"k")[1]
        assert db.size_with_expiry(bytearray(b"empty")) == (0, None)
        assert db.size_with_expiry(b"missing") is None
        other.put(b"k", b"yy")  # another process's write is seen at once
        assert db.size_with_expiry(b"k") == (2, None)
        with db.transaction():
            db.put(b"t", b"abc")
            assert db.size_with_expiry(b"t") == (3, None)  # a transaction sees its own writes
        assert other.size_with_expiry(b"t") == (3, None)
        time.sleep(0.002)
        assert db.size_with_expiry(b"gone") is None
        db.merge()
        assert db.size_with_expiry(b"k") == (2, None) and db.size_with_expiry(b"empty") == (0, None)


def test_head_answers_what_get_answers_without_its_body(app_client, db, monkeypatch):
    db.put(b"k/1", b"x" * 5000, ttl=100)
    db.put(b"forever", b"0123456789")
    now = time.time() + 0.123456789  # frozen: the length of a JSON body depends on the TTL's digits
    patch_engine(monkeypatch, "_time", lambda: now)
    monkeypatch.setattr(app_module, "time", SimpleNamespace(time=lambda: now, monotonic=time.monotonic))
    for key in (b"k/1", b"forever"):
        for query in ("", "?format=json"):
            get = app_client.get(url(key) + query)
            head = app_client.head(url(key) + query)
            assert head.status_code == get.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(get.content))
            assert head.headers["content-type"] == get.headers["content-type"]
            assert ("x-kv-ttl" in head.headers) == ("x-kv-ttl" in get.headers) == (key == b"k/1")
    assert 99.8 < float(app_client.head(url(b"k/1")).headers["x-kv-ttl"]) < 100
    assert app_client.head(url(b"missing")).status_code == 404
    r = app_client.head(url(b"forever"), headers={"If-None-Match": "*"})
    assert r.status_code == 304 and r.content == b""
    assert app_client.head(url(b"missing"), headers={"If-None-Match": "*"}).status_code == 404
    assert app_client.head(url(b"forever"), headers={"If-Match": "*"}).status_code == 200
    assert app_client.head(url(b"forever"), headers={"If-Match": '"tag"'}).status_code == 412
    assert app_client.head(url(b"forever") + "?format=xml").status_code == 400
    assert app_client.head(url(b"forever") + "?ttl=1").status_code == 400
    with TestClient(create_app(db, token="t")) as c:
        assert c.head(url(b"forever")).status_code == 401
        r = c.head(url(b"forever"), headers={"Authorization": "Bearer t"})
        assert r.status_code == 200 and r.headers["content-length"] == "10"


def test_head_neither_reads_nor_checksums_the_value(app_client, db, monkeypatch):
    """HEAD read the whole value and checked its CRC (twice: once for the value, once for the TTL)
    only to answer Content-Length; docs/http.md calls it a cheap existence check."""
    db.put(b"big", b"v" * (1 << 20), ttl=60)

    def no_checksum(data: object) -> int:
        raise AssertionError("HEAD checksummed the value")

    patch_engine(monkeypatch, "_crc32", no_checksum)
    r = app_client.head(url(b"big"))
    assert r.status_code == 200 and r.headers["content-length"] == str(1 << 20)
    assert r.headers["content-type"] == "application/octet-stream"
    with pytest.raises(AssertionError):
        db.get(b"big")  # (the patch does reach the reads)


def test_head_of_a_damaged_value_answers_200_and_get_500(store_path):
    """The documented choice: HEAD does not verify the value (GET does); a damaged key is still 500."""
    with DB(store_path) as db:
        db.put(b"a", b"first value")
        db.put(b"b", b"second value")
        _damage(store_path, db, b"a", "value")
        _damage(store_path, db, b"b", "key")
        with TestClient(create_app(db), raise_server_exceptions=False) as c:
            assert c.get(url(b"a")).json()["error"] == "corrupt_record"
            r = c.head(url(b"a"))
            assert r.status_code == 200 and r.headers["content-length"] == "11"
            assert c.head(url(b"b")).status_code == 500  # the record holds another key
        with pytest.raises(CorruptionError):
            db.size_with_expiry(b"b")


# ------------------------------------------------------- OPTIONS


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        (url(b"a/b"), "GET, HEAD, PUT, DELETE, OPTIONS"),
        (url(b"a/b", "/incr"), "POST, OPTIONS"),
        (url(b"a/b", "/expire") + "?ttl=5", "POST, OPTIONS"),
        ("/v1/keys?limit=1", "GET, HEAD, OPTIONS"),
        ("/v1/stats", "GET, HEAD, OPTIONS"),
        ("/openapi.json", "GET, HEAD, OPTIONS"),
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/v1/merge", "POST, OPTIONS"),
        ("/v1/backup", "POST, OPTIONS"),
        ("/v1/txn", "POST, OPTIONS"),
    ],
)
def test_options_answers_204_with_the_methods_of_the_resource(db, path, allow):
    """RFC 9110 9.3.7: OPTIONS asks which methods a resource takes; every route answered it 405."""
    with TestClient(create_app(db, token="t")) as c:
        auth = {"Authorization": "Bearer t"}
        r = c.options(path, headers=auth)
        assert r.status_code == 204 and r.headers["allow"] == allow and r.content == b""
        assert "content-length" not in r.headers  # RFC 9110: never in a 204
        if path != "/healthz":
            assert c.options(path).status_code == 401  # as every other method
        r = c.request("PROPFIND", path, headers=auth)
        assert r.status_code == 405 and r.headers["allow"] == allow  # the same list, in one order
        assert r.json()["error"] == "method_not_allowed" and allow in r.json()["message"]
    assert db.stats()["keys"] == 0


def test_options_of_a_path_that_names_nothing_is_an_error(app_client, db):
    from test_http_review11 import _call

    assert app_client.options("/v1/nothing").status_code == 404
    assert app_client.options(url(b"k", "/nothing")).status_code == 404
    assert app_client.options("/v1/keys/%ZZ").json()["error"] == "invalid_encoding"
    assert app_client.options("/v1/keys/").json()["error"] == "invalid_key"
    status, body = _call(create_app(db), "OPTIONS", b"/v1/keys/" + b"k" * 65537 + b"/incr")
    assert status == 400 and b"invalid_key" in body


def test_options_asterisk_describes_the_server(db):
    """OPTIONS * (RFC 9110 9.3.7, the server as a whole) matched no route: 404."""
    from test_http_review11 import _call

    status, body = _call(create_app(db), "OPTIONS", b"*")
    assert (status, body) == (204, b"")
    app = create_app(db, token="t")
    assert _call(app, "OPTIONS", b"*")[0] == 401
    assert _call(app, "OPTIONS", b"*", [(b"authorization", b"Bearer t")])[0] == 204
    assert _call(create_app(db), "GET", b"*")[0] == 404


@pytest.mark.parametrize("token", [None, "t"])
def test_a_cors_preflight_is_refused_not_answered_as_if_it_succeeded(db, token):
    """The API sends no CORS headers; a preflight must not look like it worked (it was 405, and a
    bare 204 would read as a success in the browser's and proxies' logs)."""
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization",
    }
    with TestClient(create_app(db, token=token)) as c:
        for path in (url(b"k"), "/v1/txn", "/v1/nothing"):
            r = c.options(path, headers=preflight)
            assert r.status_code == 403 and r.json()["error"] == "cross_origin_refused", path
            assert not any(name.startswith("access-control-") for name in r.headers)
            assert "CORS" in r.json()["message"]


# ------------------------------------------------------- cross-site request forgery

#: What a browser sends with fetch(url, {method: "POST", mode: "no-cors", body: "..."}) from a page
#: of another site: a "simple" request, sent without a preflight.
_FORGED = {"Origin": "https://evil.example", "Content-Type": "text/plain;charset=UTF-8"}


@pytest.mark.parametrize(
    "headers",
    [
        {**_FORGED, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
        {**_FORGED, "Sec-Fetch-Site": "same-site"},  # another origin of the same site
        _FORGED,  # an older browser: Origin only
        {**_FORGED, "Origin": "null"},  # a sandboxed page or a local file
    ],
    ids=["cross-site", "same-site", "origin-only", "origin-null"],
)
def test_a_web_page_of_another_origin_cannot_write_to_a_server_without_a_token(app_client, db, headers):
    """Without a token, any web page its user visited could drive a local kvb http: a POST with a
    text/plain body needs no CORS preflight, so it ran transactions, incrs and backups (to a URL of
    the page's choosing), and the browser only kept the page from reading the answer."""
    db.put(b"k", b"precious")
    txn = b'{"ops": [{"op": "delete", "key": "k"}]}'
    for path, body in [("/v1/txn", txn), (url(b"n", "/incr"), b""), (url(b"k", "/expire?ttl=1"), b"")]:
        r = app_client.post(path, content=body, headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "cross_origin_refused", path
    r = app_client.post("/v1/backup", content=b'{"url": "file:///tmp/x"}', headers=headers)
    assert r.status_code == 403
    assert db.get(b"k") == b"precious" and db.ttl(b"k") is None and b"n" not in db
    assert app_client.get(url(b"k"), headers=headers).status_code == 200  # the browser hides reads


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, httpx, requests: no browser
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://kv.example"},  # the app's own page
        {"Sec-Fetch-Site": "none"},  # a URL the user typed
        {"Origin": "http://testserver"},  # an older browser on the server's own origin
    ],
    ids=["no-browser", "same-origin", "typed", "origin-is-host"],
)
def test_writes_of_clients_and_same_origin_pages_still_work(app_client, db, headers):
    assert app_client.post(url(b"n", "/incr"), headers=headers).json() == {"value": 1}
    assert app_client.put(url(b"k"), content=b"v", headers=headers).status_code == 201


def test_with_a_token_a_cross_origin_write_is_left_to_the_token(db):
    """A page cannot send the token without a preflight that a CORS proxy would have to allow."""
    with TestClient(create_app(db, token="t")) as c:
        forged = {**_FORGED, "Sec-Fetch-Site": "cross-site"}
        assert c.post(url(b"n", "/incr"), headers=forged).status_code == 401
        r = c.post(url(b"n", "/incr"), headers={**forged, "Authorization": "Bearer t"})
        assert r.json() == {"value": 1}


# ------------------------------------------------------- partial PUT


def test_a_put_with_content_range_is_refused_not_stored_as_the_whole_value(app_client, db):
    """RFC 9110 14.5: a PUT with Content-Range carries part of a representation; it replaced the
    whole value by that part (a 10-byte value became the 2 bytes sent for its range 2-3)."""
    db.put(b"k", b"0123456789")
    for headers in ({"Content-Range": "bytes 2-3/10"}, {"Content-Range": "bytes 2-3/10", "If-Match": "*"}):
        r = app_client.put(url(b"k"), content=b"AB", headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        assert "Content-Range" in r.json()["message"]
    r = app_client.put(url(b"new"), content=b"AB", headers={"Content-Range": "bytes 0-1/*"})
    assert r.status_code == 400
    assert db.get(b"k") == b"0123456789" and b"new" not in db


# ------------------------------------------------------- GET: one read of the value


def test_get_reads_and_checksums_the_value_once_and_never_takes_the_write_lock(app_client, db, monkeypatch):
    """GET read the value, then its TTL (a second read of the whole record, checksum included),
    and when a write by any process landed between the two, three times in a row, it read again
    under the store's write lock: a GET on a busy store waited for writers (a transaction, a
    merge in another process), though docs/http.md says readers do not. The value and its expiry
    now come from one read of one record."""
    import kv_backend.db_read as db_read

    db.put(b"k", b"v" * 100_000, ttl=60)
    sizes: list[int] = []
    real_crc = db_read._crc32

    def counting_crc(data: object) -> int:
        sizes.append(len(data))  # type: ignore[arg-type]
        return real_crc(data)

    tokens = iter(range(10**6))  # a write lands between every two looks at the change token
    monkeypatch.setattr(db, "change_token", lambda: next(tokens))

    def no_lock() -> None:
        raise AssertionError("a GET took the write lock")

    monkeypatch.setattr(db, "locked", no_lock)
    patch_engine(monkeypatch, "_crc32", counting_crc)
    r = app_client.get(url(b"k"))
    assert r.status_code == 200 and len(r.content) == 100_000 and 59 < float(r.headers["x-kv-ttl"]) <= 60
    assert len([n for n in sizes if n >= 100_000]) == 1
    r = app_client.get(url(b"k") + "?format=json")
    assert r.json()["ttl"] > 59 and len([n for n in sizes if n >= 100_000]) == 2


# ------------------------------------------------------- bodies of endpoints that take none


def test_a_body_sent_to_incr_expire_or_merge_is_refused_not_ignored(app_client, db):
    """POST /expire with {"ttl": 300} (as a transaction's expire takes it) removed the key's expiry,
    since without ?ttl= a key never expires; {"delta": 5} to /incr added 1. Such a body is 400."""
    db.put(b"s", b"x", ttl=30)
    r = app_client.post(url(b"s", "/expire"), json={"ttl": 300})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "?ttl=" in r.json()["message"] and 29 < db.ttl(b"s") <= 30
    r = app_client.post(url(b"n", "/incr"), json={"delta": 5})
    assert r.status_code == 400 and "?delta=" in r.json()["message"] and b"n" not in db
    r = app_client.post("/v1/merge", json={"wait": True})
    assert r.status_code == 400 and "?wait=" in r.json()["message"]
    chunked = app_client.post(url(b"n", "/incr"), content=iter([b"5"]))  # a body of unknown length
    assert chunked.status_code == 400 and b"n" not in db
    # no body, an empty one (requests and httpx send Content-Length: 0), an empty chunked one
    assert app_client.post(url(b"n", "/incr")).json() == {"value": 1}
    assert app_client.post(url(b"n", "/incr"), content=b"").json() == {"value": 2}
    assert app_client.post(url(b"n", "/incr"), content=iter([b""])).json() == {"value": 3}
    assert app_client.post(url(b"s", "/expire?ttl=60"), content=b"").json() == {"ttl": 60.0}
    assert app_client.post("/v1/merge", headers={"Content-Length": "00"}).status_code == 200


# ------------------------------------------------------- DNS rebinding


def _call_host(app, method: str, raw_path: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Send one request straight to the ASGI app, with the Host header among ``headers``."""
    from test_http_review11 import _scope

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = _scope(method, raw_path.decode("ascii"), [])
    scope["headers"] = headers
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _opened(app) -> None:
    """Start the lifespan of the ASGI app kvb http hands to uvicorn, as uvicorn does (the store is
    opened then, while the server listens) and wait until the store is open (GET /healthz is 200)."""
    from test_http_review11 import _scope

    async def start() -> None:
        messages = [{"type": "lifespan.startup"}]
        started = asyncio.Event()

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # (no shutdown: the task is cancelled)
            return {}

        async def send(message: dict) -> None:
            started.set()

        lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
        await started.wait()
        sent: list[dict] = [{"status": 503}]
        deadline = time.monotonic() + 20
        while sent[0]["status"] == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            sent.clear()

            async def note(message: dict) -> None:
                sent.append(message)

            async def request() -> dict:
                return {"type": "http.request", "body": b"", "more_body": False}

            await app(_scope("GET", "/healthz", []), request, note)
        lifespan.cancel()
        assert sent[0]["status"] == 200, sent

    asyncio.run(start())


def _while_served(monkeypatch, tmp_path, check, **kwargs) -> None:
    """Run ``check(app)`` on the ASGI app kvb http (``serve``) hands to uvicorn, without listening."""
    import uvicorn

    import kv_backend.http.server as http_server

    class NotListening:
        started = True

        def __init__(self, config: object) -> None:
            self.app = config.app  # type: ignore[attr-defined]

        def run(self) -> None:
            _opened(self.app)
            check(self.app)

    monkeypatch.delenv("KVB_HTTP_TOKEN", raising=False)
    monkeypatch.setattr(uvicorn, "Server", NotListening)
    http_server.serve(str(tmp_path / "store"), log_level="warning", **kwargs)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (b"evil.example:8380", 400),  # a page of that site, its name rebound to 127.0.0.1
        (b"Evil.Example", 400),
        (b"127.0.0.1:8380", 200),
        (b"localhost:8380", 200),
        (b"LOCALHOST", 200),
        (b"kv.localhost:8380", 200),  # browsers resolve *.localhost themselves
        (b"[::1]:8380", 200),
        (b"10.1.2.3", 200),  # an address: no page can claim it
    ],
)
def test_kvb_http_on_loopback_without_a_token_serves_only_local_names(monkeypatch, tmp_path, host, status):
    """A web page whose domain name is made to resolve to 127.0.0.1 after it loaded (DNS rebinding)
    is the same origin as a local kvb http for the browser: it read and wrote the whole store,
    CSRF check or not. Only its Host header gives it away."""

    def check(app) -> None:
        headers = [(b"host", host), (b"sec-fetch-site", b"same-origin")]
        got, body = _call_host(app, "GET", b"/v1/keys", headers)
        assert got == status, body
        if status == 400:
            assert b'"invalid_host"' in body and b"127.0.0.1" in body
            assert _call_host(app, "POST", b"/v1/keys/n/incr", headers)[0] == 400
            assert _call_host(app, "GET", b"/healthz", headers)[0] == 400
            assert _call_host(app, "GET", b"/v1/keys", [(b"host", b"localhost"), *headers])[0] == 400
            old_browser = [(b"host", host), (b"origin", b"http://" + host)]
            assert _call_host(app, "POST", b"/v1/keys/n/incr", old_browser)[0] == 400
            # a program (curl --header "Host: ...", a proxy passing its Host on) is no web page
            assert _call_host(app, "GET", b"/v1/keys", [(b"host", host)])[0] == 200

    _while_served(monkeypatch, tmp_path, check)


def test_the_host_check_is_left_to_the_token_or_to_a_non_loopback_address(monkeypatch, tmp_path):
    evil = [(b"host", b"evil.example")]
    _while_served(
        monkeypatch,
        tmp_path,
        lambda app: (
            _call_host(app, "GET", b"/v1/keys", [*evil, (b"authorization", b"Bearer t")])[0] == 200
            or pytest.fail("refused with a token")
        ),
        token="t",
    )
    # reached by any name, it warns instead (no token); in your own ASGI app, the Host is yours
    _while_served(
        monkeypatch,
        tmp_path,
        lambda app: _call_host(app, "GET", b"/v1/keys", evil)[0] == 200 or pytest.fail("refused"),
        host="0.0.0.0",
    )
    with DB(str(tmp_path / "store")) as db:
        assert _call_host(create_app(db), "GET", b"/v1/keys", evil)[0] == 200


def test_head_of_a_value_as_json_builds_nothing_of_the_value_size(app_client, db, monkeypatch):
    """HEAD ?format=json measured GET's JSON body by building it around a placeholder as long as
    the value's base64: 1.4 GB of text (twice) for a 1 GiB value, on a request meant to be cheap."""
    db.put(b"k", b"v" * 3000)
    monkeypatch.setattr(db, "size_with_tag", lambda key: (64 << 20, None, 1))  # as if 64 MiB
    tracemalloc = pytest.importorskip("tracemalloc")
    tracemalloc.start()
    try:
        r = app_client.head(url(b"k") + "?format=json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 200 and int(r.headers["content-length"]) > 4 * (64 << 20) // 3
    assert peak < 4 << 20
    monkeypatch.undo()
    assert app_client.head(url(b"k") + "?format=json").headers["content-length"] == str(
        len(app_client.get(url(b"k") + "?format=json").content)
    )


# ------------------------------------------------------- backup bodies


def test_a_backup_body_that_gives_a_member_twice_is_refused(app_client, tmp_path):
    """{"url": A, "url": B} backed up to B (Python keeps the last; other parsers, and a proxy
    checking the body, the first), where a transaction's body, like a repeated query parameter,
    is refused."""
    first, second = tmp_path / "first", tmp_path / "second"
    for body in (
        f'{{"url": "file://{first}", "url": "file://{second}"}}',
        f'{{"url": "file://{first}", "storage_options": {{"auto_mkdir": true, "auto_mkdir": false}}}}',
    ):
        r = app_client.post("/v1/backup", content=body.encode())
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        assert "twice" in r.json()["message"]
    assert not first.exists() and not second.exists()
    r = app_client.post("/v1/backup", content=b"[" * 100_000)  # too deep for the parser: still a 400
    assert r.status_code == 400
