"""One webhook POST, bounded in time and in memory, whatever the receiver does.

A receiver is chosen by whoever submitted the comparison, so its answer is not trusted:

- at most ``ANSWER_BYTES`` of the answer are read, as they came over the wire; a compressed
  answer is inflated to at most ``SHOWN_BYTES`` (a megabyte of gzip inflating to a gigabyte
  costs a few kilobytes), and the connection is closed on the rest;
- the whole exchange (connecting, sending, waiting for and reading the answer) ends by one
  deadline, ``ARCHBENCH_WEBHOOK_DELIVERY_LIMIT_SECONDS``: every socket operation waits at most
  until then, so a receiver trickling a byte at a time cannot stretch it (the connect, read
  and write timeouts alone would let it, one byte per timeout).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpcore
import httpx

from core.errors import without_terminal_codes

__all__ = ["ANSWER_BYTES", "SHOWN_BYTES", "Answer", "Sender"]

ANSWER_BYTES = 4096  # of the answer's body, as sent (compressed or not), ever read
SHOWN_BYTES = 300  # of the (inflated) answer kept in the delivery's error

_T = TypeVar("_T")


@dataclass(frozen=True)
class Answer:
    """The receiver's status code and the start of its answer, as printable text."""

    status_code: int
    excerpt: str


class _Deadline:
    """When the current delivery must be over (``math.inf`` between deliveries)."""

    def __init__(self) -> None:
        self.at = math.inf
        self.limit = math.inf

    def clamp(self, timeout: float | None, late: type[Exception]) -> float:
        """``timeout`` shortened to what is left of the delivery's time; ``late`` if none."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise late(f"the delivery took longer than its limit of {self.limit:g} s")
        return left if timeout is None else min(timeout, left)

    def call(
        self, operation: Callable[[float], _T], timeout: float | None, late: type[Exception]
    ) -> _T:
        """``operation(wait)`` with the wait clamped; a timeout at the deadline says so."""
        try:
            return operation(self.clamp(timeout, late))
        except httpcore.TimeoutException:
            self.clamp(None, late)  # raises when it was the delivery's limit that ran out
            raise


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the delivery's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._deadline.call(
            lambda wait: self._inner.read(max_bytes, wait), timeout, httpcore.ReadTimeout
        )

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._deadline.call(
            lambda wait: self._inner.write(buffer, wait), timeout, httpcore.WriteTimeout
        )

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._deadline.call(
            lambda wait: self._inner.start_tls(ssl_context, server_hostname, wait),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's sockets, each operation limited by the delivery's deadline."""

    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        inner = self._deadline.call(
            lambda wait: self._inner.connect_tcp(host, port, wait, local_address, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(inner, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        inner = self._deadline.call(
            lambda wait: self._inner.connect_unix_socket(path, wait, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(inner, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _Transport(httpx.HTTPTransport):
    """httpx's transport on the deadline-bound backend (no proxy: the checked address is
    the one connected to)."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=backend
        )


def _excerpt(raw: bytes, encoding: str) -> str:
    """The start of an answer as printable text, inflating no more than ``SHOWN_BYTES``."""
    coding = encoding.strip().lower()
    data = raw
    if coding in ("gzip", "x-gzip", "deflate"):
        try:  # wbits 47: a gzip or zlib header, detected
            data = zlib.decompressobj(47).decompress(raw, SHOWN_BYTES)
        except zlib.error:
            return f"({coding} answer that does not inflate)"
    elif coding not in ("", "identity"):
        return f"({coding} answer not shown)"
    text = data[:SHOWN_BYTES].decode("utf-8", "replace")
    return str(without_terminal_codes(text)).strip()


class Sender:
    """POSTs webhooks, one at a time, each within ``limit`` seconds in all."""

    def __init__(self, *, timeout: float, limit: float) -> None:
        self._deadline = _Deadline()
        self._deadline.limit = limit
        self._client = httpx.Client(
            transport=_Transport(_Backend(self._deadline)),
            timeout=timeout,
            follow_redirects=False,
        )

    def post(
        self, url: str, body: bytes, headers: dict[str, str], extensions: dict[str, Any]
    ) -> Answer:
        """POST ``body``; the answer's status and excerpt. Raises httpx.HTTPError (a timeout
        once the delivery's limit is passed) or OSError."""
        self._deadline.at = time.monotonic() + self._deadline.limit
        try:
            with self._client.stream(
                "POST",
                url,
                content=body,
                headers={**headers, "Accept-Encoding": "identity"},
                extensions=extensions,
            ) as resp:
                if 200 <= resp.status_code < 300:
                    return Answer(resp.status_code, "")
                raw = b""
                for chunk in resp.iter_raw():
                    raw += chunk[: ANSWER_BYTES - len(raw)]
                    if len(raw) >= ANSWER_BYTES:
                        break  # the rest is never read: closing drops the connection
                encoding = resp.headers.get("content-encoding", "")
                return Answer(resp.status_code, _excerpt(raw, encoding))
        finally:
            self._deadline.at = math.inf

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
