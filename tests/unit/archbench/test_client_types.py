"""The client's typed rows name what the service sends: its trial, metric and prediction
columns (the client does not import the service, so the names are written twice and held equal
here)."""

from __future__ import annotations

from api.schemas import TRIAL_FIELDS
from archbench.types import MetricRow, PredictionRow, TrialRow
from core.exports.metrics import KEYS as METRIC_KEYS
from core.report.similarity import PREDICTION_COLUMNS


def test_a_trial_row_has_every_column_of_the_trials_table_and_its_error() -> None:
    assert list(TrialRow.__annotations__) == [*TRIAL_FIELDS, "error"]


def test_a_metric_row_names_the_keys_of_every_epoch_row() -> None:
    assert [k for k in MetricRow.__annotations__ if k in METRIC_KEYS] == list(METRIC_KEYS)


def test_a_prediction_row_has_the_prediction_columns() -> None:
    assert list(PredictionRow.__annotations__) == PREDICTION_COLUMNS
