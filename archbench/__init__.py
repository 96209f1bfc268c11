"""archbench's Python client: ``from archbench.client import Client, AsyncClient``."""

from archbench._common import Event, build_spec, keras_variant
from archbench.client import AsyncClient, Client
from archbench.errors import (
    ArchbenchError,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    WaitTimeout,
)
from archbench.notebook import Comparison, Report

__all__ = [
    "ArchbenchError",
    "AsyncClient",
    "Client",
    "Comparison",
    "Conflict",
    "Event",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "Report",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "WaitTimeout",
    "build_spec",
    "keras_variant",
]
