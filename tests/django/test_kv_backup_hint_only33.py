"""manage.py kv_backup of a cache whose only damage is hint entries failed ("which kv_restore may
refuse"), while kv_restore accepts that backup: it leaves those hint files out and replays their sound
data files. It now finishes, warning on stderr what to fix; a damaged record still fails it."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

from kv_backend import DB, record
from kv_backend.files import data_name, hint_name, list_data_files
from kv_backend.hint import write_hints


def _cache_with_a_damaged_hint_entry(location: str) -> None:
    """A cache whose first, merged data file has a hint file pointing its first key to the second's record."""
    from kv_backend_django.cache import close_all

    for i in range(40):
        caches["c"].set(f"k{i}", "x" * 100, None)
    close_all()
    with DB(location, max_file_size=4096) as db:
        db.merge()
        db.put(b"after", b"merge")
    fid = list_data_files(location)[0]
    with open(os.path.join(location, data_name(fid)), "rb") as f:
        buf = f.read()
    puts = [
        (k, off, size)
        for t, k, off, size, _ in record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries
        if t == record.PUT
    ]
    locations = [off << 32 | size for _, off, size in puts]
    locations[0] = locations[1]
    keys = [k for k, _, _ in puts]
    write_hints(os.path.join(location, hint_name(fid)), len(buf), keys, locations, [0.0] * len(puts))


@pytest.mark.parametrize("damaged_record", [False, True])
def test_kv_backup_follows_what_kv_restore_refuses(tmp_path, damaged_record):
    pytest.importorskip("kv_backend.backup")
    from django.core.management.base import CommandError
    from kv_backend_django.cache import close_all

    location = str(tmp_path / "cache")
    url = (tmp_path / "backups").as_uri()
    conf = {"c": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": location}}
    with override_settings(CACHES=conf):
        _cache_with_a_damaged_hint_entry(location)
        if damaged_record:
            active = os.path.join(location, data_name(list_data_files(location)[-1]))
            with open(active, "r+b") as f:  # a value byte of the active file's last record
                f.seek(record.FILE_HEADER_SIZE + record.HEADER_SIZE + len(b"after"))
                f.write(b"M")
        out, err = StringIO(), StringIO()
        if damaged_record:
            with pytest.raises(
                CommandError,
                match=r"holds 1 damaged record\(s\) and 1 damaged hint entry, and so does backup b, "
                r"which kv_restore refuses; .*kvb salvage",
            ):
                call_command("kv_backup", url, "--cache", "c", "--name", "b", stdout=out, stderr=err)
            assert "Backup finished" not in out.getvalue()
            return
        call_command("kv_backup", url, "--cache", "c", "--name", "b", "-v", "0", stdout=out, stderr=err)
        assert out.getvalue() == ""
        assert err.getvalue() == (
            f"the cache at {location} holds 1 damaged hint entry, and so does backup b, which kv_restore "
            "restores all the same (it leaves those hint files out, and replays their data files, which "
            f"are sound); kvb check {location} lists them: remove those hint files while no process has "
            "the store open, and their data files are replayed instead\n"
        )
        close_all()
        call_command("kv_restore", url, "--cache", "c", "--replace", stdout=StringIO())
        assert caches["c"].get("k0") == "x" * 100
