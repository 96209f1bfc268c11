"""The order of a comparison's trials in the table downloads, and the keyset that resumes it.

A download (``/metrics``, ``/predictions``) is read in short sessions, one bounded batch
each, so no pooled connection is held while a slow client reads the answer (as ``/trials``
does). Each read continues after the last trial (or the last row of a trial) the previous
one returned, so the order must be total: (variant index, seed) already are unique within a
comparison (as its trials' (variant, seed) are), and the trial id after them makes the order
total without relying on that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from core.store.tables import Trial

__all__ = ["TRIAL_ORDER", "TrialKey", "trials_after"]

# (variant_index, seed, id) of a trial: where a read stopped.
TrialKey = tuple[int, int, str]
TRIAL_ORDER: tuple[Any, ...] = (Trial.variant_index, Trial.seed, Trial.id)


def trials_after(key: TrialKey, *, inclusive: bool = False) -> ColumnElement[bool]:
    """The trials after ``key`` in ``TRIAL_ORDER`` (and the trial ``key`` itself when
    ``inclusive``): spelled out, not as a row value, for every dialect."""
    variant_index, seed, trial_id = key
    last = Trial.id >= trial_id if inclusive else Trial.id > trial_id
    return or_(
        Trial.variant_index > variant_index,
        and_(Trial.variant_index == variant_index, Trial.seed > seed),
        and_(Trial.variant_index == variant_index, Trial.seed == seed, last),
    )
