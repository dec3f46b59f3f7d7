"""Network servers over a kv_backend store: :mod:`kv_backend.server.resp` speaks the Redis protocol."""
