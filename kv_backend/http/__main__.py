"""``python -m kv_backend.http openapi [PATH]`` writes the OpenAPI document (to PATH or stdout).

The server itself is started with ``kvb http --dir PATH``.
"""

from __future__ import annotations

import sys

from kv_backend.http.openapi import openapi_json


def main(argv: list[str]) -> int:
    """Write the OpenAPI document; return the exit status."""
    if not argv or argv[0] != "openapi" or len(argv) > 2:
        print(
            "usage: python -m kv_backend.http openapi [PATH]   (serve with: kvb http --dir PATH)",
            file=sys.stderr,
        )
        return 2
    text = openapi_json()
    if len(argv) == 2:
        try:
            with open(argv[1], "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:  # one line and status 2, as kvb says its errors; not a traceback
            print(
                f"python -m kv_backend.http: cannot write {argv[1]}: {exc.strerror or exc}", file=sys.stderr
            )
            return 2
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
