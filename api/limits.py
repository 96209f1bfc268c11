"""The request body limit, enforced while the body is read (chunked bodies too), as ASGI.

A declared ``Content-Length`` over the limit is refused before a byte is read; otherwise the
bytes are counted as they arrive and the request fails with 413 the moment the limit is passed,
so no route ever holds more than the limit in memory or on disk.

Dataset uploads are also refused before their body is read when the api is already taking in
``ARCHBENCH_MAX_CONCURRENT_UPLOADS`` of them (429, ``Retry-After``) or when they are not sent
as ``multipart/form-data`` (422): the slot is taken from the headers alone and held until the
upload is answered, so eight uploads at once no longer spool eight bodies to disk only to be
told to come back later.
"""

from __future__ import annotations

import functools
import threading

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON
from core.config import Settings
from core.errors import ArchbenchError, InvalidInput, PayloadTooLarge, TooManyRequests

__all__ = ["UPLOAD_PATH", "BodyLimitMiddleware", "BodyTooLarge", "UploadGateMiddleware"]

UPLOAD_PATH = "/v1/datasets"
UPLOAD_RETRY_AFTER_SECONDS = 5


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes the limit (FastAPI lets it through)."""

    def __init__(self, limit: int, setting: str, seen: str) -> None:
        super().__init__(413, _message(limit, setting, seen))
        self.limit = limit
        self.seen = seen


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _is_upload(scope: Scope) -> bool:
    return scope.get("method") == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH


class BodyLimitMiddleware:
    """413 for bodies over ``max_body_bytes`` (``max_upload_bytes`` for dataset uploads)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        """The body limit of this request and the setting that sets it."""
        if _is_upload(scope):
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


@functools.cache
def _upload_gate(slots: int) -> threading.BoundedSemaphore:
    """Uploads being received or checked at once in this process (each spools its body to
    disk, copies it, and takes a core to check it)."""
    return threading.BoundedSemaphore(slots)


class UploadGateMiddleware:
    """Refuse a dataset upload from its headers alone: 422 unless multipart/form-data, 429
    while ``max_concurrent_uploads`` are being taken in; the slot is held until the answer."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_upload(scope):
            await self.app(scope, receive, send)
            return
        content_type = (_header(scope, b"content-type") or b"").decode("latin-1").lower()
        if not content_type.startswith("multipart/form-data"):
            msg = "an .npz file is required, sent as multipart/form-data in the field `file`"
            await _refuse(InvalidInput([{"loc": ["body", "file"], "msg": msg}]), scope, send)
            return
        slots = self.settings.max_concurrent_uploads
        gate = _upload_gate(slots)
        if not gate.acquire(blocking=False):
            busy = TooManyRequests(
                f"This api process is already checking {slots} uploads "
                "(ARCHBENCH_MAX_CONCURRENT_UPLOADS); retry shortly.",
                headers={"Retry-After": str(UPLOAD_RETRY_AFTER_SECONDS)},
            )
            await _refuse(busy, scope, send)
            return
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        async def answering(message: Message) -> None:
            # Free the slot as the answer ends, before the client can send its next upload
            # on this connection (the route's own cleanup may still be running).
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                give_back()
            await send(message)

        try:
            await self.app(scope, receive, answering)
        finally:
            give_back()


async def _refuse(exc: ArchbenchError, scope: Scope, send: Send) -> None:
    """Answer ``exc`` without reading the body, and close the connection (the unread body
    would otherwise be taken for the next request)."""

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    response = JSONResponse(
        exc.to_problem(scope.get("path")),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers={**exc.headers, "Connection": "close"},
    )
    await response(scope, no_body, send)


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
