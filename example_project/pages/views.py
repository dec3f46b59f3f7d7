"""Views of the example site, one per use of the cache."""

from __future__ import annotations

import math
import os
import time

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_page


def _slow_report() -> dict[str, object]:
    """Stands in for an expensive computation whose result is worth caching."""
    time.sleep(0.05)
    now = time.time()  # to the millisecond: two renders within one second still differ
    return {
        "rendered_at": time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}",
        "pid": os.getpid(),
    }


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
DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog; the dog sleeps."
#: The longest ``/task/?timeout=`` a request may wait for its result, in seconds.
MAX_WAIT = 60


def start_task(request: HttpRequest) -> JsonResponse:
    """Start the word_count task on ``?text=``, wait for its result (kvb:// wakes on write) and show it.

    ``?wait=0`` only starts it: follow the returned URL to read its state later. ``?timeout=``
    (seconds, default 10, at most MAX_WAIT) is checked before the task starts: a bad one is a 400.
    A broker that cannot be reached (none started) is a 503 that says how to start one.
    """
    from celery.exceptions import TimeoutError as CeleryTimeoutError
    from kombu.exceptions import OperationalError
    from kombu.utils.url import maybe_sanitize_url

    from pages.tasks import word_count

    try:
        wait = float(request.GET.get("timeout", "10"))
    except ValueError:
        wait = math.nan
    if not 0 < wait <= MAX_WAIT:  # also NaN; a huge wait would hold a worker for as long
        return JsonResponse(
            {"error": f"timeout must be a number of seconds above 0 and at most {MAX_WAIT}"}, status=400
        )
    started = time.perf_counter()
    try:
        result = word_count.delay(request.GET.get("text", DEFAULT_TEXT))
    except OperationalError as exc:  # no broker listening: say which and how to start one, not a bare 500
        broker = maybe_sanitize_url(word_count.app.conf.broker_url)
        return JsonResponse(
            {
                "error": f"cannot reach the Celery broker at {broker} ({exc}): start it, or start "
                "kvb serve --dir var/broker --port 6380 and set KVB_EXAMPLE_BROKER=redis://127.0.0.1:6380/0 "
                "for the site and the worker (celery -A mysite worker)"
            },
            status=503,
        )
    reply: dict[str, object] = {"task_id": result.id, "status_url": f"/task/{result.id}/"}
    if request.GET.get("wait", "1") != "0":
        try:
            reply["result"] = result.get(timeout=wait)
        except CeleryTimeoutError:
            reply["error"] = "no result yet: is a worker running? (celery -A mysite worker)"
        reply["waited_ms"] = round((time.perf_counter() - started) * 1000, 1)
    reply["state"] = result.state
    return JsonResponse(reply, status=200 if "error" not in reply else 504)


def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """State and result of a task, read from the kvb:// result store like any other process would."""
    from celery.result import AsyncResult

    result = AsyncResult(task_id)
    reply: dict[str, object] = {"task_id": task_id, "state": result.state}
    if result.successful():
        reply["result"] = result.result
        reply["worker"] = result.worker
        reply["date_done"] = str(result.date_done) if result.date_done else None
    elif result.failed():
        reply["error"] = repr(result.result)
    return JsonResponse(reply)
