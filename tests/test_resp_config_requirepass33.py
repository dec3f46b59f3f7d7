"""CONFIG SET requirepass on kvb serve, which takes its password at start only: a value other than the
password in force is refused, and its error does not claim the password is empty. On a server started
with a password, CONFIG SET requirepass "" answered OK while the password stayed in force (CONFIG GET
answers "" rather than the password), so a client that meant to remove it was told it had."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from resp_helpers import RunningServer


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    srv = RunningServer(str(tmp_path_factory.mktemp("pw") / "store"), requirepass="s3cret").start()
    yield srv
    srv.stop()


def test_removing_the_password_is_refused_and_it_stays(guarded):
    client = redis.Redis(port=guarded.port, password="s3cret")
    with pytest.raises(redis.ResponseError) as refused:
        client.config_set("requirepass", "")
    message = str(refused.value)
    assert "requirepass" in message and "cannot change it" in message
    assert "''" not in message and "s3cret" not in message  # neither a false value nor the password
    with pytest.raises(redis.AuthenticationError):  # still required
        redis.Redis(port=guarded.port, retry=Retry(NoBackoff(), 0)).get("x")
    client.close()


def test_another_password_is_refused_and_the_same_one_taken(guarded):
    client = redis.Redis(port=guarded.port, password="s3cret")
    with pytest.raises(redis.ResponseError, match="cannot change it"):
        client.config_set("requirepass", "other")
    assert client.config_set("requirepass", "s3cret") is True  # its value in force: no change
    assert client.config_get("requirepass") == {"requirepass": ""}  # never shown
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=guarded.port, password="other", retry=Retry(NoBackoff(), 0)).get("x")
    client.close()


def test_without_a_password_only_the_empty_one_is_taken(tmp_path):
    srv = RunningServer(str(tmp_path / "store")).start()
    try:
        client = redis.Redis(port=srv.port)
        assert client.config_set("requirepass", "") is True
        with pytest.raises(redis.ResponseError, match="cannot change it"):
            client.config_set("requirepass", "new")
        assert client.ping() is True  # no password was set
        client.close()
    finally:
        srv.stop()
