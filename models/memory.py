"""What one trial needs in a worker's memory, counted before it is admitted: the process with
TensorFlow loaded, the dataset as the worker holds it, the weights with their gradients and
optimizer state, and the larger of the training step and the analysis' probe pass (they run
one after the other). No TensorFlow: the api counts it at submit.

The constants are fitted to peaks measured in real worker children (``bench/memory_calibration.py``
trains each of 14 models in a fresh process, the way a worker does, and reads the kernel's
peak RSS; its table is in bench/README.md, and a test keeps every estimate within 1.5x of its
measured peak, bench/memory_calibration.json). Measured on the development machine (CPU,
TensorFlow 2.21): a worker child with TensorFlow imported holds 760 to 820 MiB before its
first model, and tracing the first model adds 100 to 200 MiB (``RUNTIME_BYTES``); a training
step holds 1.4 to 1.6x the layer outputs of a batch for convolutions at 0.5 to 1.1 GiB of
outputs, that tracing included (``TRAINING_FACTOR``), and about 0.9x for layers that only
move values (ten ZeroPadding2D layers: ``MOVED_TYPES``); the probe pass holds the tensors
``worker.analysis`` keeps alive over the whole probe set plus its Gram (``PROBE_FACTOR``).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.analysis import BYTES_PER_VALUE, Analysis

__all__ = [
    "MOVED_TYPES",
    "PARAM_COPIES",
    "PROBE_FACTOR",
    "RUNTIME_BYTES",
    "TRAINING_FACTOR",
    "TrialMemory",
    "dataset_bytes",
    "trial_memory",
]

RUNTIME_BYTES = 900 * 1024 * 1024
"""A worker child with TensorFlow and Keras imported, its dataset cache and a first model
traced (measured 760 to 820 MiB before the model, plus 100 to 200 MiB of tracing)."""
TRAINING_FACTOR = 1.5
"""Peak bytes of a training step per byte of the layer outputs of one batch (measured 1.41 for
conv64x3 at 1,146 MiB of outputs a batch, 1.59 at 463 MiB, tracing included)."""
MOVED_TYPES = frozenset({"ZeroPadding2D", "Flatten", "Reshape"})
"""Layers that only move values: nothing of theirs is kept for the backward pass (their
gradient is the incoming one, moved back), so their output counts once, not
``TRAINING_FACTOR`` times (measured: ten ZeroPadding2D layers' outputs cost 0.9x)."""
PARAM_COPIES = 5
"""Weights, gradients, Adam's two moments, and the warm model's snapshot: float32 each."""
PROBE_FACTOR = 1.5
"""Peak bytes of the probe pass per byte of the tensors it keeps alive."""


@dataclass(frozen=True)
class TrialMemory:
    """The parts of a trial's peak memory, in bytes."""

    runtime: int
    dataset: int
    weights: int
    training_step: int
    probe_pass: int

    @property
    def total(self) -> int:
        """The peak: what is always held, plus the larger of the two passes."""
        return self.runtime + self.dataset + self.weights + max(self.training_step, self.probe_pass)

    def largest(self) -> str:
        """The name of the part that dominates (runtime excluded: no spec can change it)."""
        parts = {
            "training_step": self.training_step,
            "probe_pass": self.probe_pass,
            "weights": self.weights,
            "dataset": self.dataset,
        }
        return max(parts, key=parts.__getitem__)


def dataset_bytes(samples: int, pool: int, input_shape: tuple[int, ...]) -> int:
    """The dataset as a worker holds it, float32: the whole pooled dataset it caches
    (``samples``) and the split's parts drawn from the ``pool`` (``max_samples`` of them)."""
    size = 1
    for d in input_shape:
        size *= d
    return (samples + pool) * size * BYTES_PER_VALUE


def _step_bytes_per_sample(analysis: Analysis) -> int:
    """What a training step holds per example: each layer's float32 output, times
    ``TRAINING_FACTOR`` unless the layer only moves values."""
    total = 0.0
    for layer in analysis.layers:
        size = BYTES_PER_VALUE
        for d in layer.output_shape:
            size *= d
        total += size if layer.type in MOVED_TYPES else TRAINING_FACTOR * size
    return int(total)


def trial_memory(
    analysis: Analysis, *, batch_size: int, probe_size: int, dataset: int
) -> TrialMemory:
    """The trial's memory for ``analysis`` trained in batches of ``batch_size``, its probe pass
    over ``probe_size`` examples (0: similarity off) and ``dataset`` bytes of data."""
    acts = analysis.activations
    alive = acts.peak_bytes_per_sample if acts is not None else 0
    probe = 0
    if probe_size > 0:
        gram = probe_size * probe_size * 8  # one float64 Gram, built from float32 blocks
        probe = int(PROBE_FACTOR * (probe_size * alive + gram))
    return TrialMemory(
        runtime=RUNTIME_BYTES,
        dataset=dataset,
        weights=PARAM_COPIES * analysis.params * BYTES_PER_VALUE,
        training_step=batch_size * _step_bytes_per_sample(analysis),
        probe_pass=probe,
    )
