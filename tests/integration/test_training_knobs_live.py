"""Live: a variant with its own training (SGD with momentum on a cosine schedule) and
augmentation layers trains on the real worker; the report says the variants do not train
alike; a comparison whose own training is that variant's effective training reuses the trial
(the reuse key is of the effective settings)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.helpers import small_cnn, small_mlp, tiny_spec, wait_done
from tests.support.services import Service

pytestmark = [pytest.mark.services, pytest.mark.worker]

COSINE = {"schedule": "cosine", "initial_learning_rate": 0.05, "decay_steps": 20}
OWN: dict[str, Any] = {"optimizer": "sgd", "momentum": 0.9, "learning_rate": COSINE}


def test_a_variants_own_training_trains_reports_and_reuses(distributed: Service) -> None:
    augmented = small_mlp("sgd_aug")
    augmented["layers"][:0] = [
        {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1},
        {"type": "RandomContrast", "factor": 0.2, "value_range": [0, 1]},
    ]
    spec = tiny_spec("knobs-live", seeds=[0], epochs=1, variants=[small_cnn(), augmented])
    spec["variants"][1]["training"] = OWN
    with distributed.client() as client:
        first = client.post("/v1/comparisons", json=spec)
        assert first.status_code == 202, first.text
        done = wait_done(client, first.json()["id"])
        assert done["status"] == "succeeded", done
        report = client.get(f"/v1/comparisons/{done['id']}/report").json()
        assert report["design"]["training"]["sgd_aug"]["optimizer"] == "sgd"
        assert report["design"]["training"]["cnn"]["optimizer"] == "adam"
        assert any("do not train alike" in n for n in report["notes"]), report["notes"]
        trials = client.get(f"/v1/comparisons/{done['id']}/trials").json()["items"]
        original = next(t for t in trials if t["variant"] == "sgd_aug")

        # The same variant, the same settings given as the comparison's: the same trial.
        alone = tiny_spec("knobs-alone", seeds=[0], epochs=1, variants=[augmented])
        alone["variants"][0] = {k: v for k, v in augmented.items() if k != "training"}
        alone["training"] = {**alone["training"], **OWN}
        alone["reuse"] = True
        again = client.post("/v1/comparisons", json=alone).json()
        assert again["status"] == "succeeded", again
        [trial] = client.get(f"/v1/comparisons/{again['id']}/trials").json()["items"]
        assert trial["reused_from"] == original["id"]
        assert trial["test_accuracy"] == original["test_accuracy"]
