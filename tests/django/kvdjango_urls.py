"""URLs and views used by the web tests (sessions, per-view cache, fragment cache)."""

from __future__ import annotations

import itertools

from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.cache import cache_page

_calls = itertools.count(1)


def custom_key_func(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION for the tests: another layout than Django's default."""
    return f"CUSTOM-{key_prefix}-{version}-{key}"


def session_view(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"], "key": request.session.session_key})


@cache_page(60)
def cached_view(request):
    return HttpResponse(f"computed {next(_calls)}")


def uncached_view(request):
    return HttpResponse(f"computed {next(_calls)}")


def fragment_view(request):
    return render(request, "fragment.html", {"n": next(_calls), "who": request.GET.get("who", "x")})


def counter_view(request):
    cache.add("hits", 0, None)
    return JsonResponse({"hits": cache.incr("hits")})


urlpatterns = [
    path("session/", session_view),
    path("cached/", cached_view),
    path("uncached/", uncached_view),
    path("fragment/", fragment_view),
    path("counter/", counter_view),
]
