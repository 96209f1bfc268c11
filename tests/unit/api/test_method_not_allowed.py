"""A 405 names every method the path takes (Allow), as the OpenAPI document lists them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.services import in_process_api

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def test_every_path_answers_a_wrong_method_with_all_its_methods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_process_api("sqlite", tmp_path, monkeypatch) as client:
        doc = client.get("/openapi.json").json()
        checked = 0
        for template, operations in doc["paths"].items():
            path = template.replace("{", "").replace("}", "")  # any value matches a parameter
            declared = {m.upper() for m in operations}
            wrong = next((m for m in METHODS if m not in declared), None)
            if wrong is None:
                continue
            answer = client.request(wrong, path)
            assert answer.status_code == 405, (wrong, template, answer.status_code)
            assert answer.headers["content-type"] == "application/problem+json"
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            expected = declared | ({"HEAD"} if "GET" in declared else set())
            assert allowed == expected, template
            checked += 1
        assert checked == len(doc["paths"])  # no path takes every method
