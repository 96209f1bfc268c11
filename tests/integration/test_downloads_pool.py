"""Table downloads hold no pooled connection of the request while they stream (the
downloads' half of "a stream holds no pooled connection"), on the real stack (Postgres).

The api runs with a pool of one connection (``ARCHBENCH_DB_POOL_SIZE=1``, no overflow). Before
the fix ``/trials``, ``/metrics`` and ``/predictions`` kept the request's session (the
comparison lookup) open until the answer ended while their generator took a second
connection: with one connection every download waited ``ARCHBENCH_DB_POOL_TIMEOUT`` and broke
after its 200 headers. Now the lookup's session is closed before the body streams and the
first read happens before the headers, so each download answers in full with one connection,
and a pool that stays busy is a 503 problem+json with Retry-After, never a cut body or a 500.

Nor does a download hold a connection while a slow client reads it: the tables are read in
short sessions of one bounded batch each, so a paused download of a large comparison leaves
the one connection to the next request (``test_a_paused_download_holds_no_pooled_connection``).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import pyarrow.parquet as pq
import pytest

from tests.support.helpers import assert_problem, tiny_spec
from tests.support.secured import SecuredApi, secured_api

pytestmark = pytest.mark.services

POOL_TIMEOUT = 3


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    with secured_api(
        tmp_path_factory.mktemp("downloads"),
        ("a",),
        ARCHBENCH_DB_POOL_SIZE="1",
        ARCHBENCH_DB_MAX_OVERFLOW="0",
        ARCHBENCH_DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        ARCHBENCH_ACCESS_LOG="false",
        ARCHBENCH_STATUS_CACHE_SECONDS="0",
    ) as svc:
        yield svc


@pytest.fixture(scope="module")
def comparison_id(api: SecuredApi) -> str:
    with api.client("a") as a:
        resp = a.post("/v1/comparisons", json=tiny_spec("dl", seeds=[0, 1], epochs=1))
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])


@pytest.mark.parametrize("table", ["trials", "metrics", "predictions"])
@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_a_download_needs_one_pooled_connection(
    api: SecuredApi, comparison_id: str, table: str, fmt: str
) -> None:
    with api.client("a") as a:
        resp = a.get(f"/v1/comparisons/{comparison_id}/{table}", params={"format": fmt})
    assert resp.status_code == 200, resp.text
    if fmt == "json":
        rows = json.loads(resp.content)["items"]
    elif fmt == "csv":
        lines = resp.text.splitlines()
        assert lines, "no header row"
        assert "," in lines[0]
        rows = lines[1:]
    else:
        rows = pq.read_table(io.BytesIO(resp.content)).to_pylist()
    # Two variants x two seeds, queued (no worker): four trials, no epochs, no predictions.
    assert len(rows) == (4 if table == "trials" else 0), rows
    # And the pool is free again for the next request.
    with api.client("a") as a:
        assert a.get("/v1/comparisons?limit=5").status_code == 200


def test_a_busy_pool_is_a_503_before_the_body(api: SecuredApi, comparison_id: str) -> None:
    """The only connection is busy (a download's read waits on a lock the test holds): another
    download waits ARCHBENCH_DB_POOL_TIMEOUT and answers 503 problem+json with Retry-After."""
    url = api.env["ARCHBENCH_DATABASE_URL"]
    done: dict[str, int] = {}
    with psycopg.connect(url) as lock:
        lock.execute("LOCK TABLE trials IN ACCESS EXCLUSIVE MODE")

        def blocked() -> None:
            with api.client("a") as a:
                done["status"] = a.get(f"/v1/comparisons/{comparison_id}/trials").status_code

        first = threading.Thread(target=blocked)
        first.start()
        try:
            threading.Event().wait(1.0)  # the first download now holds the one connection
            with api.client("a") as a:
                resp = a.get(f"/v1/comparisons/{comparison_id}/trials", params={"format": "csv"})
            body = assert_problem(resp, 503)
            assert int(resp.headers["retry-after"]) > 0
            assert "retry" in body["detail"].lower()
        finally:
            lock.rollback()
            first.join(30)
    assert done.get("status") == 200, done


# A comparison big enough that its downloads outlast what the sockets hold: the api's send
# buffer grows to about 4 MB on a Linux loopback (net.ipv4.tcp_wmem), so a client that stops
# reading leaves the server waiting to write well before the end of these bodies (checked
# below: each is more than twice that), in the middle of the table's reads.
SOCKET_BYTES = 4 * 1024 * 1024
BIG_SEEDS = list(range(30))  # x 2 variants: 60 trials, three reads of CHUNK_TRIALS
BIG_EPOCHS = 2500  # 150,000 metric rows, 7 numbers each
BIG_EXAMPLES = 3000  # test predictions per trial: 180,000 rows


@pytest.fixture(scope="module")
def big_comparison(api: SecuredApi) -> str:
    """A comparison whose 60 trials all succeeded with ``BIG_EPOCHS`` epochs and
    ``BIG_EXAMPLES`` stored predictions each, written straight into the api's database."""
    from core.exports import metrics as metrics_export
    from core.report.similarity import encode_predictions

    spec = tiny_spec("dl-big", seeds=BIG_SEEDS, epochs=1)  # the epochs are written below
    spec["training"]["metrics"] = ["accuracy", "sparse_top_k_categorical_accuracy"]
    with api.client("a") as a:
        resp = a.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = str(resp.json()["id"])
    rng = np.random.default_rng(0)
    with psycopg.connect(api.env["ARCHBENCH_DATABASE_URL"]) as conn:
        trial_ids = [
            r[0] for r in conn.execute("SELECT id FROM trials WHERE comparison_id = %s", (cid,))
        ]
        # More than one short read of every kind (see core.exports.metrics).
        assert len(trial_ids) > metrics_export.CHUNK_TRIALS
        assert len(trial_ids) * BIG_EPOCHS > 2 * metrics_export.CHUNK_ROWS
        conn.execute(
            "UPDATE trials SET status = 'succeeded', epochs_planned = %s, epochs_done = %s"
            " WHERE comparison_id = %s",
            (BIG_EPOCHS, BIG_EPOCHS, cid),
        )
        conn.execute(
            """INSERT INTO epoch_metrics (trial_id, epoch, "values", seconds, recorded_at)
            SELECT t.id, e, json_build_object(
                'loss', random(), 'accuracy', random(),
                'sparse_top_k_categorical_accuracy', random(), 'val_loss', random(),
                'val_accuracy', random(), 'val_sparse_top_k_categorical_accuracy', random()),
              random(), now()
            FROM trials t, generate_series(1, %s) e WHERE t.comparison_id = %s""",
            (BIG_EPOCHS, cid),
        )
        for trial_id in trial_ids:
            probs = rng.dirichlet(np.ones(10), size=BIG_EXAMPLES)
            p = encode_predictions(
                trial_id,
                rng.permutation(5000)[:BIG_EXAMPLES],
                rng.integers(0, 10, BIG_EXAMPLES),
                probs,
            )
            conn.execute(
                "INSERT INTO trial_predictions (trial_id, n, num_classes, examples, labels,"
                " predicted, probs, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now())",
                (trial_id, p.n, p.num_classes, p.examples, p.labels, p.predicted, p.probs),
            )
    return cid


def _rows_in(body: bytes, fmt: str) -> int:
    if fmt == "json":
        return len(json.loads(body)["items"])
    if fmt == "csv":
        return body.count(b"\n") - 1  # no value here holds a line break
    return int(pq.read_table(io.BytesIO(body)).num_rows)


@pytest.mark.parametrize(
    ("table", "fmt"),
    [
        ("metrics", "json"),
        ("metrics", "csv"),
        ("metrics", "parquet"),
        # One reader for every format (prediction_rows); its Parquet is too small here.
        ("predictions", "json"),
        ("predictions", "csv"),
    ],
)
def test_a_paused_download_holds_no_pooled_connection(
    api: SecuredApi, big_comparison: str, table: str, fmt: str
) -> None:
    """A slow client: the download's first chunk is read, then the client pauses while the api
    waits to write the rest. The one pooled connection is free meanwhile (the table is read in
    short sessions, one batch each), so another request that reads the database gets it
    (else it would wait ARCHBENCH_DB_POOL_TIMEOUT and be a 503); then the download resumes and
    ends complete."""
    url = f"/v1/comparisons/{big_comparison}/{table}"
    with api.client("a") as a, a.stream("GET", url, params={"format": fmt}) as resp:
        assert resp.status_code == 200
        chunks = resp.iter_raw()
        body = [next(chunks)]
        time.sleep(1.0)  # the api fills the sockets' buffers, then waits to write
        with api.client("a") as b:
            status = b.get(f"/v1/comparisons/{big_comparison}")
        assert status.status_code == 200, status.text
        body += list(chunks)
    content = b"".join(body)
    assert len(content) > 2 * SOCKET_BYTES, len(content)  # else the api was never waiting
    expected = len(BIG_SEEDS) * 2 * (BIG_EPOCHS if table == "metrics" else BIG_EXAMPLES)
    assert _rows_in(content, fmt) == expected
