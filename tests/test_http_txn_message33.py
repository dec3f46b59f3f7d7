"""POST /v1/txn names a failed operation before the engine's message and says nothing was applied
after it: where the engine's message ends its sentence (a corrupt record's does), the answer read
"...restore the key from a backup.; nothing was applied"."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.http import create_app


def _damage_value(store: Path, value: bytes) -> None:
    """Flip one byte inside ``value`` in the store's data file, so that its record fails its checksum."""
    (data_file,) = store.glob("*.data")
    raw = bytearray(data_file.read_bytes())
    at = raw.find(value)
    assert at >= 0
    raw[at + len(value) // 2] ^= 0xFF
    data_file.write_bytes(bytes(raw))


def test_a_corrupt_record_in_a_transaction_reads_as_one_sentence(tmp_path):
    store = tmp_path / "store"
    db = DB(str(store))
    db.put(b"ok", b"fine")
    db.put(b"bad", b"A" * 64)
    db.close()
    _damage_value(store, b"A" * 64)
    with TestClient(create_app(str(store))) as client:
        r = client.post(
            "/v1/txn", json={"ops": [{"op": "put", "key": "new", "value": "1"}, {"op": "get", "key": "bad"}]}
        )
        assert r.status_code == 500
        body = r.json()
        assert body["error"] == "corrupt_record" and body["index"] == 1
        message = body["message"]
        assert message.startswith("operation 1 (get): ") and message.endswith("; nothing was applied")
        assert ".;" not in message, message
        assert client.get("/v1/keys/new").status_code == 404  # nothing was applied indeed
