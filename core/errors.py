"""One exception hierarchy for archbench, each class carrying its HTTP status.

    ArchbenchError (500)                       an unexpected failure; detail is never shown
    ├── InvalidInput (422)                     a request that cannot be accepted; has located errors
    │   └── IdempotencyMismatch (422)          an Idempotency-Key reused with another body
    ├── Unauthorized (401)                     missing or wrong API key
    ├── NotFound (404)                         missing, or another tenant's
    ├── Conflict (409)                         the resource is not in a state that allows this
    ├── PayloadTooLarge (413)                  request body over the limit
    ├── TooManyRequests (429)                  a per-tenant quota; carries Retry-After
    ├── ServiceUnavailable (503)               a dependency (database, broker) is down
    ├── TrialFailed (500)                      stored on a trial whose training raised
    ├── AttemptsExhausted (500)                stored on a trial that used its attempts
    └── TrialsFailed (500)                     stored on a comparison with failed trials

The api renders every one of them as RFC 9457 ``application/problem+json`` in one handler;
the worker and core/trials/lifecycle.py store ``to_problem()`` of the last three on failed trials
and comparisons, so clients see the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

__all__ = [
    "ArchbenchError",
    "AttemptsExhausted",
    "Conflict",
    "ErrorItem",
    "IdempotencyMismatch",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "Problem",
    "ServiceUnavailable",
    "TooManyRequests",
    "TrialFailed",
    "TrialsFailed",
    "Unauthorized",
    "without_terminal_codes",
]


class ErrorItem(TypedDict):
    """One located error: where in the request (``["body", "variants", 1, "name"]``), and
    what is wrong there."""

    loc: list[str | int]
    msg: str


class Problem(TypedDict):
    """An RFC 9457 problem document: what the api answers for an error, and what a failed
    trial or comparison stores (``Trial.error``, ``Comparison.error``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: NotRequired[str]
    errors: NotRequired[list[ErrorItem]]


PROBLEM_BASE = "https://archbench.dev/problems/"

# Terminal escape sequences (ANSI CSI such as ``\x1b[1m``, OSC such as hyperlinks, and
# two-character escapes) and the other C0/C1 control characters but newline and tab. Keras
# colours its messages; a stored error is read in JSON, CSV, HTML and terminals, never as
# escape codes.
_TERMINAL_CODES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, ended by BEL or ST
    r"|\x1b[@-Z\\-_]"  # other two-character escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def without_terminal_codes(value: Any) -> Any:
    """``value`` with terminal escape codes removed from every string in it (dicts and lists
    are walked); anything else is returned as is."""
    if isinstance(value, str):
        return _TERMINAL_CODES.sub("", value)
    if isinstance(value, dict):
        return {k: without_terminal_codes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_terminal_codes(v) for v in value]
    return value


class ArchbenchError(Exception):
    """Base of every error archbench raises on purpose.

    A subclass names its problem in its class line: ``class NotFound(ArchbenchError,
    status=404, slug="not-found", title="Not found")``; what it leaves out it inherits.
    """

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if slug is not None:
            cls.slug = slug
        if title is not None:
            cls.title = title

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}

    @property
    def type(self) -> str:
        """The problem type URI."""
        return PROBLEM_BASE + self.slug

    def to_problem(self, instance: str | None = None) -> Problem:
        """The RFC 9457 problem object for this error."""
        body: Problem = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        return body


class InvalidInput(ArchbenchError, status=422, slug="invalid-input", title="Invalid input"):
    """The request is well-formed HTTP but its content cannot be accepted."""

    def __init__(self, errors: Sequence[ErrorItem], detail: str | None = None) -> None:
        self.errors: list[ErrorItem] = [
            {"loc": list(e["loc"]), "msg": str(e["msg"])} for e in errors
        ]
        if detail is None:
            first = self.errors[0] if self.errors else None
            detail = (
                f"{len(self.errors)} error(s); first at {'.'.join(map(str, first['loc']))}: "
                f"{first['msg']}"
                if first
                else "The request is invalid."
            )
        super().__init__(detail)

    def to_problem(self, instance: str | None = None) -> Problem:
        """The problem object, with the located errors."""
        body = super().to_problem(instance)
        body["errors"] = self.errors
        return body


class IdempotencyMismatch(
    InvalidInput,
    slug="idempotency-key-reused",
    title="Idempotency-Key reused with a different body",
):
    """The same Idempotency-Key was sent with a different body."""

    def __init__(self) -> None:
        super().__init__(
            [{"loc": ["header", "Idempotency-Key"], "msg": "already used with another body"}],
            detail="This Idempotency-Key was already used with a different request body.",
        )


class Unauthorized(ArchbenchError, status=401, slug="unauthorized", title="Unauthorized"):
    """Missing or invalid credentials."""


class NotFound(ArchbenchError, status=404, slug="not-found", title="Not found"):
    """The resource does not exist, or belongs to another tenant."""


class Conflict(ArchbenchError, status=409, slug="conflict", title="Conflict"):
    """The resource's state does not allow the operation."""


class PayloadTooLarge(
    ArchbenchError, status=413, slug="payload-too-large", title="Payload too large"
):
    """The request body exceeds the configured limit."""


class TooManyRequests(
    ArchbenchError, status=429, slug="too-many-requests", title="Too many requests"
):
    """A per-tenant quota is exhausted."""


class ServiceUnavailable(
    ArchbenchError, status=503, slug="service-unavailable", title="Service unavailable"
):
    """A dependency is down."""


class TrialFailed(ArchbenchError, slug="trial-failed", title="Trial failed"):
    """A trial's training raised; stored on the trial (``Trial.error``), never raised."""


class AttemptsExhausted(ArchbenchError, slug="attempts-exhausted", title="Trial failed"):
    """The workers running a trial stopped answering ``max_attempts`` times; stored."""


class MemoryKilled(ArchbenchError, slug="memory-killed", title="Trial killed for memory"):
    """The process training a trial was killed by a signal (the OOM killer's SIGKILL) with
    its peak memory near what it was given; stored, and the trial is not tried again."""


class TrialsFailed(ArchbenchError, slug="trials-failed", title="Some trials failed"):
    """Some trials of a comparison failed; stored on the comparison, with a title that
    says how many."""

    def __init__(self, detail: str, *, title: str | None = None) -> None:
        super().__init__(detail)
        if title:
            self.title = title
