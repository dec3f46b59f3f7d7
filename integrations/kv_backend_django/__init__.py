"""Django integration for kv_backend (cache backend and management commands)."""
