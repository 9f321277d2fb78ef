"""The contract's response shapes: ``{"data": …}``, paged lists, errors (defined in ``api.schemas``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from api.schemas import ErrorBody, PageLinks, PageMeta, RefusalBody, ValidationErrorBody
from tasks.errors import Refused, RequestInvalid


def one(data: Mapping[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A record's view in its envelope."""
    return web.json_response({"data": data}, status=status, headers=headers)


def error(status: int, message: str, headers: dict[str, str] | None = None,
          errors: dict[str, list[str]] | None = None) -> web.Response:
    """``{"message"}``, and the messages by field path for a validation failure."""
    body: ErrorBody | ValidationErrorBody = (
        {"message": message} if errors is None else {"message": message, "errors": errors})
    return web.json_response(body, status=status, headers=headers)


REFUSALS = {"rate_limited": "The connector's rate limit allows no more requests just now",
            "pool_exhausted": "Every slot of the connector's connection pool is taken"}


def refused(exc: Refused) -> web.Response:
    """429: no permit in time (§9), with which limit held it and when to try again (whole seconds)."""
    seconds = max(1, math.ceil(exc.retry_after))
    body: RefusalBody = {"message": f"{REFUSALS[exc.code]}; retry in {seconds} s.", "code": exc.code}
    return web.json_response(body, status=429, headers={"Retry-After": str(seconds)})


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


def paged(request: web.Request, items: Sequence[Mapping[str, Any]], total: int, page: int,
          per_page: int, filters: Mapping[str, str] | None = None) -> web.Response:
    """A page of records' views, with the page's place in the list and links to its neighbours
    (which keep the list's ``filters``)."""
    last = max(1, math.ceil(total / per_page))
    base = request.url.with_query(None).path
    kept = "".join(f"&{k}={quote(v, safe='')}" for k, v in (filters or {}).items())

    def link(p: int) -> str:
        return f"{base}?page={p}&per_page={per_page}{kept}"

    meta: PageMeta = {"current_page": page, "per_page": per_page, "total": total, "last_page": last,
                      "from": (page - 1) * per_page + 1 if items else None,
                      "to": (page - 1) * per_page + len(items) if items else None}
    links: PageLinks = {"first": link(1), "last": link(last), "prev": link(page - 1) if page > 1 else None,
                        "next": link(page + 1) if page < last else None}
    return web.json_response({"data": items, "meta": meta, "links": links})
