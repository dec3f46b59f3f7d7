"""Checks of statements that docs/*.md make, found wrong in a review of the session's docs changes."""

from __future__ import annotations

from pathlib import Path

from kv_backend.structures import Structures


def test_sintercard_takes_the_names_as_a_list(tmp_path: Path) -> None:
    """docs/redis.md: ``sintercard`` takes the names as a list (as ``sinter`` and the other set
    commands on several keys do), as well as one name an argument."""
    s = Structures(tmp_path / "db")
    try:
        s.sadd("s1", "a", "b", "c")
        s.sadd("s2", "b", "c")
        assert s.sintercard(["s1", "s2"]) == 2
        assert s.sintercard(["s1", "s2"], limit=1) == 1
        assert s.sintercard("s1", "s2") == 2
    finally:
        s.close()
