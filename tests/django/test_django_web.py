"""KVCache behind Django's sessions, cache middleware and template fragment cache (test client)."""

from __future__ import annotations

from django.core.cache import cache, caches
from django.core.signals import request_finished
from django.test import Client, override_settings
from django.utils.cache import get_cache_key
from kv_backend_django.cache import KVCache

SITE_CACHE_MIDDLEWARE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
]


def test_sessions_live_in_the_kv_cache():
    client = Client()
    assert client.get("/session/").json()["visits"] == 1
    data = client.get("/session/").json()
    assert data["visits"] == 2
    session_key = data["key"]
    cached = cache.get("django.contrib.sessions.cache" + session_key)
    assert cached == {"visits": 2}
    # Another client (no cookie) gets a new session; the first keeps its own.
    assert Client().get("/session/").json()["visits"] == 1
    assert client.get("/session/").json()["visits"] == 3
    # Flushing the store logs everyone out, as with any cache-backed session.
    cache.clear()
    assert client.get("/session/").json()["visits"] == 1


def test_session_survives_a_reopened_store():
    from kv_backend_django.cache import close_all

    client = Client()
    client.get("/session/")
    close_all()  # as if the worker restarted: the data is in the files
    assert client.get("/session/").json()["visits"] == 2


def test_per_view_cache():
    client = Client()
    first = client.get("/cached/").content
    assert client.get("/cached/").content == first
    assert client.get("/uncached/").content != client.get("/uncached/").content
    keys = [k for k in cache.db if b"views.decorators.cache" in k]
    assert any(b"cache_page" in k for k in keys) and any(b"cache_header" in k for k in keys)
    cache.clear()
    assert client.get("/cached/").content != first


@override_settings(MIDDLEWARE=SITE_CACHE_MIDDLEWARE)
def test_per_site_cache_middleware():
    client = Client()
    first = client.get("/uncached/")
    assert first.status_code == 200
    assert client.get("/uncached/").content == first.content  # served from the cache
    assert "max-age=60" in first["Cache-Control"]
    from django.test import RequestFactory

    key = get_cache_key(RequestFactory().get("/uncached/"), key_prefix="site", cache=cache)
    assert key is not None and cache.get(key).content == first.content


def test_template_fragment_cache():
    client = Client()
    a1 = client.get("/fragment/?who=a").content.decode()
    a2 = client.get("/fragment/?who=a").content.decode()
    b = client.get("/fragment/?who=b").content.decode()
    outside1, inside1 = a1.split("outside ")[1].split("<")[0], a1.split("inside ")[1].split(" ")[0]
    outside2, inside2 = a2.split("outside ")[1].split("<")[0], a2.split("inside ")[1].split(" ")[0]
    assert outside1 != outside2  # the page is rendered again
    assert inside1 == inside2  # the fragment comes from the cache
    assert f"inside {b.split('outside ')[1].split('<')[0]} for b" in b  # a different vary-on key
    assert any(k.startswith(b":1:template.cache.frag.") for k in cache.db)


def test_close_after_each_request_keeps_the_store_open():
    db = cache.db
    closes = []
    real_close = KVCache.close

    def spy(self, **kwargs):
        closes.append(self)
        return real_close(self, **kwargs)

    KVCache.close = spy
    try:
        client = Client()
        for i in range(1, 4):
            assert client.get("/counter/").json()["hits"] == i
    finally:
        KVCache.close = real_close
    assert closes  # Django called close() at request end
    assert not db.closed and cache.db is db
    request_finished.send(sender=None)
    assert caches["default"].get("hits") == 3
