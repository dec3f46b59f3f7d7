"""A writeback shelf left open in a global is written back at a normal interpreter exit (docs/store.md).

Left to the garbage collector, such a shelf was written back during the interpreter's teardown, when
an instance of a class of the script (``__main__``) can no longer be pickled: the write-back, one
atomic batch, then stored none of the cached changes, a plain list's included, and printed
"Exception ignored in: Shelf.__del__". (The stdlib's shelf loses the entries it cannot pickle there.)
"""

from __future__ import annotations

import io
import pickle

from helpers import run_python

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve

LEFT_OPEN = """
import sys
import kv_backend.shelve as kshelve

class Point:  # a class of __main__
    def __init__(self):
        self.x = 0

shelf = kshelve.open(sys.argv[1], writeback=True)
shelf["log"] = []
shelf["log"].append("changed in the cache")
shelf["point"] = Point()
shelf["point"].x = 5
print("done", flush=True)
"""


class _Point:
    x: int


class _ScriptUnpickler(pickle.Unpickler):
    """Reads the child script's ``__main__.Point`` as :class:`_Point`."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ("__main__", "Point"):
            return _Point
        return super().find_class(module, name)


def _point_x(path: str) -> int:
    with kdbm.open(path) as db:
        point = _ScriptUnpickler(io.BytesIO(db[b"point"])).load()
    assert isinstance(point, _Point)
    return point.x


def test_a_global_writeback_shelf_is_written_back_at_exit(tmp_path):
    path = str(tmp_path / "shelf")
    proc = run_python(LEFT_OPEN, path)
    assert proc.stdout == "done\n"
    assert proc.stderr == "", proc.stderr
    with kshelve.open(path, "r") as shelf:
        assert shelf["log"] == ["changed in the cache"]
    assert _point_x(path) == 5


UNPICKLABLE_AT_EXIT = """
import sys
import kv_backend.shelve as kshelve

bad = kshelve.open(sys.argv[1], writeback=True)
bad["items"] = []
bad["items"].append(lambda: 0)  # can no longer be pickled: this shelf's write-back fails
good = kshelve.open(sys.argv[2], writeback=True)
good["items"] = []
good["items"].append(1)
"""


def test_a_write_back_that_fails_at_exit_is_reported_and_the_other_shelves_are_written(tmp_path):
    bad, good = str(tmp_path / "bad"), str(tmp_path / "good")
    proc = run_python(UNPICKLABLE_AT_EXIT, bad, good, check=False)
    assert "PickleSerializationError" in proc.stderr and bad in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr  # reported once, not again at teardown
    with kshelve.open(good, "r") as shelf:
        assert shelf["items"] == [1]
    with kshelve.open(bad, "r") as shelf:
        assert shelf["items"] == []  # the shelf's own call wrote this; the cached change was not
