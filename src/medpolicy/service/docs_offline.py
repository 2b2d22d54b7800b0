"""`/docs`: Swagger UI served from this service, with no CDN (it works offline and behind a firewall),
under the same Content-Security-Policy as the workbench. The assets come from the `fastapi-offline`
package; the page's start-up script is a file, not inline, so `script-src 'self'` holds."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from medpolicy.service.errors import ApiError

ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medpolicy API</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script></body></html>
"""
INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]});
"""


def install_offline_docs(app: FastAPI) -> None:
    """Add `GET /docs` and its assets to `app` (built with `docs_url=None`)."""
    static = files("fastapi_offline") / "static"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=HEADERS)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name == "init.js":
            return Response(INIT, media_type="text/javascript", headers=HEADERS)
        media_type = ASSETS.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", "no such endpoint")
        data = (static / name).read_bytes()
        return Response(data, media_type=media_type, headers={**HEADERS, "Cache-Control": "max-age=86400"})
