"""A trial's two seeds: the data seed and the initialisation seed.

A trial's ``seed`` (its column) is its *data seed*: it fixes the split under the per-seed
design (``worker.datasets``) and the order in which ``fit`` shuffles the training data (both
designs), the same for every variant at that seed. The *initialisation seed* fixes the
initial weights and every draw a layer's own seed generator makes (dropout masks,
augmentation): it is the data seed itself for a variant's trial (replicate 0), so the results
and reuse hashes of such trials are what they always were, and for the k-th replicate
(``replicate`` k >= 1, ``analysis.replicates``) a distinct seed derived from (seed, k) alone.

So two variants at seed s share split and order and differ in architecture (and so in their
initial weights), and a variant's trial and its replicate at seed s share split and order and
differ in their initialisation only: the within-variant pair that
``core.report.differences`` and the CKA baseline compare the cross pair with.
"""

from __future__ import annotations

import numpy as np

__all__ = ["init_seed"]

_INIT_STREAM = 0x1417
"""Names the stream of replicate initialisation seeds (distinct from the per-seed splits')."""


def init_seed(seed: int, replicate: int) -> int:
    """The initialisation seed of ``replicate`` at data seed ``seed``: ``seed`` itself for
    replicate 0, else 31 bits drawn from NumPy's ``SeedSequence`` of (seed, replicate)."""
    if replicate < 0:
        raise ValueError(f"a replicate is 0 or more, not {replicate}")
    if replicate == 0:
        return seed
    state = np.random.SeedSequence([seed, replicate, _INIT_STREAM]).generate_state(1)
    return int(state[0]) & 0x7FFFFFFF  # within the seeds a spec may name (31 bits)
