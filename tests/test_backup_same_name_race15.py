"""Two backups of the same name that finish at the same moment.

Both found the name free when they started; on an object store the second one's manifest then
replaced the first one's, and both reported success (the first one's backup was gone). Where the
target can create an object only if none of its name exists (a local disk, ``memory://``, S3 through
a recent s3fs on a server that honours If-None-Match), the second now fails with BackupExistsError.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from helpers import child_env
from s3_helpers import moto_server

import kv_backend.backup as kvbackup
from kv_backend import DB
from kv_backend.backup import BackupExistsError, list_backups, restore

# A child that backs up under the name given, stopping (after its name check, before it publishes
# its manifest) until the test lets it go on; it prints what happened as one JSON line.
CHILD = r"""
import json, os, sys, time
import kv_backend.backup as kvbackup
from kv_backend import DB

store, url, name, sync, me, options = sys.argv[1:7]
encode = kvbackup._encode_manifest

def encode_then_wait(body):
    data = encode(body)
    open(os.path.join(sync, "ready-" + me), "w").close()
    while not os.path.exists(os.path.join(sync, "go-" + me)):
        time.sleep(0.01)
    return data

kvbackup._encode_manifest = encode_then_wait
if not name:  # the default name, as of two backups started in the same millisecond
    kvbackup._default_name = lambda now: "20261206T120000.000Z"
with DB(store, read_only=True) as db:
    try:
        report = db.backup(url, name=name or None, **json.loads(options))
    except kvbackup.BackupExistsError as exc:
        print(json.dumps({"exists": str(exc)}))
    else:
        print(json.dumps({"ok": report.name, "files": report.files}))
"""


#: The S3 races need conditional writes, which older s3fs/botocore releases do not send (there a
#: backup falls back to writing the manifest and reading it back: documented in docs/backup.md).
needs_conditional_writes = pytest.mark.skipif(
    kvbackup._release("s3fs") < kvbackup.S3FS_CREATE_ONLY
    or kvbackup._release("botocore") < kvbackup.BOTOCORE_CREATE_ONLY,
    reason="the installed s3fs or botocore sends no conditional writes (s3fs 2025.7+, botocore 1.35.21+)",
)


@pytest.fixture(scope="module")
def s3_options():
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    pytest.importorskip("flask")
    import boto3

    with moto_server() as url:
        options = {
            "endpoint_url": url,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"},
        }
        boto3.client(
            "s3",
            endpoint_url=options["endpoint_url"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="kvb-race")
        yield options


def _store(path: str) -> dict[bytes, bytes]:
    with DB(path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"key-%03d" % i, b"value-%03d" % i * 20)
        return dict(db.items())


def _wait_for(path: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _race_processes(
    store: str, url: str, sync: str, options: dict, name: str = "nightly"
) -> tuple[dict, dict]:
    """Two processes back up ``store`` as ``name`` (the default if empty); both pass the name check,
    then the first publishes and ends before the second publishes."""
    os.makedirs(sync)
    args = [sys.executable, "-c", CHILD, store, url, name, sync]
    procs = {
        me: subprocess.Popen(
            [*args, me, json.dumps(options)], env=child_env(), stdout=subprocess.PIPE, text=True
        )
        for me in ("a", "b")
    }
    try:
        for me, proc in procs.items():
            _wait_for(os.path.join(sync, f"ready-{me}"), proc)
        results = {}
        for me, proc in procs.items():
            open(os.path.join(sync, f"go-{me}"), "w").close()
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, out
            results[me] = json.loads(out)
        return results["a"], results["b"]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _check_outcome(first: dict, second: dict, url: str, restored: str, expected: dict, options: dict) -> None:
    assert first == {"ok": "nightly", "files": first["files"]}
    assert "exists" in second, second
    assert "another backup named 'nightly'" in second["exists"] and "choose another name" in second["exists"]
    assert [(b.name, b.ok) for b in list_backups(url, **options)] == [("nightly", True)]
    restore(url, restored, name="nightly", **options)
    with DB(restored, read_only=True) as db:
        assert dict(db.items()) == expected


def test_local_target_second_of_two_processes_fails(tmp_path):
    store = str(tmp_path / "store")
    expected = _store(store)
    url = str(tmp_path / "backups")
    first, second = _race_processes(store, url, str(tmp_path / "sync"), {})
    _check_outcome(first, second, url, str(tmp_path / "r"), expected, {})


@needs_conditional_writes
def test_s3_target_second_of_two_processes_fails(tmp_path, s3_options):
    store = str(tmp_path / "store")
    expected = _store(store)
    url = "s3://kvb-race/same-name"
    first, second = _race_processes(store, url, str(tmp_path / "sync"), s3_options)
    _check_outcome(first, second, url, str(tmp_path / "r"), expected, s3_options)


@needs_conditional_writes
def test_s3_target_second_of_two_nameless_backups_takes_the_next_suffix(tmp_path, s3_options):
    store = str(tmp_path / "store")
    _store(store)
    url = "s3://kvb-race/same-default-name"
    first, second = _race_processes(store, url, str(tmp_path / "sync"), s3_options, name="")
    assert (first["ok"], second["ok"]) == ("20261206T120000.000Z", "20261206T120000.000Z-2")
    assert sorted((b.name, b.ok) for b in list_backups(url, **s3_options)) == [
        ("20261206T120000.000Z", True),
        ("20261206T120000.000Z-2", True),
    ]


def test_memory_target_second_of_two_threads_fails(tmp_path, monkeypatch):
    """fsspec's memory filesystem lives in one process: its writers are that process's threads."""
    store = str(tmp_path / "store")
    expected = _store(store)
    url = f"memory://same-name-{os.getpid()}-{time.monotonic_ns()}"
    encode = kvbackup._encode_manifest
    ready = {"a": threading.Event(), "b": threading.Event()}
    go = {"a": threading.Event(), "b": threading.Event()}
    results: dict[str, dict] = {}

    def encode_then_wait(body):
        me = threading.current_thread().name
        data = encode(body)
        ready[me].set()
        assert go[me].wait(60)
        return data

    def run(me: str) -> None:
        with DB(store, read_only=True) as db:
            try:
                report = db.backup(url, name="nightly")
                results[me] = {"ok": report.name, "files": report.files}
            except BackupExistsError as exc:
                results[me] = {"exists": str(exc)}

    monkeypatch.setattr(kvbackup, "_encode_manifest", encode_then_wait)
    threads = {me: threading.Thread(target=run, args=(me,), name=me) for me in ("a", "b")}
    for t in threads.values():
        t.start()
    for me in ("a", "b"):
        assert ready[me].wait(60)
    for me in ("a", "b"):
        go[me].set()
        threads[me].join(60)
    _check_outcome(results["a"], results["b"], url, str(tmp_path / "r"), expected, {})
    import fsspec

    fsspec.filesystem("memory").rm(url[len("memory://") :], recursive=True)


def test_a_server_without_conditional_writes_still_gets_its_backup(tmp_path, monkeypatch):
    """A server that answers a conditional write 501 Not Implemented: the manifest is written as
    before (and read back), not lost to the refusal."""
    store = str(tmp_path / "store")
    _store(store)
    refused = []

    def refuses(fs):
        def create(path, data):
            refused.append(path)
            raise OSError(errno.ENOSYS, "NotImplemented: conditional writes are not supported")

        return create

    monkeypatch.setattr(kvbackup, "_create_only", refuses)
    url = f"memory://no-conditions-{os.getpid()}-{time.monotonic_ns()}"
    with DB(store, read_only=True) as db:
        assert db.backup(url, name="nightly").name == "nightly"
    assert len(refused) == 1 and refused[0].endswith("backups/nightly.json")
    assert [b.name for b in list_backups(url)] == ["nightly"]
    import fsspec

    fsspec.filesystem("memory").rm(url[len("memory://") :], recursive=True)


def test_a_server_that_refuses_every_conditional_write_still_gets_its_backup(tmp_path, monkeypatch):
    """412 Precondition Failed with no object there (a server that takes If-None-Match for a
    condition it cannot meet): the manifest is written as before, not refused for a name that
    nobody has."""
    store = str(tmp_path / "store")
    _store(store)
    refused = []

    def refuses(fs):
        def create(path, data):
            refused.append(path)
            raise FileExistsError(path)

        return create

    monkeypatch.setattr(kvbackup, "_create_only", refuses)
    url = f"memory://always-412-{os.getpid()}-{time.monotonic_ns()}"
    with DB(store, read_only=True) as db:
        assert db.backup(url, name="nightly").name == "nightly"
        with pytest.raises(BackupExistsError):  # (a name taken is still refused, by the listing)
            db.backup(url, name="nightly")
    assert len(refused) == 1
    assert [b.name for b in list_backups(url)] == ["nightly"]
    import fsspec

    fsspec.filesystem("memory").rm(url[len("memory://") :], recursive=True)


def test_a_412_that_does_not_say_which_condition_failed_is_a_name_taken(tmp_path, monkeypatch):
    """s3fs takes a 412 PreconditionFailed for an existing object only when the server names the
    If-None-Match condition; without it, an OSError (EINVAL): still a name taken, not a failure."""
    pytest.importorskip("botocore")
    from botocore.exceptions import ClientError

    store = str(tmp_path / "store")
    _store(store)
    url = f"memory://unnamed-412-{os.getpid()}-{time.monotonic_ns()}"
    real = kvbackup._create_only

    def unnamed_412(fs):
        create = real(fs)

        def create_or_412(path, data):
            try:
                create(path, data)
            except FileExistsError:
                error = {
                    "Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions"}
                }
                exc = OSError(errno.EINVAL, "At least one of the pre-conditions you specified did not hold")
                exc.__cause__ = ClientError(error, "PutObject")
                raise exc from exc.__cause__

        return create_or_412

    monkeypatch.setattr(kvbackup, "_create_only", unnamed_412)
    encode = kvbackup._encode_manifest
    first = []

    def another_backup_completes_first(body):
        if not first:  # (this backup passed its name check; another one of that name completes now)
            first.append(True)
            with DB(store, read_only=True) as db:
                db.backup(url, name="nightly")
        return encode(body)

    monkeypatch.setattr(kvbackup, "_encode_manifest", another_backup_completes_first)
    with (
        DB(store, read_only=True) as db,
        pytest.raises(BackupExistsError, match=r"completed at .* meanwhile"),
    ):
        db.backup(url, name="nightly")
    assert [b.name for b in list_backups(url)] == ["nightly"]
    import fsspec

    fsspec.filesystem("memory").rm(url[len("memory://") :], recursive=True)


def test_a_retried_write_that_finds_its_own_manifest_succeeds(tmp_path, monkeypatch):
    """s3fs retries a request whose connection dropped: a conditional write whose first attempt
    landed is refused (412) on the retry, by the very manifest it wrote; that is no other backup."""
    store = str(tmp_path / "store")
    _store(store)

    def answer_lost(fs):
        def create(path, data):
            fs.pipe_file(path, data)  # the first attempt landed; its answer did not
            raise FileExistsError(path)  # what the retry gets

        return create

    monkeypatch.setattr(kvbackup, "_create_only", answer_lost)
    url = f"memory://retried-{os.getpid()}-{time.monotonic_ns()}"
    with DB(store, read_only=True) as db:
        assert db.backup(url, name="nightly").name == "nightly"
        # A manifest of another backup there is still refused.
        with pytest.raises(BackupExistsError):
            db.backup(url, name="nightly")
    assert [b.name for b in list_backups(url)] == ["nightly"]
    import fsspec

    fsspec.filesystem("memory").rm(url[len("memory://") :], recursive=True)


def test_old_s3fs_or_botocore_keeps_the_plain_write(monkeypatch):
    pytest.importorskip("s3fs")
    import importlib.metadata

    import s3fs

    installed = importlib.metadata.version
    versions = {"s3fs": "2026.9.0", "botocore": "1.43.0"}  # releases that send If-None-Match

    def version(dist: str) -> str:
        return versions.get(dist) or installed(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    fs = s3fs.S3FileSystem(anon=True, skip_instance_cache=True)
    assert kvbackup._create_only(fs) is not None

    class CompanyS3(s3fs.S3FileSystem):  # (a subclass of a deployment's own: the same S3 underneath)
        pass

    assert kvbackup._create_only(CompanyS3(anon=True, skip_instance_cache=True)) is not None
    for dist, old in [("s3fs", "2025.5.1"), ("botocore", "1.35.20")]:
        # s3fs 2025.5: exclusive writes of small objects failed; botocore 1.35.20: no IfNoneMatch yet
        newer = versions[dist]
        versions[dist] = old
        assert kvbackup._create_only(fs) is None
        versions[dist] = newer
    versions["botocore"] = "1.36.0rc1"
    assert kvbackup._release("botocore") == (1, 36, 0)
    assert kvbackup._create_only(fs) is not None
