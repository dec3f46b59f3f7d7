"""A loop over a Store walks its live keys, its own writes included (docs/store.md, "Mapping behaviour").

A dict raises RuntimeError when a loop changes its size; a Store does not, and meets the keys the
loop adds past the current one, so such a loop may not end; list(s) is the snapshot to loop over.
"""

from __future__ import annotations

import itertools

from kv_backend import Store


def test_a_live_loop_meets_the_keys_it_adds_past_the_current_one(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({"a": 1, "b": 2})
        met = []
        for key in itertools.islice(s, 6):  # bounded here: unbounded, it would run to the key size limit
            met.append(key)
            s["v2:" + key] = s[key]
        assert met == ["a", "b", "v2:a", "v2:b", "v2:v2:a", "v2:v2:b"]
        met_in_view = list(itertools.islice(s.keys(prefix="v2:"), 3))
        assert met_in_view == ["v2:a", "v2:b", "v2:v2:a"]


def test_looping_over_a_snapshot_writes_once_per_key(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({"a": 1, "b": 2})
        for key in list(s):
            s["v2:" + key] = s[key]
        for key, value in list(s.items(prefix="v2:")):
            s[key.upper()] = value
        assert dict(s) == {"a": 1, "b": 2, "v2:a": 1, "v2:b": 2, "V2:A": 1, "V2:B": 2}


def test_deleting_during_a_live_loop_never_fails(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({f"k{i:02d}": i for i in range(30)})
        pairs = []
        for key, value in s.items():
            pairs.append((key, value))
            s.pop(f"k{value + 1:02d}", None)  # the next key goes, maybe after the walk listed it
        assert pairs[:1] == [("k00", 0)]
        assert all(int(key[1:]) == value for key, value in pairs)
        assert len(s) == 30 - len(pairs)  # every pair met was kept, each deleted its successor
