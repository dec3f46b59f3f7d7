"""The example site's project package (settings, URLs, WSGI/ASGI entry points, Celery app)."""

from mysite.celery import app as celery_app

__all__ = ("celery_app",)
