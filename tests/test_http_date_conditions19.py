"""Date-based conditions: keys have no modification dates, so docs/http.md says they are ignored."""

from __future__ import annotations

OLD = "Wed, 21 Oct 2015 07:28:00 GMT"


def test_if_unmodified_since_and_if_modified_since_are_ignored_as_documented(app_client):
    assert app_client.put("/v1/keys/k", content=b"1", headers={"If-Unmodified-Since": OLD}).status_code == 201
    r = app_client.get("/v1/keys/k", headers={"If-Modified-Since": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert r.status_code == 200 and r.content == b"1"  # never 304: there is no date to compare
    assert "last-modified" not in r.headers
    assert app_client.put("/v1/keys/k", content=b"2", headers={"If-Unmodified-Since": OLD}).status_code == 204
    assert app_client.get("/v1/keys/k").content == b"2"
    assert app_client.delete("/v1/keys/k", headers={"If-Unmodified-Since": OLD}).status_code == 204


def test_the_docs_say_so():
    from pathlib import Path

    doc = " ".join((Path(__file__).parent.parent / "docs" / "http.md").read_text().split())
    assert "`If-Unmodified-Since` and `If-Modified-Since` are ignored" in doc
