"""``/openapi.json`` documents the typed report: every field of every report model."""

from __future__ import annotations

from api.app import create_app
from core.config import Settings
from core.report.schema import Design, Looks, PairwiseResult, Report, VariantSummary


def test_openapi_documents_every_report_field() -> None:
    app = create_app(Settings(database_url="sqlite://"), check_migrations=False)
    doc = app.openapi()
    op = doc["paths"]["/v1/comparisons/{comparison_id}/report"]["get"]
    json_schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert json_schema == {"$ref": "#/components/schemas/Report"}
    schemas = doc["components"]["schemas"]
    for model in (Report, Design, Looks, VariantSummary, PairwiseResult):
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields)
    conclusion = schemas["PairwiseResult"]["properties"]["conclusion"]
    assert set(conclusion["enum"]) == {
        "a_better",
        "b_better",
        "equivalent",
        "inconclusive",
        "untested",
    }
