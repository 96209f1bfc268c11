"""``/openapi.json`` types the trials page (a generated client gets ``TrialOut`` rows, not
untyped dicts) and describes every field of the training settings."""

from __future__ import annotations

from api.app import create_app
from api.schemas import TrialOut
from core.config import Settings
from core.spec import TrainingSpec


def _doc() -> dict:  # type: ignore[type-arg]
    return create_app(Settings(database_url="sqlite://"), check_migrations=False).openapi()


def test_the_trials_page_is_typed_with_trial_out() -> None:
    doc = _doc()
    op = doc["paths"]["/v1/comparisons/{comparison_id}/trials"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/TrialOut"}
    trial = doc["components"]["schemas"]["TrialOut"]
    assert set(trial["properties"]) == set(TrialOut.model_fields)


def test_every_training_setting_has_a_description() -> None:
    schemas = _doc()["components"]["schemas"]
    [name] = [n for n in schemas if n.startswith("TrainingSpec")] or ["TrainingSpec"]
    props = schemas[name]["properties"]
    assert set(props) == set(TrainingSpec.model_fields)
    missing = [k for k, v in props.items() if not v.get("description")]
    assert missing == []
