"""docs/store.md's memory per key agrees with the engine's measured figure in docs/benchmarks.md.

It said "a few dozen bytes plus the key" while the engine section measures about 123 bytes per
16-byte key at a million keys: some 107 bytes besides the key, three times what the page said.
"""

from __future__ import annotations

import re

from tests.test_docs_claims12 import _flat, _number, _rows


def test_store_md_memory_per_key_matches_the_engine_section():
    (target,) = [cells for name, cells in _rows("engine").items() if name == "kv_backend (target)"]
    besides_key = _number(target[1]) - 16  # the figure is for 16-byte keys, key included
    m = re.search(r"about (\d+) bytes plus the key", _flat("docs/store.md"))
    assert m, "docs/store.md gives no memory per key"
    assert abs(int(m.group(1)) - besides_key) <= 0.15 * besides_key, (m.group(0), besides_key)
    assert "few dozen bytes" not in _flat("docs/store.md")
