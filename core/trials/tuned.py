"""What a trial trains with once its tuned ``config`` is applied: one function for the api
(the reuse key) and the worker (the training setup), so the two never disagree.

A config maps knobs (``core.tuning_space``) to values: ``learning_rate``, ``weight_decay``,
``momentum`` and ``batch_size`` replace the variant's training settings, and
``dropout.<layer name>`` the ``rate`` of the dropout layer of that name (a variant without
it is unchanged). A tuning trial trains for ``tuning.epochs`` (training's when unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.spec import StoredSpec, TrainingSpec
from core.status import TrialStage
from core.trials.tuning_checks import DROPOUT_TYPES, tuning_epochs
from core.tuning_space import KNOBS

__all__ = ["apply_config", "trial_setup"]


def apply_config(
    training: TrainingSpec,
    layers: list[dict[str, Any]],
    config: Mapping[str, Any] | None,
    *,
    epochs: int | None = None,
) -> tuple[TrainingSpec, list[dict[str, Any]]]:
    """``training`` and ``layers`` with ``config``'s knobs over them (and ``epochs``, when
    given); the inputs are not changed. ``ValidationError`` when the settings do not fit
    together (the submit's checks keep a stored config from that)."""
    updates: dict[str, Any] = {k: v for k, v in (config or {}).items() if k in KNOBS}
    if epochs is not None:
        updates["epochs"] = epochs
    if updates:
        training = TrainingSpec.model_validate({**training.model_dump(mode="json"), **updates})
    rates = {
        k.removeprefix("dropout."): float(v)
        for k, v in (config or {}).items()
        if k.startswith("dropout.")
    }
    if rates:
        layers = [
            {**layer, "rate": rates[layer["name"]]}
            if layer.get("type") in DROPOUT_TYPES and layer.get("name") in rates
            else layer
            for layer in layers
        ]
    return training, layers


def trial_setup(
    spec: StoredSpec,
    variant_index: int,
    *,
    stage: str = TrialStage.TEST,
    config: Mapping[str, Any] | None = None,
) -> tuple[TrainingSpec, list[dict[str, Any]]]:
    """The training settings and layers trial (``variant_index``, ``stage``, ``config``) of
    ``spec`` trains with: the variant's own settings over the comparison's, the config over
    those, and a tuning trial's epochs."""
    epochs = None
    if stage == TrialStage.TUNING and spec.tuning is not None:
        epochs = tuning_epochs(spec.tuning, spec.training.epochs)
    return apply_config(
        spec.training_for(variant_index),
        spec.variants[variant_index].layers,
        config,
        epochs=epochs,
    )
