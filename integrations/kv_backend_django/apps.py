"""Django app configuration: adds the kv_merge/kv_backup/kv_restore/kv_stats commands and system checks."""

from __future__ import annotations

from django.apps import AppConfig


class KVBackendConfig(AppConfig):
    """The ``kv_backend_django`` app; the cache backend itself works without it."""

    name = "kv_backend_django"
    verbose_name = "kv_backend cache"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from kv_backend_django import checks  # noqa: F401 - registers the system checks
