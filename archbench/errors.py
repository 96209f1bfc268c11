"""Typed exceptions of the archbench client, each carrying the service's problem object.

ArchbenchError                 any error answer (``.status``, ``.problem``, ``.detail``)
├── InvalidInput (422)         ``.errors``: ``[{"loc": [...], "msg": "..."}]``
├── Unauthorized (401)
├── NotFound (404)             missing, or another tenant's
├── Conflict (409)             e.g. cancelling a comparison that already ended
├── PayloadTooLarge (413)
├── TooManyRequests (429)
├── ServiceUnavailable (503)   also raised when the service cannot be reached at all
└── WaitTimeout                ``wait()``/``events()`` ran past their timeout (``.comparison``)
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "ArchbenchError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "WaitTimeout",
    "error_from_response",
]


class ArchbenchError(Exception):
    """An error answer of the archbench service (RFC 9457 problem object in ``.problem``)."""

    def __init__(self, problem: dict[str, Any], status: int | None = None) -> None:
        self.problem = problem
        self.status = int(status if status is not None else problem.get("status") or 0)
        self.title = str(problem.get("title", "Error"))
        self.detail = str(problem.get("detail", self.title))
        self.type = str(problem.get("type", "about:blank"))
        super().__init__(f"{self.title} ({self.status}): {self.detail}")


class InvalidInput(ArchbenchError):
    """The request was refused; ``errors`` locates every problem in it."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Located errors: ``[{"loc": [...], "msg": "..."}]``."""
        return list(self.problem.get("errors") or [])


class Unauthorized(ArchbenchError):
    """Missing or wrong API key."""


class NotFound(ArchbenchError):
    """No such resource (or another tenant's)."""


class Conflict(ArchbenchError):
    """The resource's state does not allow this."""


class PayloadTooLarge(ArchbenchError):
    """The request body is over the service's limit."""


class TooManyRequests(ArchbenchError):
    """A quota is exhausted; see ``problem`` and retry later."""


class ServiceUnavailable(ArchbenchError):
    """The service, or one of its dependencies, is down or unreachable."""


class WaitTimeout(ArchbenchError, TimeoutError):
    """A comparison did not end within the timeout; ``comparison`` is its last known state."""

    def __init__(self, comparison_id: str, timeout: float, comparison: dict[str, Any] | None):
        self.comparison_id = comparison_id
        self.comparison = comparison
        state = (comparison or {}).get("status", "unknown")
        super().__init__(
            {
                "type": "about:blank",
                "title": "Timed out",
                "status": 0,
                "detail": f"comparison {comparison_id} is still {state} after {timeout:g} s",
            }
        )


_BY_STATUS: dict[int, type[ArchbenchError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    400: InvalidInput,
    429: TooManyRequests,
    503: ServiceUnavailable,
}


def error_from_response(resp: httpx.Response) -> ArchbenchError:
    """The typed exception for an error answer."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {
            "type": "about:blank",
            "title": resp.reason_phrase or "Error",
            "status": resp.status_code,
            "detail": resp.text[:500],
        }
    return _BY_STATUS.get(resp.status_code, ArchbenchError)(body, resp.status_code)


def unreachable(url: str, exc: Exception) -> ServiceUnavailable:
    """The error for a service that could not be reached at all."""
    return ServiceUnavailable(
        {
            "type": "about:blank",
            "title": "Service unreachable",
            "status": 0,
            "detail": f"cannot reach archbench at {url} ({type(exc).__name__}: {exc}). "
            "Start one there with `archbench up` (or `make up` in a checkout), or point "
            "ARCHBENCH_URL (the CLI's --url) at one that runs",
        }
    )
