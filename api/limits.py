"""The request body limit, enforced while the body is read (chunked bodies too), as ASGI.

A declared ``Content-Length`` over the limit is refused before a byte is read; otherwise the
bytes are counted as they arrive and the request fails with 413 the moment the limit is passed,
so no route ever holds more than the limit in memory or on disk.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON
from core.config import Settings
from core.errors import PayloadTooLarge

__all__ = ["UPLOAD_PATH", "BodyLimitMiddleware", "BodyTooLarge"]

UPLOAD_PATH = "/v1/datasets"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes the limit (FastAPI lets it through)."""

    def __init__(self, limit: int, setting: str, seen: str) -> None:
        super().__init__(413, _message(limit, setting, seen))
        self.limit = limit
        self.seen = seen


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """413 for bodies over ``max_body_bytes`` (``max_upload_bytes`` for dataset uploads)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        """The body limit of this request and the setting that sets it."""
        if scope.get("method") == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH:
            return self.settings.max_upload_bytes, "ARCHBENCH_MAX_UPLOAD_BYTES"
        return self.settings.max_body_bytes, "ARCHBENCH_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            size = f"its Content-Length is {declared:,} bytes"
            await _too_large(limit, setting, size, scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(
                        limit, setting, f"{seen:,} bytes had arrived when reading stopped"
                    )
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _too_large(limit, setting, exc.seen, scope, receive, send)


def _message(limit: int, setting: str, seen: str) -> str:
    """The 413 detail: the limit, its setting and how big the body was (as far as known)."""
    return f"The request body exceeds the limit of {limit:,} bytes ({setting}): {seen}."


async def _too_large(
    limit: int, setting: str, seen: str, scope: Scope, receive: Receive, send: Send
) -> None:
    exc = PayloadTooLarge(_message(limit, setting, seen))
    response = JSONResponse(
        exc.to_problem(scope.get("path")),
        status_code=413,
        media_type=PROBLEM_JSON,
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)
