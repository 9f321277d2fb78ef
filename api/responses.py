"""The contract's response shapes: ``{"data": …}``, paged lists, errors."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from tasks.errors import RequestInvalid


def one(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"data": data}, status=status, headers=headers)


def error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status, headers=headers)


def page_params(request: web.Request) -> tuple[int, int]:
    errors: dict[str, list[str]] = {}
    values = {}
    for name, default, low, high in (("page", 1, 1, None), ("per_page", 15, 1, 100)):
        raw = request.query.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            errors[name] = [f"The {name.replace('_', ' ')} field must be an integer."]
            continue
        if value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high else f"at least {low}"
            errors[name] = [f"The {name.replace('_', ' ')} field must be {limit}."]
        values[name] = value
    if errors:
        raise RequestInvalid(errors)
    return values["page"], values["per_page"]


def paged(request: web.Request, items: list[dict[str, Any]], total: int, page: int, per_page: int) -> web.Response:
    last = max(1, math.ceil(total / per_page))
    base = request.url.with_query(None).path

    def link(p: int) -> str:
        return f"{base}?page={p}&per_page={per_page}"

    return web.json_response({
        "data": items,
        "meta": {"current_page": page, "per_page": per_page, "total": total, "last_page": last,
                 "from": (page - 1) * per_page + 1 if items else None,
                 "to": (page - 1) * per_page + len(items) if items else None},
        "links": {"first": link(1), "last": link(last), "prev": link(page - 1) if page > 1 else None,
                  "next": link(page + 1) if page < last else None},
    })
