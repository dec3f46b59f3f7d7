"""Celery result backend for kv_backend (``kvb://`` URLs)."""
