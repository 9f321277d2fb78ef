"""``GET /api/openapi.json`` and ``GET /api/docs``: the API description and a page to read it.

The page is Swagger UI, served from this process: its static files come from the
``swagger-ui-py`` wheel (only its ``static/`` folder is used, found without importing the
package, whose framework integrations are of no use here). Nothing on the page is loaded
from anywhere else.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from aiohttp import web

from api.openapi import OPENAPI

SPEC_URL = "/api/openapi.json"
STATIC_URL = "/api/docs/static"
# The only files served: what the page below loads, and the licence they ship under.
STATIC_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
    "LICENSE": "text/plain",
}
INIT_SCRIPT = "authq-docs.js"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>authq API</title>
<link rel="stylesheet" href="{STATIC_URL}/swagger-ui.css">
<link rel="icon" type="image/png" href="{STATIC_URL}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{STATIC_URL}/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC_URL}/swagger-ui-bundle.js"></script>
<script src="{STATIC_URL}/{INIT_SCRIPT}"></script>
</body>
</html>
"""

# validatorUrl: null keeps Swagger UI from sending the document to its public online validator.
INIT = f"""window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: "{SPEC_URL}",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false
  }});
}});
"""


@cache
def static_dir() -> Path:
    """The ``static`` folder of the installed ``swagger_ui`` package (not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (it is a dependency of authq)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def openapi_json(request: web.Request) -> web.StreamResponse:
    body = request.app[OPENAPI].json_bytes(request.app)
    return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-cache"})


async def page(request: web.Request) -> web.StreamResponse:
    return web.Response(text=PAGE, content_type="text/html",
                        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["file"]
    if name == INIT_SCRIPT:
        return web.Response(text=INIT, content_type="text/javascript", headers={"Cache-Control": "no-cache"})
    media = STATIC_FILES.get(name)
    if media is None:
        raise web.HTTPNotFound()
    path = static_dir() / name
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": media, "Cache-Control": "public, max-age=86400"})
