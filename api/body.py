"""Reading a JSON request body the way the contract says (§3: 400, 413, 415)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tasks.errors import BodyUnreadable

MAX_BODY = 1024 * 1024  # 1 MiB


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json"))


async def json_body(request: web.Request, *, optional: bool = False) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyUnreadable(413, f"The request body is larger than {MAX_BODY} bytes.")
    if optional and not request.body_exists:
        return None
    if not _is_json(request.content_type):
        raise BodyUnreadable(415, "Send the body as JSON with Content-Type: application/json.")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyUnreadable(413, f"The request body is larger than {MAX_BODY} bytes.") from None
    if len(raw) > MAX_BODY:
        raise BodyUnreadable(413, f"The request body is larger than {MAX_BODY} bytes.")
    if optional and not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BodyUnreadable(400, "The request body is not valid JSON.") from None
