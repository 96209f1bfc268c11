"""``analysis.replicates`` through the routes in process (TestClient on SQLite, the embedded
broker's messages read back; no worker): the trials it queues, how /trials lists and pages
them, the progress it reports, and the located refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.paging import encode_cursor
from core.config import Settings
from core.errors import InvalidInput
from core.seeding import init_seed
from core.spec import ComparisonSpec, StoredSpec
from core.store.db import session_scope
from core.store.tables import Comparison
from core.trials.reuse import library_versions, trial_hash
from core.trials.validation import validate_comparison
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_api


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _spec(replicates: int | None, **analysis: Any) -> dict[str, Any]:
    spec = tiny_spec("replicates", seeds=[0, 1], variants=[small_mlp("a"), small_mlp("b")])
    if replicates is not None:
        analysis["replicates"] = replicates
    spec["analysis"] = {"probe_size": 16, **analysis}
    return spec


def test_replicates_queue_one_more_trial_per_variant_and_seed_on_the_same_data_seed(
    client: TestClient,
) -> None:
    resp = client.post("/v1/comparisons", json=_spec(1))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["progress"]["trials_total"] == 2 * 2 * 2
    rows = client.get(f"/v1/comparisons/{body['id']}/trials").json()["items"]
    assert [(r["variant"], r["seed"], r["replicate"]) for r in rows] == [
        ("a", 0, 0),
        ("a", 0, 1),
        ("a", 1, 0),
        ("a", 1, 1),
        ("b", 0, 0),
        ("b", 0, 1),
        ("b", 1, 0),
        ("b", 1, 1),
    ]
    with session_scope() as s:
        spec = StoredSpec.load(s.get_one(Comparison, body["id"]).spec.dump())
    # A replicate's reuse key carries its initialisation seed; the trial's own is unchanged
    # by asking for replicates.
    without = StoredSpec.load({**spec.dump(), "analysis": {"probe_size": 16}})
    versions = library_versions()
    assert trial_hash(spec, 0, 1, versions) == trial_hash(without, 0, 1, versions)
    assert trial_hash(spec, 0, 1, versions, 1) != trial_hash(spec, 0, 1, versions)
    assert trial_hash(spec, 0, 1, versions, 1) == trial_hash(without, 0, 1, versions, 1)
    assert init_seed(1, 1) != 1


def test_trials_page_through_the_replicates_and_an_older_cursor_still_reads(
    client: TestClient,
) -> None:
    cid = client.post("/v1/comparisons", json=_spec(1)).json()["id"]
    seen: list[tuple[str, int, int]] = []
    url = f"/v1/comparisons/{cid}/trials?limit=3"
    while url:
        page = client.get(url).json()
        seen += [(r["variant"], r["seed"], r["replicate"]) for r in page["items"]]
        url = f"/v1/comparisons/{cid}/trials?limit=3&cursor={page['next_cursor']}"
        if not page["next_cursor"]:
            break
    assert len(seen) == len(set(seen)) == 8
    # A (variant_index, seed) cursor of before the replicates goes on after every replicate.
    old = client.get(f"/v1/comparisons/{cid}/trials?limit=10&cursor={encode_cursor(0, 0)}")
    assert [(r["variant"], r["seed"], r["replicate"]) for r in old.json()["items"]][:1] == [
        ("a", 1, 0)
    ]


def test_no_replicates_by_default_and_the_stored_spec_is_as_before(client: TestClient) -> None:
    body = client.post("/v1/comparisons", json=_spec(None)).json()
    assert body["progress"]["trials_total"] == 4
    rows = client.get(f"/v1/comparisons/{body['id']}/trials").json()["items"]
    assert {r["replicate"] for r in rows} == {0}
    with session_scope() as s:
        assert "replicates" not in s.get_one(Comparison, body["id"]).spec.dump()["analysis"]


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        (_spec(5), "less than or equal to 4"),
        (_spec(-1), "greater than or equal to 0"),
        (_spec(1, predictions=False, similarity=False), "train for nothing"),
    ],
    ids=["too-many", "negative", "nothing-to-control"],
)
def test_bad_replicates_are_located_problems(
    client: TestClient, spec: dict[str, Any], msg: str
) -> None:
    resp = client.post("/v1/comparisons", json=spec)
    body = assert_problem(resp, 422)
    [error] = [e for e in body["errors"] if e["loc"] == ["body", "analysis", "replicates"]]
    assert msg in error["msg"]


def test_replicates_count_in_the_trials_and_the_trial_epochs_limit() -> None:
    spec = ComparisonSpec.model_validate(_spec(1))
    settings = Settings(max_trial_epochs=2 * 2 * 2 * 2)  # variants x seeds x 2 runs x epochs
    assert validate_comparison(spec, settings).trials_total == 8
    with pytest.raises(InvalidInput) as caught:
        validate_comparison(spec, Settings(max_trial_epochs=2 * 2 * 2 * 2 - 1))
    [error] = caught.value.errors
    assert error["loc"] == ["body", "training", "epochs"]
    assert "16 trial-epochs (variants x seeds x (1 + replicates) x epochs)" in error["msg"]


def test_an_adaptive_comparisons_round_counts_its_replicates() -> None:
    spec = StoredSpec.load(
        {**StoredSpec.load(_stored(1)).dump(), "seeds": {"min": 3, "max": 5, "step": 1}}
    )
    # 2 variants x 4 seeds x (1 + 1 replicate): the second round.
    assert spec.round_progress(2 * 4 * 2) == (2, 3)


def _stored(replicates: int) -> dict[str, Any]:
    spec = _spec(replicates)
    spec["variants"] = [{**v, "input_shape": [28, 28, 1]} for v in spec["variants"]]
    return spec


def test_each_trial_row_names_its_data_seed_and_its_initialisation_seed() -> None:
    """API.md 1.2: a trial row gives ``data_seed`` (split and order: its seed) and
    ``init_seed`` (the seed itself for replicate 0, core.seeding's for a replicate)."""
    from api.schemas import TRIAL_FIELDS, TRIAL_TYPES, trial_out
    from core.seeding import init_seed
    from core.store.tables import Trial

    for replicate in (0, 1, 2):
        row = trial_out(Trial(id="t", comparison_id="c", variant="a", variant_index=0, seed=7,
                              replicate=replicate, status="queued", attempts=0,
                              epochs_done=0, epochs_planned=1))  # fmt: skip
        assert row["data_seed"] == 7
        assert row["init_seed"] == (7 if replicate == 0 else init_seed(7, replicate))
    assert row["init_seed"] != 7
    assert {"data_seed", "init_seed"} <= set(TRIAL_FIELDS) <= set(row)
    assert str(TRIAL_TYPES["init_seed"]) == "int64"
