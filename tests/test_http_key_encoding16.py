"""kv_backend.http.encode_key and decode_key refuse what is not a key with the project's error.

``encode_key("user:1")`` (the call the http.md recipe invites with a text key) raised the
standard library's ``TypeError: quote_from_bytes() expected bytes``, naming no cause or fix, and
a memoryview was refused although keys may be any bytes-like object.
"""

from __future__ import annotations

import pytest

from kv_backend.errors import InvalidKeyError
from kv_backend.http import decode_key, encode_key


def test_encode_key_names_the_fix_for_text():
    with pytest.raises(InvalidKeyError, match=r"not str \(encode_key\(key.encode\(\)\)"):
        encode_key("user:1")
    with pytest.raises(TypeError, match="not int"):
        encode_key(5)


def test_encode_key_takes_any_bytes_like_key():
    assert encode_key(memoryview(b"users/42\xff")) == encode_key(b"users/42\xff") == "users%2F42%FF"
    assert encode_key(bytearray(b"..")) == "%2E%2E"


def test_decode_key_refuses_what_is_not_text():
    with pytest.raises(InvalidKeyError, match="not int"):
        decode_key(5)
    assert decode_key("users%2F42%FF") == decode_key(b"users%2F42%FF") == b"users/42\xff"
