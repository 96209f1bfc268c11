"""The submit's checks of a comparison's ``tuning`` block, and what it adds to the budget.

``core.tuning_space.tuning_errors`` checks the block against one optimizer and the layer
names; here it is asked for every optimizer the variants train with, against the Dropout
layers the normalised variants name, and the tuning trials count towards the comparison's
trials, epochs and trial-epoch limit. Locations start at ``["body", "tuning"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.config import Settings
from core.errors import ErrorItem
from core.spec import ComparisonSpec, StoredVariant
from core.tuning_space import TuningSpec, tuning_errors

__all__ = ["DROPOUT_TYPES", "budget_of", "dropout_layers", "tuning_submit_errors"]

DROPOUT_TYPES = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"})
"""The layer types whose ``rate`` a ``dropout.<layer name>`` knob sets."""


def dropout_layers(layers: Sequence[dict[str, object]]) -> set[str]:
    """The names of the dropout layers among a variant's stored layers."""
    return {
        str(layer["name"])
        for layer in layers
        if layer.get("type") in DROPOUT_TYPES and layer.get("name")
    }


def tuning_epochs(tuning: TuningSpec, training_epochs: int) -> int:
    """The epochs a tuning trial trains: the block's own, else training's."""
    return tuning.epochs if tuning.epochs is not None else training_epochs


def budget_of(spec: ComparisonSpec, variants: int) -> tuple[int, int]:
    """(trials, epochs) the comparison starts with: its first seeds of every variant, and
    with tuning the ``trials`` tuning trials of every variant as well (planned at submit, so
    the progress counts them from the start)."""
    seeds = len(spec.initial_seeds) * spec.runs_per_seed  # each seed's replicates too
    trials, epochs = variants * seeds, variants * seeds * spec.training.epochs
    if spec.tuning is not None:
        trials += variants * spec.tuning.trials
        epochs += variants * spec.tuning.trials * tuning_epochs(spec.tuning, spec.training.epochs)
    return trials, epochs


def tuning_submit_errors(
    spec: ComparisonSpec, variants: Sequence[StoredVariant], settings: Settings
) -> list[ErrorItem]:
    """Every located problem of the ``tuning`` block (none without one): the block's own
    checks for each optimizer a variant trains with, and the trial-epoch limit with the
    tuning trials counted."""
    tuning = spec.tuning
    if tuning is None:
        return []
    names: set[str] = set()
    for variant in variants:
        names |= dropout_layers(variant.layers)
    optimizers: list[str] = [spec.training.optimizer]
    for variant in variants:
        optimizer = (variant.training or {}).get("optimizer")
        if isinstance(optimizer, str) and optimizer not in optimizers:
            optimizers.append(optimizer)
    errors: list[ErrorItem] = []
    for optimizer in optimizers:
        for error in tuning_errors(
            tuning,
            training_epochs=spec.training.epochs,
            optimizer=optimizer,
            dropout_layers=names,
        ):
            located: ErrorItem = {"loc": ["body", *error["loc"]], "msg": error["msg"]}
            if located not in errors:
                errors.append(located)
    if spec.dataset.validation_split == 0:
        errors.append(
            {
                "loc": ["body", "dataset", "validation_split"],
                "msg": "tuning scores each configuration on the validation split: give "
                "validation_split above 0 (the test split is never used to select)",
            }
        )
    if spec.dataset.split == "per_seed":
        errors.append(
            {
                "loc": ["body", "dataset", "split"],
                "msg": 'tuning needs "split": "fixed": under per_seed every seed draws its '
                "own test split, so a tuning trial would train or be selected on examples that "
                "some tested trial is scored on; with one fixed split the selection sees the "
                "training and validation splits only",
            }
        )
    most = len(spec.variants) * (
        spec.most_seeds * spec.runs_per_seed * spec.training.epochs
        + tuning.trials * tuning_epochs(tuning, spec.training.epochs)
    )
    if most > settings.max_trial_epochs:
        errors.append(
            {
                "loc": ["body", "tuning", "trials"],
                "msg": f"{most:,} trial-epochs (variants x (seeds x (1 + replicates) x "
                "epochs + tuning trials x tuning epochs)) exceeds the limit of "
                f"{settings.max_trial_epochs:,}",
            }
        )
    return errors
