"""The connect link ``authq up --demo`` prints: a session made at start-up, through the API
like any platform's back end makes one, offering the demo's implementations (contract §11, §13)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tasks.demo.catalog import DEMO_IDS

LINK_SECONDS = 86400  # the longest a session may last: a newcomer may come back to it tomorrow


def demo_connect_url(base: str, key_file: Path) -> str | None:
    """A new session's ``connect_url``, or None when there is no key file to make it with (keys
    given in AUTHQ_API_KEYS) or the API would not make one."""
    if not key_file.exists():
        return None
    body = json.dumps({"end_user_id": "demo", "allowed_implementations": list(DEMO_IDS),
                       "ttl_seconds": LINK_SECONDS}).encode()
    request = urllib.request.Request(f"{base}/api/v1/sessions", data=body, method="POST", headers={
        "Authorization": key_file.read_text().strip(), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our own API, http(s) only
            url = json.load(answer)["data"]["connect_url"]
    except (OSError, ValueError, KeyError):
        return None
    return str(url)
