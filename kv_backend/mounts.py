"""Which filesystem a store lives on, to warn about network filesystems at open (Linux).

The engine's locking (``flock``) and its shared state page (``mmap``) are
only coherent between processes of one machine on a local filesystem. A
store on NFS, SMB or a FUSE network mount may seem to work and then lose
writes when two machines use it, so opening one warns once per path.
"""

from __future__ import annotations

import os
import re
import warnings

#: Linux's /proc/self/mountinfo (one line per mount); a constant so tests can point elsewhere.
MOUNTINFO = "/proc/self/mountinfo"

#: Filesystem types (mountinfo's names) that are shared over a network.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs", "beegfs"}
    | {"fuse.sshfs", "fuse.glusterfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "fuse.juicefs"}
)

_checked: set[str] = set()  # paths already looked up in this process


class NetworkFilesystemWarning(UserWarning):
    """A store was opened on a network filesystem, where locking and the state page are unsafe."""


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem ``path`` is on (``"ext4"``, ``"nfs4"``...), or None if unknown."""
    if mountinfo is None:
        try:
            with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None  # not Linux, or no /proc
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        if not sep or len(fields) < 5 or not right:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the deepest mount wins; a later one shadows an earlier
            best, best_type = point, right.split(" ", 1)[0]
    return best_type


def warn_if_network(path: str) -> None:
    """Warn (once per path and process) if ``path`` is on a network filesystem.

    Each path is looked up once per process: reopening a store reads no mount table.
    """
    if path in _checked:
        return
    _checked.add(path)
    kind = filesystem_type(path)
    if kind in NETWORK_FILESYSTEMS:
        warnings.warn(
            NetworkFilesystemWarning(
                f"the store {path} is on a {kind} filesystem: flock and the shared state page are "
                "only safe on a local filesystem, and two machines using this store can lose writes; "
                "move it to a local disk"
            ),
            stacklevel=3,
        )
