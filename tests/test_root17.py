"""Root (sudo, a root crontab) on a store another user owns: the cases test_root_commands16.py leaves.

Files an earlier version left root's in such a store are given back at root's next writing open, and
``kvb check`` names them; root's LOCK, STATE and MERGE.lock are never root's to the owner's processes,
also where files cannot be made unnamed (no O_TMPFILE: macOS); a store ``kvb restore`` or
``kvb salvage`` makes as root at a new path is the owner's of the directory it is made in; a backup
root writes into a directory another user owns is that user's."""

from __future__ import annotations

import contextlib
import encodings.ascii  # noqa: F401  (a backup reads the boot id; a child may not import it)
import io
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator

import pytest
from helpers import NOBODY, file_owners, nobody_dir, nobody_store, nobody_writes_and_merges, run_as_nobody

# (Imported here: the nobody user may not be able to read the Python install to import them later.)
import kv_backend.backup
import kv_backend.check
import kv_backend.merge
import kv_backend.progress
import kv_backend.salvage
from kv_backend import DB
from kv_backend.cli import main
from kv_backend.files import LOCK_FILE

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
    reason="runs kvb as root on stores, backups and directories of the nobody user",
)


@pytest.fixture
def base() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="kvb-root17-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _kvb(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def _count_denied_opens_while(path: str, root_work) -> int:
    """Run ``root_work()`` (as root, again and again for 0.4 s, after removing the store's LOCK file
    each time) while a process of nobody opens LOCK for writing in a loop, as a writer of the store
    does (without creating it: root is to make it); return how many of nobody's opens were refused
    (up to 100)."""
    lock = os.path.join(path, LOCK_FILE)
    r, w = os.pipe()
    os.set_blocking(r, False)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 101  # (an exception in the child)
        try:
            os.close(w)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            denied = 0
            while True:
                try:
                    os.close(os.open(lock, os.O_RDWR))
                except PermissionError:
                    denied += 1
                except FileNotFoundError:  # (not made again yet)
                    pass
                try:
                    if not os.read(r, 1):
                        break
                except BlockingIOError:
                    pass
            code = min(denied, 100)
        finally:
            os._exit(code)
    os.close(r)
    try:
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            root_work()
    finally:
        os.close(w)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_without_unnamed_files_the_lock_root_makes_is_never_roots_to_the_owners_processes(base, monkeypatch):
    """Where files cannot be made unnamed (no O_TMPFILE: macOS, BSD), root made LOCK by name and gave
    it away afterwards, so a process of the owner opening it in between was refused (more than 100
    opens in 0.4 s on Linux with O_TMPFILE hidden). It is made under a temporary name, given away,
    then linked into place."""
    path = nobody_store(base)
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)

    def open_read_only() -> None:
        with DB(path, read_only=True) as db:
            assert db.get(b"k3") == b"v273"

    assert _count_denied_opens_while(path, open_read_only) == 0
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}
    assert not [n for n in os.listdir(path) if n.endswith(".tmp")]
    assert nobody_writes_and_merges(path, b"k3") == b"v273"


def test_a_temporary_lock_file_left_by_a_killed_root_process_is_no_foreign_file_and_is_removed(base):
    """Root killed between making LOCK under its temporary name and linking it leaves that file: a new
    store is still made in the directory (not refused as holding foreign files), and the next writer's
    open removes it, as it does a merge's temporary files."""
    path = nobody_dir(base)
    left = os.path.join(path, "LOCK.12345-0123abcd.tmp")
    with open(left, "wb"):
        pass
    assert _kvb("put", path, "a", "1")[0] == 0
    assert not os.path.exists(left)
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}


def _leave_roots_files(path: str) -> list[str]:
    """Make the files of nobody's store at ``path`` root's (0600, as root's umask 077 made them), as
    an earlier version's root commands left them: all but KVB_FORMAT and LOCK (given back at any open)."""
    names = [n for n in os.listdir(path) if n not in ("KVB_FORMAT", LOCK_FILE)]
    assert any(n.endswith(".data") for n in names) and "STATE" in names
    with DB(path) as db:  # (a merge by root before files were given: its data, hint and lock files)
        db.merge()
    names = [n for n in os.listdir(path) if n not in ("KVB_FORMAT", LOCK_FILE)]
    assert any(n.endswith(".hint") for n in names) and "MERGE.lock" in names
    for name in names:
        os.chown(os.path.join(path, name), 0, 0)
        os.chmod(os.path.join(path, name), 0o600)
    return sorted(names)


def test_kvb_check_names_the_files_an_earlier_version_left_roots(base):
    """Files root's commands left root's before they were given away make the owner's processes fail
    at their next write, rotation or merge (permission denied): kvb check, run by anyone, names them
    (a note: nothing is damaged), and changes nothing."""
    path = nobody_store(base)
    names = _leave_roots_files(path)
    code, out = _kvb("check", path)
    assert code == 0
    assert f"{len(names)} file(s) owned by root in this store of user nobody" in out
    assert names[0] in out and f"sudo kvb merge {path}" in out
    assert {n for n, owner in file_owners(path).items() if owner == (0, 0)} == set(names)
    with pytest.raises(AssertionError, match="Permission denied"):
        nobody_writes_and_merges(path, b"k3")
    roots_own = os.path.join(base, "roots")
    assert _kvb("put", roots_own, "a", "1")[0] == 0
    assert "owned by root" not in _kvb("check", roots_own)[1]  # (a store of root's own: nothing to say)


def test_a_writing_open_by_root_gives_back_the_files_an_earlier_version_left_roots(base):
    path = nobody_store(base)
    _leave_roots_files(path)
    assert _kvb("get", path, "k3") == (0, "v273\n")  # a read-only open changes none but LOCK
    assert any(owner == (0, 0) for owner in file_owners(path).values())
    assert _kvb("put", path, "k3", "root")[0] == 0
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}
    # (And the read and write bits the format file grants, which root's 0600 withheld from the group.)
    modes = {os.stat(os.path.join(path, n)).st_mode & 0o777 for n in os.listdir(path)}
    assert modes == {os.stat(os.path.join(path, "KVB_FORMAT")).st_mode & 0o777}
    assert "owned by root" not in _kvb("check", path)[1]
    assert nobody_writes_and_merges(path, b"k3") == b"root"


def test_in_a_setgid_directory_roots_old_files_get_the_directorys_group_back(base):
    path = nobody_store(base)
    _leave_roots_files(path)
    os.chown(path, NOBODY, 4242)
    os.chmod(path, 0o2770)
    with DB(path):
        pass
    assert {owner for n, owner in file_owners(path).items() if n not in ("KVB_FORMAT", LOCK_FILE)} == {
        (NOBODY, 4242)
    }


def _service_dir(base: str) -> str:
    """/srv/app of the site's user: a directory of nobody's, readable by all (0755)."""
    path = os.path.join(base, "srv-app")
    os.mkdir(path, 0o755)
    os.chown(path, NOBODY, NOBODY)
    return path


def _all_owners(top: str) -> set[tuple[int, int]]:
    found = set()
    for here, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(here, name))
            found.add((st.st_uid, st.st_gid))
    return found


@pytest.mark.parametrize("command", ["restore", "salvage", "put"])
def test_a_store_root_makes_at_a_new_path_under_a_service_directory_is_the_services(base, command):
    """sudo kvb restore URL /srv/app/data/kv, where /srv/app is www-data's: the store (and the missing
    directory above it) was root's, and the site could not open it (permission denied on LOCK). It is
    the owner's of the nearest directory that exists, as one made in an existing empty directory of
    the service is; under a directory of root's it stays root's."""
    source = os.path.join(base, "source")
    with DB(source) as db:
        db.put(b"k", b"v")
    url = "file://" + os.path.join(base, "backups")
    assert _kvb("backup", source, url)[0] == 0
    for parent, wanted in ((_service_dir(base), {(NOBODY, NOBODY)}), (os.path.join(base, "root"), {(0, 0)})):
        dest = os.path.join(parent, "data", "kv")
        argv = {
            "restore": ["restore", url, dest],
            "salvage": ["salvage", source, dest],
            "put": ["put", dest, "k", "v"],
        }
        assert _kvb(*argv[command])[0] == 0
        assert _all_owners(parent) == wanted  # (data, the store's directory, its files)
        if wanted == {(NOBODY, NOBODY)}:
            assert run_as_nobody(lambda dest=dest: _read_and_write(dest)) == b"v"


def _read_and_write(path: str) -> bytes | None:
    with DB(path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"n%d" % i, b"x" * 100)
        return db.get(b"k")


def test_a_database_dbm_opens_as_root_in_a_directory_of_another_user_is_theirs(base):
    import kv_backend.dbm

    path = os.path.join(_service_dir(base), "cache.db")
    with kv_backend.dbm.open(path, "c") as db:
        db[b"k"] = b"v"
    assert _all_owners(path) | {(os.stat(path).st_uid, os.stat(path).st_gid)} == {(NOBODY, NOBODY)}
    assert run_as_nobody(lambda: _read_and_write(path)) == b"v"


def test_a_backup_root_makes_of_a_store_into_its_owners_directory_is_the_owners(base):
    """sudo kvb backup of the site's store into the site's backup directory (first run: a new
    subdirectory of it) left the backup's directories (files/, backups/, pending/) and files root's:
    the site's own nightly backup could then not write there, nor its prune delete what it
    collects. They are the owner's now, as the site's own job would have made them."""
    path = nobody_store(base)
    target = os.path.join(_service_dir(base), "backups", "kv")
    url = "file://" + target
    assert _kvb("backup", path, url, "--name", "by-root")[0] == 0
    assert _all_owners(os.path.dirname(target)) == {(NOBODY, NOBODY)}

    def back_up_and_prune() -> list[str]:
        kv_backend.backup.backup_store(path, url, name="by-owner")
        return kv_backend.backup.prune_backups(url, keep=1)

    assert run_as_nobody(back_up_and_prune) == ["by-root"]


def test_a_backup_root_makes_of_its_own_store_or_into_its_own_directory_stays_roots(base):
    """A target or a store of root's keeps root's backups: root chose it, and the copies may hold
    what only root reads."""
    roots_store = os.path.join(base, "roots-store")
    assert _kvb("put", roots_store, "a", "1")[0] == 0
    into_nobodys = os.path.join(_service_dir(base), "backups")
    assert _kvb("backup", roots_store, "file://" + into_nobodys)[0] == 0
    into_roots = os.path.join(base, "root-backups")
    assert _kvb("backup", nobody_store(base), "file://" + into_roots)[0] == 0
    assert _all_owners(into_nobodys) == _all_owners(into_roots) == {(0, 0)}


SHARED_GID = 4242
OTHER_UID = 4243  # (a second member of the group: root may run as an id without a name)


def _as_member(uid: int, umask: int, fn) -> int:
    """Run ``fn()`` in a child as ``uid`` in group SHARED_GID with ``umask``; return its exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.setgroups([SHARED_GID])
            os.setgid(SHARED_GID)
            os.setuid(uid)
            os.umask(umask)
            fn()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_group_member_under_umask_022_adds_files_the_whole_group_can_write(base):
    """A store shared by a group (2770 directory, 0660 files made under umask 007): a member running
    `kvb put` or `kvb merge` from a shell or cron under the common umask 022 made the next active data
    file, a merge's files and MERGE.lock 0640, and every other member's next write or merge failed with
    permission denied. The files a member adds get the read and write bits the store's format file
    grants, whatever the umask (never more: a 0600 store stays 0600, as test_state_mode13.py checks)."""
    path = os.path.join(base, "kv")
    os.mkdir(path)
    os.chown(path, NOBODY, SHARED_GID)
    os.chmod(path, 0o2770)

    def work() -> None:
        with DB(path, max_file_size=4096) as db:
            for i in range(60):
                db.put(b"k%d" % (i % 20), b"x" * 100)
            db.merge()
            for i in range(60):
                db.put(b"k%d" % (i % 20), b"y" * 100)

    assert _as_member(NOBODY, 0o007, lambda: DB(path).close()) == 0
    assert not os.path.exists(os.path.join(path, "MERGE.lock"))  # (the member under 022 makes it)
    assert _as_member(OTHER_UID, 0o022, work) == 0
    modes = {n: stat.S_IMODE(os.stat(os.path.join(path, n)).st_mode) for n in os.listdir(path)}
    assert set(modes.values()) == {0o660}, modes
    assert _as_member(NOBODY, 0o007, work) == 0


def test_the_owners_kvb_refused_a_file_root_left_says_so_and_what_to_do(base):
    """The store's owner refused a file root left in the store was told to run kvb as the store's
    owner, which it was; it is told the file is root's, and how to give it back."""
    path = nobody_store(base)
    _leave_roots_files(path)
    lock = os.path.join(path, LOCK_FILE)
    os.chown(lock, 0, 0)
    os.chmod(lock, 0o600)
    code, out = run_as_nobody(lambda: _kvb("put", path, "k3", "v"))
    assert code == 2
    assert f"{lock}: Permission denied. The file is root's, in a store of user nobody" in out
    assert f"(sudo kvb merge {path})" in out and "run kvb as a user who may" not in out
    code, out = run_as_nobody(lambda: _kvb("check", path))
    assert code == 2 and "The file is root's, in a store of user nobody" in out


def test_what_root_gives_the_owner_of_the_directory_above_is_never_reached_through_a_link(base):
    """The user who gets a new store's directories owns the directory they are made in, and may put a
    symbolic link there meanwhile: root gives each directory opened from the one above it, never
    through a link, so nothing the link points to (a store of root's) becomes theirs."""
    from kv_backend.owners import give_new_directories, give_tree

    site = _service_dir(base)
    victim = os.path.join(base, "victim")
    os.makedirs(os.path.join(victim, "b"))
    with open(os.path.join(victim, "KVB_FORMAT"), "w"):
        pass
    made = [os.path.join(site, "a", "b"), os.path.join(site, "a")]
    os.symlink(victim, os.path.join(site, "a"))  # (root made a/b; the site's user swapped a for a link)
    give_new_directories(made, (NOBODY, NOBODY))
    with pytest.raises(OSError):
        give_tree(os.path.join(site, "a"), (NOBODY, NOBODY))
    assert _all_owners(victim) == {(0, 0)} and os.stat(victim).st_uid == 0
    os.unlink(os.path.join(site, "a"))
    os.makedirs(made[0])
    with open(os.path.join(made[0], "KVB_FORMAT"), "w"):
        pass
    give_new_directories(made, (NOBODY, NOBODY))
    give_tree(made[0], (NOBODY, NOBODY))
    assert _all_owners(site) == {(NOBODY, NOBODY)}


def test_a_store_made_under_umask_022_in_a_setgid_directory_of_a_group_is_the_groups(base):
    """chgrp app DIR; chmod 2770 DIR is how a store is shared by a group: the first member to use it
    under the common umask 022 made 0644 files (every later file gets the format file's bits), and the
    other members could not write the store. Its files get the group's bits the directory grants."""
    path = os.path.join(base, "kv")
    os.mkdir(path)
    os.chown(path, NOBODY, SHARED_GID)
    os.chmod(path, 0o2770)

    def write() -> None:
        with DB(path, max_file_size=4096) as db:
            for i in range(60):
                db.put(b"k%d" % (i % 20), b"x" * 100)
            db.merge()

    assert _as_member(NOBODY, 0o022, write) == 0
    modes = {n: stat.S_IMODE(os.stat(os.path.join(path, n)).st_mode) for n in os.listdir(path)}
    assert set(modes.values()) == {0o664}, modes
    assert _as_member(OTHER_UID, 0o022, write) == 0
    private = os.path.join(base, "private")  # (not setgid: the umask's, as before)
    os.mkdir(private, 0o770)
    os.chown(private, NOBODY, SHARED_GID)
    assert _as_member(NOBODY, 0o022, lambda: DB(private).close()) == 0
    assert {stat.S_IMODE(os.stat(os.path.join(private, n)).st_mode) for n in os.listdir(private)} == {0o644}


def test_a_store_root_makes_in_a_setgid_directory_of_its_own_is_the_groups(base):
    """mkdir /var/lib/app/kv; chgrp app DIR; chmod 2775 DIR leaves root the directory's owner: a store root
    made there first (sudo kvb put, a deploy script) under umask 022 had 0644 files, root's, and the
    group's members could not write it. Its files get the group's bits the directory grants."""
    path = os.path.join(base, "kv")
    os.mkdir(path)
    os.chown(path, 0, SHARED_GID)
    os.chmod(path, 0o2775)
    old = os.umask(0o022)
    try:
        with DB(path, max_file_size=4096) as db:
            for i in range(60):
                db.put(b"k%d" % (i % 20), b"x" * 100)
            db.merge()
    finally:
        os.umask(old)
    modes = {n: stat.S_IMODE(os.stat(os.path.join(path, n)).st_mode) for n in os.listdir(path)}
    assert set(modes.values()) == {0o664}, modes

    def write() -> None:
        with DB(path) as db:
            db.put(b"member", b"1")

    assert _as_member(OTHER_UID, 0o022, write) == 0


def test_the_lock_file_of_a_store_being_made_in_a_setgid_directory_is_the_groups_from_the_start(base):
    """LOCK is made before the format file: it followed the opener's umask (0644 under 022) until the
    format file existed, and another member opening the new store meanwhile was refused."""
    from kv_backend.locking import WriteLock

    path = os.path.join(base, "kv")
    os.mkdir(path)
    os.chown(path, NOBODY, SHARED_GID)
    os.chmod(path, 0o2770)
    lock = os.path.join(path, LOCK_FILE)
    assert _as_member(NOBODY, 0o022, lambda: WriteLock(lock, create=True).close()) == 0
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o664


def test_a_user_refused_backups_or_a_target_directory_is_told_which_directory_and_whose(base):
    """kvb backups, backup, restore and salvage said only 'Permission denied' of a file or directory
    (often one the user did not name: a temporary file, pending/, the directory next to the target).
    They name the directory that refused, its owner and mode, and what to do."""
    store = nobody_store(base)
    backups = os.path.join(base, "root-backups")  # (root's backups of a store of its own: 0700)
    roots_store = os.path.join(base, "roots-store")
    os.mkdir(roots_store, 0o700)
    assert _kvb("put", roots_store, "a", "1")[0] == 0
    assert _kvb("backup", roots_store, "file://" + backups)[0] == 0
    assert os.stat(backups).st_mode & 0o777 == 0o700
    told = f"User nobody may not use {backups} (root's, mode 0700): run it as a user who may"
    for argv in (["backups", "file://" + backups], ["backup", store, "file://" + backups]):
        code, out = run_as_nobody(lambda argv=argv: _kvb(*argv))
        assert code == 2 and told in out, out
    told = f"User nobody may not use {base} (root's, mode 0755)"
    code, out = run_as_nobody(lambda: _kvb("salvage", store, os.path.join(base, "copy")))
    assert code == 2 and told in out, out


def test_backups_a_group_member_makes_under_umask_022_are_the_groups(base):
    """A store shared by a group (2770) backed up into the group's directory: the member who backed it
    up first, under umask 022, made files/, backups/ and pending/ 2750 (and 0640 files), and every
    other member's backup there failed (permission denied). They get what the store's directory
    grants, whatever the umask: 2770 directories, 0660 files."""
    store = os.path.join(base, "kv")
    target = os.path.join(base, "backups")
    for path in (store, target):
        os.mkdir(path)
        os.chown(path, NOBODY, SHARED_GID)
        os.chmod(path, 0o2770)
    url = "file://" + target
    assert kv_backend.backup.list_backups(url) == []  # (imports fsspec, which a child may not read)

    def back_up() -> None:
        with DB(store) as db:
            db.put(os.urandom(8), b"v")
        kv_backend.backup.backup_store(store, url)

    assert _as_member(OTHER_UID, 0o022, back_up) == 0
    modes = set()
    for here, dirs, files in os.walk(target):
        modes |= {stat.S_IMODE(os.stat(os.path.join(here, n)).st_mode) for n in dirs + files}
    assert modes == {0o2770, 0o660}
    assert _as_member(NOBODY, 0o022, back_up) == 0
    assert _as_member(NOBODY, 0o022, lambda: kv_backend.backup.prune_backups(url, keep=1)) == 0
