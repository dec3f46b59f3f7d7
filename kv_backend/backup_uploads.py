"""The incomplete S3 multipart uploads that killed backups leave (see docs/backup.md, "Retention").

s3fs sends an object larger than its block size (50 MiB unless the storage option
``default_block_size`` says otherwise) in parts: a backup killed meanwhile leaves the upload
incomplete, its parts stored, and billed, under no object that a listing shows, so that
:func:`~kv_backend.backup.prune_backups` saw nothing to delete.
Prune lists those that a backup started along with the objects, before it reads the journals, and
aborts them when no backup runs, as it deletes unreferenced objects: a backup that starts after the
listing sends its parts under uploads that were not listed.

Best effort, as a bucket lifecycle rule is the way that misses none: where listing or aborting fails
(an account without ``s3:ListBucketMultipartUploads`` or ``s3:AbortMultipartUpload``), the uploads
are left as they are, without an error.
"""

from __future__ import annotations

import re
from typing import Any

from kv_backend.backup_urls import is_s3fs

Upload = tuple[str, str, str]
"""An incomplete multipart upload: its bucket, its key and its upload id."""


def stale_uploads(fs: Any, root: str, directory: str, names: re.Pattern[str]) -> list[Upload]:
    """The incomplete multipart uploads of the s3fs filesystem ``fs`` to keys in ``directory`` under
    ``root`` (``bucket/prefix``) whose path relative to ``root`` matches ``names``; none for another
    filesystem, or where they cannot be listed."""
    if not is_s3fs(fs):
        return []
    bucket, key, _ = fs.split_path(root)
    base = f"{key.strip('/')}/" if key.strip("/") else ""
    out: list[Upload] = []
    markers: dict[str, str] = {}
    try:
        while True:
            page = fs.call_s3(
                "list_multipart_uploads", Bucket=bucket, Prefix=f"{base}{directory}/", **markers
            )
            for upload in page.get("Uploads", []):
                if names.match(upload["Key"][len(base) :]):
                    out.append((bucket, upload["Key"], upload["UploadId"]))
            if not page.get("IsTruncated"):
                return out
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    except Exception:  # (no permission, the connection lost: a later prune, or the lifecycle rule)
        return out


def abort_uploads(fs: Any, uploads: list[Upload]) -> int:
    """Abort ``uploads`` (from :func:`stale_uploads`); return how many were aborted. One that cannot
    be (completed meanwhile, no permission) is left as it is."""
    aborted = 0
    for bucket, key, upload_id in uploads:
        try:
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # (see stale_uploads)
            continue
        aborted += 1
    return aborted
