"""core.trials.lifecycle.rewind_trial on Postgres: a resumed attempt forgets the rows it
retrains."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.store.db import make_engine
from core.store.migrate import upgrade
from core.store.tables import Comparison, EpochMetric, Trial, new_id, utcnow
from core.trials.lifecycle import LeaseLost, rewind_trial
from tests.support.helpers import stored_spec
from tests.support.services import fresh_database

pytestmark = [pytest.mark.services]


def test_rewind_keeps_the_resume_point_and_charges_its_seconds(pg_url: str) -> None:
    with fresh_database("archbench_rewind") as url:
        upgrade(url)
        engine = make_engine(url)
        cid, tid, now = new_id(), new_id(), utcnow()
        with Session(engine) as s, s.begin():
            s.execute(
                insert(Comparison).values(
                    id=cid,
                    tenant="default",
                    name="rewind",
                    status="running",
                    spec=stored_spec(),
                    analyses={},
                    created_at=now,
                    trials_total=1,
                    epochs_total=5,
                    cancel_requested=False,
                )
            )
            s.execute(
                insert(Trial).values(
                    id=tid,
                    comparison_id=cid,
                    variant="v",
                    variant_index=0,
                    seed=0,
                    status="running",
                    attempts=2,
                    epochs_planned=5,
                    epochs_done=5,
                    created_at=now,
                    lease_owner="w1",
                    lease_expires_at=now + timedelta(seconds=60),
                )
            )
            for epoch in range(1, 6):
                s.execute(
                    insert(EpochMetric).values(
                        trial_id=tid,
                        epoch=epoch,
                        values={"loss": 1.0 / epoch},
                        seconds=1.5,
                        recorded_at=now,
                    )
                )
        with Session(engine) as s, s.begin(), pytest.raises(LeaseLost):
            rewind_trial(s, tid, owner="someone else", epoch=0, lease_seconds=60)
        with Session(engine) as s, s.begin():
            assert rewind_trial(s, tid, owner="w1", epoch=2, lease_seconds=60) == 3.0
        with Session(engine) as s:
            epochs = s.scalars(
                select(EpochMetric.epoch).where(EpochMetric.trial_id == tid).order_by("epoch")
            ).all()
            assert epochs == [1, 2]
            assert s.get_one(Trial, tid).epochs_done == 2
        engine.dispose()
