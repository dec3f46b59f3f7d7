"""The pages of the example site: each one shows one way Django uses the kv_backend cache."""
