"""Review of kvb salvage's maps of files a live writer may cut (filemaps.map_cuttable): only what a writer
may cut is copied into memory, also in a store without a STATE page.

Without a page (lost, or never made), no published end bounds the newest data file: a writer that opens
the store then cuts that file where its data ends (tail recovery), never before. Salvage copied all of it
into anonymous memory (the whole active file: 100 MiB of memory for a file of 100 MiB, and 1 GiB for one
of 1 GiB), where the file's own pages, mapped, cost no memory of the process's own.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend import salvage as salvage_module
from kv_backend.salvage import salvage

MIB = 1 << 20


def _anonymous() -> int:
    """Bytes of anonymous memory this process has mapped and touched (Linux)."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no Anonymous line")


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux's /proc/self/smaps_rollup")
def test_salvage_of_a_store_without_its_page_copies_no_whole_data_file_into_memory(tmp_path, monkeypatch):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    value = os.urandom(64 << 10)
    with DB(src, max_file_size=256 * MIB) as db:
        for i in range(96 * 16):  # 96 MiB in one data file
            db.put(b"k%d" % (i % 500), value)
    os.remove(os.path.join(src, "STATE"))
    real = salvage_module._listed_and_mapped
    grown: list[int] = []

    def measured(store):
        before = _anonymous()
        found = real(store)
        grown.append(_anonymous() - before)
        return found

    monkeypatch.setattr(salvage_module, "_listed_and_mapped", measured)
    report = salvage(src, dst)
    assert report.keys_copied == 500
    with DB(dst) as copy:
        assert copy.get(b"k499") == value
    (extra,) = grown
    assert extra < 16 * MIB, f"mapping the store's files took {extra / MIB:.0f} MiB of the process's memory"


#: A salvage of the store argv[1] into argv[2] during which a writer opens the store once the files are
#: mapped (and recovers its tail), in another process.
_SALVAGE_BESIDE_A_WRITER = """
import subprocess, sys
from kv_backend import salvage as sv

real = sv._listed_and_mapped

def then_a_writer(store):
    found = real(store)
    code = "import sys\\nfrom kv_backend import DB\\nwith DB(sys.argv[1]) as d: d.put(b'w', b'1')"
    subprocess.run([sys.executable, "-c", code, store], check=True)
    return found

sv._listed_and_mapped = then_a_writer
print(sv.salvage(sys.argv[1], sys.argv[2]).keys_copied)
"""


def test_salvage_beside_a_writer_of_a_store_whose_page_says_it_held_more_is_not_killed(tmp_path):
    """The page publishes an end past the active file's end (the file lost bytes, or the page is
    damaged): a writer's recovery then reads the file from its header and cuts it where its data ends,
    below that end. Salvage mapped all of the file (its bytes up to the page's end were to stay), and
    was killed by SIGBUS reading its map past the cut."""
    import struct

    from helpers import run_python

    from kv_backend.files import STATE_FILE, data_name, list_data_files

    src = str(tmp_path / "src")
    with DB(src) as db:
        for i in range(2000):
            db.put(b"k%d" % i, os.urandom(200))
    (fid,) = list_data_files(src)
    path = os.path.join(src, data_name(fid))
    with open(path, "ab") as f:
        f.write(bytes(256 << 10))  # the zeros a killed writer had reserved
    end = os.path.getsize(path) + (64 << 10)  # past the file's end, the intent word vouching for it
    with open(os.path.join(src, STATE_FILE), "r+b") as f:
        for offset in (16, 32):  # the tail and intent words
            f.seek(offset)
            f.write(struct.pack("=Q", (fid[0] << 40) | end))
    done = run_python(_SALVAGE_BESIDE_A_WRITER, src, str(tmp_path / "dst"), check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["2000"]
    with DB(str(tmp_path / "dst")) as copy:
        assert len(copy) == 2000


def test_salvage_beside_a_writer_of_a_store_without_page_whose_rotation_died_is_not_killed(tmp_path):
    """No page, and a rotation died: the newest file holds its header only, and the one before it was
    never closed (the zeros it had reserved still follow its data). A writer's recovery closes that file,
    cutting them off; salvage had mapped all of it and was killed by SIGBUS reading its map past the cut."""
    from helpers import run_python

    from kv_backend import record as rec
    from kv_backend.files import STATE_FILE, data_name, list_data_files

    src = str(tmp_path / "src")
    with DB(src, max_file_size=64 << 10) as db:
        for i in range(2000):
            db.put(b"k%d" % i, os.urandom(200))
    fids = list_data_files(src)
    with open(os.path.join(src, data_name(fids[-1])), "r+b") as f:
        f.truncate(rec.FILE_HEADER_SIZE)
    with open(os.path.join(src, data_name(fids[-2])), "ab") as f:
        f.write(bytes(256 << 10))
    os.remove(os.path.join(src, STATE_FILE))
    alone = salvage(src, str(tmp_path / "alone"))  # (what it copies with no writer beside it)
    done = run_python(_SALVAGE_BESIDE_A_WRITER, src, str(tmp_path / "dst"), check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == [str(alone.keys_copied)]
    assert alone.keys_copied > 1000
