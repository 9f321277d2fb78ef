"""The few HTML pages a browser sees: callback outcomes and a job followed to its end.

No JavaScript and no external assets: a page that is still waiting refreshes itself.
"""

from __future__ import annotations

import html

from aiohttp import web

from tasks.model.records import Job

STYLE = "font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;line-height:1.5"


def page(status: int, title: str, text: str, refresh_to: str | None = None) -> web.Response:
    meta = f'<meta http-equiv="refresh" content="1;url={html.escape(refresh_to)}">' if refresh_to else ""
    body = (f"<!doctype html><html lang=en><head><meta charset=utf-8>{meta}"
            f"<title>{html.escape(title)}</title></head><body style='{STYLE}'>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")
    return web.Response(status=status, text=body, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def invalid_state() -> web.Response:
    return page(400, "This link is not valid", "It was never issued, was already used or has expired. "
                "Start the connection again from the application you came from.")


def job_status(job: Job | None, refresh_to: str) -> web.Response:
    if job is None:
        return page(404, "Not found", "There is nothing to show for this link any more.")
    if job.status == "succeeded":
        return page(200, "Connected", "The connection is set up. You can close this window.")
    if job.status == "failed":
        message = (job.error or {}).get("message") or "The connection could not be set up."
        return page(200, "The connection failed", f"{message} Start again from the application you came from.")
    return page(200, "Connecting…", "Finishing the connection with the provider; this page updates itself.",
                refresh_to=refresh_to)
