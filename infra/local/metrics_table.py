"""`make metrics`: the running local stack's `GET /admin/metrics` as a table.

ADMIN_TOKEN=... make metrics            (the token `make run` printed; URL=... for another address)
"""

from __future__ import annotations

import os
import sys

import httpx


def main() -> int:
    url = os.environ.get("URL", "http://127.0.0.1:3000").rstrip("/")
    token = os.environ.get("ADMIN_TOKEN")
    if not token:
        print("set ADMIN_TOKEN to the admin token `make run` printed", file=sys.stderr)
        return 2
    try:
        response = httpx.get(f"{url}/admin/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except httpx.HTTPError as exc:
        print(f"no local stack at {url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"{url}/admin/metrics answered {response.status_code}: {response.text[:200]}", file=sys.stderr)
        return 1
    rows = [line.rsplit(" ", 1) for line in response.text.splitlines() if line and not line.startswith("#")]
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
