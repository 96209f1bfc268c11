"""The web dashboard: ``/`` and its assets under ``/static/`` (plain HTML, CSS and JavaScript).

The page holds no data: it calls the same ``/v1`` api as any client, with the API key the
user typed (kept in the browser's session storage). So ``/`` and ``/static/*`` need no key.
Every asset is served by archbench itself; nothing comes from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from core.errors import NotFound
from core.report.palette import palette_js

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
# A closed list, read once: a request can only ever name one of these files.
_ASSETS = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in _TYPES}
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index() -> FileResponse:
    """The dashboard's single page."""
    return FileResponse(STATIC_DIR / "index.html", media_type=_TYPES[".html"], headers=_HEADERS)


@router.get("/static/palette.js")
def palette() -> Response:
    """The variant colours, from the table the PNG uses (core.report.palette)."""
    return Response(palette_js(), media_type=_TYPES[".js"], headers=_HEADERS)


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    """One of the dashboard's static files."""
    path = _ASSETS.get(name)
    if path is None:
        raise NotFound(f"No static file {name!r}.")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)
