"""The one error the architecture language raises: a list of located, readable problems."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

__all__ = ["CUSTOM_REFUSED", "ErrorDict", "Loc", "SpecError", "err"]

Loc = list[str | int]

CUSTOM_REFUSED = (
    "custom classes are refused: their code is not in the service, and running code sent with "
    "a model would let a request execute anything on the workers; the service builds only "
    "the built-in Keras layers it lists, from their arguments"
)
"""Why a custom class (a layer, an initializer ...) is refused: said wherever one is met."""


class ErrorDict(TypedDict):
    """One located error: where in the variant (``["layers", 0, "kernel_size"]``), and what
    is wrong there (the same shape as ``core.errors.ErrorItem``)."""

    loc: Loc
    msg: str


def err(loc: Sequence[str | int], msg: str) -> ErrorDict:
    """Return one error item ``{"loc": [...], "msg": "..."}``."""
    return {"loc": list(loc), "msg": msg}


class SpecError(Exception):
    """An invalid architecture; ``errors`` holds ``{"loc", "msg"}`` items relative to a variant."""

    def __init__(self, errors: Iterable[ErrorDict]) -> None:
        self.errors: list[ErrorDict] = [err(e["loc"], e["msg"]) for e in errors]
        super().__init__(self._summary())

    def _summary(self) -> str:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '<variant>'}: {e['msg']}" for e in self.errors
        ]
        return "; ".join(parts) or "invalid architecture"

    def prefixed(self, *prefix: str | int) -> SpecError:
        """Return a copy whose locations start with ``prefix`` (e.g. ``"variants", 1``)."""
        return SpecError(err([*prefix, *e["loc"]], e["msg"]) for e in self.errors)
