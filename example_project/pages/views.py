"""Views of the example site, one per use of the cache."""

from __future__ import annotations

import os
import time

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_page


def _slow_report() -> dict[str, object]:
    """Stands in for an expensive computation whose result is worth caching."""
    time.sleep(0.05)
    return {"rendered_at": time.strftime("%H:%M:%S"), "pid": os.getpid()}


@cache_page(30)
def home(request: HttpRequest) -> HttpResponse:
    """The whole response is cached for 30 s (the per-view cache)."""
    return render(request, "pages/home.html", _slow_report())


def health(request: HttpRequest) -> HttpResponse:
    """Liveness probe (touches nothing)."""
    return HttpResponse("ok", content_type="text/plain")


def counter(request: HttpRequest) -> JsonResponse:
    """A page-hit counter: add() creates it once, incr() is atomic across workers."""
    cache.add("demo:hits", 0, timeout=None)
    return JsonResponse({"hits": cache.incr("demo:hits"), "pid": os.getpid()})


def session(request: HttpRequest) -> JsonResponse:
    """Per-visitor state in a session stored in the cache (SESSION_ENGINE = cache)."""
    visits = request.session.get("visits", 0) + 1
    request.session["visits"] = visits
    if request.session.session_key is None:
        request.session.save()  # give a new visitor its key now (it is saved at the end anyway)
    return JsonResponse({"visits": visits, "session_key": request.session.session_key})


def fragment(request: HttpRequest) -> HttpResponse:
    """A template with a fragment cached in the "fragments" alias ({% cache ... using="fragments" %})."""
    return render(request, "pages/fragment.html", _slow_report())


# --- Celery -----------------------------------------------------------------
# CELERY: the Celery integration replaces this view with one that starts a task
# whose result is stored by the kv_backend Celery result backend.
def start_task(request: HttpRequest) -> JsonResponse:
    """Placeholder until the Celery integration is wired in (see docs/django.md)."""
    return JsonResponse({"celery": "not configured in this example yet"}, status=501)
