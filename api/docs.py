"""``/docs``: Swagger UI served by archbench itself, from the ``swagger-ui-bundle-v2`` package.

FastAPI's own ``/docs`` and ``/redoc`` pages load their JavaScript and CSS from a CDN; a
dashboard that promises every asset is served by archbench (and a service that runs where
nothing outside is reachable) cannot link to them. So the app turns both off, and this module
serves the Swagger UI page with its files under ``/static/swagger-ui/`` (which, like the
dashboard's ``/static/``, needs no key: the page then calls the api with the key the user
enters under "Authorize"). ReDoc has no packaged copy and stays off; ``/openapi.json`` is the
machine-readable description.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from core.errors import NotFound

__all__ = ["ASSET_PREFIX", "install_docs", "swagger_ui_dir"]

ASSET_PREFIX = "/static/swagger-ui"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def swagger_ui_dir() -> Path:
    """The folder of Swagger UI's distribution files, from the swagger-ui-bundle-v2 package."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def _page(title: str, openapi_url: str) -> str:
    config = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
        "persistAuthorization": True,
        "oauth2RedirectUrl": OAUTH2_REDIRECT,
    }
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - API docs</title>
<link rel="stylesheet" href="{ASSET_PREFIX}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSET_PREFIX}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSET_PREFIX}/swagger-ui-bundle.js"></script>
<script>
const config = {json.dumps(config)};
config.presets = [SwaggerUIBundle.presets.apis];
window.ui = SwaggerUIBundle(config);
</script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, its OAuth2 redirect page and its asset route (the app has docs_url=None)."""
    folder = swagger_ui_dir()
    # A closed list, read once: a request can only ever name one of these files.
    assets = {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix in _TYPES}
    page = _page(app.title, app.openapi_url or "/openapi.json")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(ASSET_PREFIX + "/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> FileResponse:
        path = assets.get(name)
        if path is None:
            raise NotFound(f"No Swagger UI file {name!r}.")
        return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)
