"""Which store each backup under a URL is of: the store id its manifest records (see docs/backup.md).

A backup to a URL whose manifests name another store's id is refused; a restore without a name refuses
to choose between stores; prune keeps the newest backups of each store. Manifests without an id (made
before stores had ids, or of a store without one) block nothing.
"""

from __future__ import annotations

from typing import Any

from kv_backend.errors import BackupError

Manifests = list[tuple[str, "dict[str, Any] | None", "str | None"]]
Valid = list[tuple[float, str, dict[str, Any]]]
"""(created, name, manifest) of valid backups."""
"""What ``kv_backend.backup._load_all`` gives: (name, manifest or None, error or None) each."""


class BackupOfAnotherStoreError(BackupError):
    """The URL given to a backup holds the backups of another store (their manifests name another store
    id): nothing was written there. Back the store up to another URL (or prefix)."""


def store_ids(manifests: Manifests) -> dict[str, tuple[str, dict[str, Any]]]:
    """The store ids the valid ``manifests`` name, each with (name, manifest) of its newest backup."""
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, doc, _err in manifests:
        sid = doc.get("store_id") if doc is not None else None
        if doc is None or sid is None:
            continue
        if sid not in newest or (doc["created"], name) > (newest[sid][1]["created"], newest[sid][0]):
            newest[sid] = (name, doc)
    return newest


def _described(sid: str, name: str, doc: dict[str, Any]) -> str:
    return f"store {sid} (newest backup {name!r}, from {doc.get('source', '?')} on {doc.get('host', '?')})"


def refuse_another_store(
    url: str, path: str, store_id: str | None, manifests: Manifests, *, late: bool = False
) -> None:
    """Raise :class:`BackupOfAnotherStoreError` if ``manifests`` (those at ``url``) name a store id other
    than ``store_id``, that of the store at ``path`` being backed up (a store without one is not refused);
    ``late``: found after the backup sent its files, before its manifest."""
    if store_id is None:
        return
    others = [
        _described(sid, n, doc) for sid, (n, doc) in sorted(store_ids(manifests).items()) if sid != store_id
    ]
    if not others:
        return
    what = (
        "written there while this backup ran, which was not completed (the next prune collects what it sent)"
        if late
        else "nothing was written there"
    )
    raise BackupOfAnotherStoreError(
        f"cannot back up {path} (store {store_id}) to {url}: it holds the backups of another "
        f"{'store' if len(others) == 1 else 'stores'}, {'; '.join(others)}; {what}. A URL holds the backups "
        f"of one store: back this one up to another URL (or another prefix, such as {url.rstrip('/')}-2)"
    )


def refuse_to_choose(url: str, manifests: Manifests) -> None:
    """Raise BackupError where ``manifests`` (those at ``url``) name more than one store id: the newest
    backup there is of one store or another, and a restore without a name must not pick one."""
    ids = store_ids(manifests)
    if len(ids) > 1:
        described = "; ".join(_described(sid, n, doc) for sid, (n, doc) in sorted(ids.items()))
        raise BackupError(
            f"{url} holds the backups of {len(ids)} stores ({described}): pass name= (kvb restore --name) "
            "to restore a backup of the one you mean (kvb backups --json shows each backup's store_id)"
        )


def retention_groups(
    valid: list[tuple[float, str, dict[str, Any]]],
) -> list[list[tuple[float, str, dict[str, Any]]]]:
    """``valid`` ((created, name, manifest) of the valid backups, oldest first) in the groups prune keeps
    the newest of each: one per store id. Backups without an id join the only store's where the others
    name one id (the same store's backups from before ids); with none, or with several ids, they form a
    group of their own."""
    by_id: dict[str | None, Valid] = {}
    for item in valid:
        by_id.setdefault(item[2].get("store_id"), []).append(item)
    named = [sid for sid in by_id if sid is not None]
    if len(named) == 1 and None in by_id:
        by_id[named[0]] = sorted(by_id.pop(None) + by_id[named[0]])
    return list(by_id.values())
