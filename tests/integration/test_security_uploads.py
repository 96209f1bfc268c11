"""Dataset uploads: checked without executing anything, private to a tenant, trainable."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.helpers import assert_problem, small_mlp, tiny_spec, wait_done
from tests.support.secured import SecuredApi, secured_api
from tests.support.services import Service

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    with secured_api(
        tmp_path_factory.mktemp("uploads"),
        ("a", "b"),
        ARCHBENCH_MAX_UPLOAD_BYTES="400000",
        ARCHBENCH_MAX_DATASET_BYTES="1000000",
    ) as svc:
        yield svc


def npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def lying_header(shape: tuple[int, ...]) -> bytes:
    """An .npz whose x_train header declares ``shape`` (float64) over 128 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x_train.npy", header.getvalue() + bytes(128))
        zf.writestr("y_train.npy", npy(np.arange(16) % 2))
    return buf.getvalue()


def polyglot() -> bytes:
    """An .npy file with a valid .npz appended: np.load reads it as one array."""
    return npy(np.zeros(4)) + npz(x_train=np.zeros((16, 4)), y_train=np.arange(16) % 2)


def good(n: int = 120, classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.random((n, 8, 8)).astype(np.float32) + y[:, None, None]
    return {"x_train": x, "y_train": y}


class Canary:
    """Unpickling this would create a file: the proof that a payload ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_upload_is_private_to_its_tenant(api: SecuredApi) -> None:
    with api.client("a") as a, api.client("b") as b:
        resp = a.post(
            "/v1/datasets", files={"file": ("d.npz", npz(**good()))}, data={"name": "mine"}
        )
        assert resp.status_code == 201, resp.text
        ds = resp.json()
        assert ds["name"].startswith("upload:")
        assert (ds["input_shape"], ds["num_classes"], ds["samples"]) == ([8, 8, 1], 3, 120)
        stored = api.env["ARCHBENCH_DATA_DIR"] + f"/uploads/{ds['content_hash']}.npz"
        assert Path(stored).is_file()
        assert ds["name"] in a.get("/v1/datasets").text
        assert ds["name"] not in b.get("/v1/datasets").text
        spec = tiny_spec("on upload", variants=[small_mlp()], seeds=[0], epochs=1)
        spec["dataset"] = {"name": ds["name"]}
        spec["variants"][0]["layers"][-1]["units"] = 3
        assert a.post("/v1/comparisons", json=spec).status_code == 202
        theirs = assert_problem(b.post("/v1/comparisons", json=spec), 422)
        spec["dataset"] = {"name": "upload:00000000-0000-0000-0000-000000000000"}
        missing = assert_problem(b.post("/v1/comparisons", json=spec), 422)
        assert (
            theirs["errors"][0]["loc"]
            == missing["errors"][0]["loc"]
            == [
                "body",
                "dataset",
                "name",
            ]
        )
        assert "unknown dataset" in theirs["errors"][0]["msg"]
        analyze = {"variant": spec["variants"][0], "dataset": {"name": ds["name"]}}
        assert b.post("/v1/architectures/analyze", json=analyze).status_code == 422
        assert a.post("/v1/architectures/analyze", json=analyze).status_code == 200


def test_an_upload_is_named_in_a_spec_by_its_name(api: SecuredApi) -> None:
    """The Python client uploads NumPy arrays under a name; a spec gives that name, the stored
    spec records upload:<id>; the name is this tenant's only, and unique among its uploads."""
    from archbench import Client, InvalidInput

    x, y = good()["x_train"], good()["y_train"]
    spec = tiny_spec("by name", variants=[small_mlp()], seeds=[0], epochs=1)
    spec["variants"][0]["layers"][-1]["units"] = 3
    spec["dataset"] = {"name": "tiny-grid.v1"}
    with Client(api.url, api_key=api.keys["a"]) as a, Client(api.url, api_key=api.keys["b"]) as b:
        with pytest.raises(InvalidInput) as unknown:
            a.submit(spec)
        assert [e["loc"] for e in unknown.value.errors] == [["body", "dataset", "name"]]
        assert "unknown dataset 'tiny-grid.v1'" in unknown.value.errors[0]["msg"]
        made = a.upload_dataset(
            x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:], name="tiny-grid.v1"
        )
        assert made["label"] == "tiny-grid.v1"
        assert (made["samples"], made["input_shape"], made["num_classes"]) == (120, [8, 8, 1], 3)
        created = a.submit(spec)
        assert created["spec"]["dataset"]["name"] == made["name"]
        assert a.analyze(spec["variants"][0], dataset="tiny-grid.v1")["params"] > 0
        with pytest.raises(InvalidInput) as theirs:
            b.submit(spec)
        assert theirs.value.errors[0]["loc"] == ["body", "dataset", "name"]
        with pytest.raises(InvalidInput) as twice:
            a.upload_dataset(x_train=x, y_train=y, name="tiny-grid.v1")
        assert twice.value.errors == [
            {
                "loc": ["body", "name"],
                "msg": f"you already have an upload named 'tiny-grid.v1' ({made['name']}); "
                "names are unique",
            }
        ]
        assert b.upload_dataset(x_train=x, y_train=y, name="tiny-grid.v1")["label"]
        for bad in ("my grid", "mnist_5k"):
            with pytest.raises(InvalidInput) as refused:
                a.upload_dataset(x_train=x, y_train=y, name=bad)
            assert refused.value.errors[0]["loc"] == ["body", "name"]
        mine = [d for d in a.datasets() if not d.get("builtin")]
        assert [d["label"] for d in mine if d.get("label") == "tiny-grid.v1"] == ["tiny-grid.v1"]


def test_pickled_payloads_never_run(api: SecuredApi, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    objects = np.array([Canary(canary), Canary(canary)], dtype=object)
    whole = pickle.dumps({"x_train": Canary(canary), "y_train": [0, 1]})
    with api.client("a") as a:
        body = assert_problem(
            a.post(
                "/v1/datasets",
                files={"file": ("p.npz", npz(x_train=objects, y_train=np.array([0, 1])))},
            ),
            422,
        )
        assert body["errors"][0]["loc"] == ["body", "file", "x_train"]
        assert "pickle" in body["errors"][0]["msg"]
        body = assert_problem(a.post("/v1/datasets", files={"file": ("p.npz", whole)}), 422)
        assert body["errors"][0]["loc"] == ["body", "file"]
    assert not canary.exists()
    # The payload is real: unpickling it does create the canary.
    pickle.loads(whole)
    assert canary.exists()


def _bad_cases() -> list[tuple[str, bytes, list[str], str]]:
    g = good()
    rng = np.random.default_rng(1)
    nan = g["x_train"].copy()
    nan[3, 2, 2] = np.nan
    return [
        ("garbage", b"not a zip at all", [], "not an .npz"),
        ("npy polyglot", polyglot(), [], "not an .npz"),
        # numpy would allocate 6.4 TB (MemoryError) before reading the 128 bytes there are.
        ("huge header", lying_header((10**11, 8)), ["x_train"], "1,000,000 (ARCHBENCH_MAX"),
        ("lying header", lying_header((1000, 8)), ["x_train"], "holds only 128 bytes"),
        ("no labels", npz(x_train=g["x_train"]), ["y_train"], "missing"),
        ("lengths", npz(x_train=g["x_train"], y_train=g["y_train"][:-5]), ["y_train"], "115"),
        (
            "strings",
            npz(x_train=np.array([["a"]] * 10), y_train=np.arange(10) % 2),
            ["x_train"],
            "numeric",
        ),
        (
            "rank",
            npz(x_train=rng.random((10, 2, 2, 2, 2)), y_train=np.arange(10) % 2),
            ["x_train"],
            "shape",
        ),
        ("nan", npz(x_train=nan, y_train=g["y_train"]), ["x_train"], "NaN"),
        ("negative", npz(x_train=g["x_train"], y_train=g["y_train"] - 1), ["y_train"], "0.."),
        ("fractional", npz(x_train=g["x_train"], y_train=g["y_train"] + 0.5), ["y_train"], "whole"),
        ("one class", npz(x_train=g["x_train"], y_train=np.zeros(120, int)), ["y_train"], "2"),
        (
            "test shape",
            npz(**g, x_test=rng.random((10, 4, 4)), y_test=np.arange(10) % 3),
            ["x_test"],
            "differ",
        ),
        ("test alone", npz(**g, x_test=g["x_train"]), ["y_test"], "together"),
        ("test label", npz(**g, x_test=g["x_train"][:10], y_test=np.full(10, 7)), ["y_test"], "7"),
    ]


@pytest.mark.parametrize(
    ("case", "content", "loc", "needle"), _bad_cases(), ids=[c[0] for c in _bad_cases()]
)
def test_malformed_uploads_are_located_422(
    api: SecuredApi, case: str, content: bytes, loc: list[str], needle: str
) -> None:
    with api.client("a") as a:
        body = assert_problem(a.post("/v1/datasets", files={"file": ("d.npz", content)}), 422)
        assert any(
            e["loc"] == ["body", "file", *loc] and needle in e["msg"] for e in body["errors"]
        ), body


def test_upload_size_limits(api: SecuredApi) -> None:
    big = npz(x_train=np.zeros((1000, 60), np.float64), y_train=np.arange(1000) % 2)
    assert len(big) > 400_000
    with api.client("a") as a:
        resp = a.post("/v1/datasets", files={"file": ("big.npz", big)})
        body = assert_problem(resp, 413)
        sent = int(resp.request.headers["content-length"])
        assert "400,000" in body["detail"]
        assert f"{sent:,}" in body["detail"], body  # the size seen, not only the limit
        assert_problem(a.post("/v1/datasets", data={"name": "no file"}), 422)


def test_chunked_upload_over_the_limit_is_413(api: SecuredApi) -> None:
    big = npz(x_train=np.random.default_rng(0).random((1000, 60)), y_train=np.arange(1000) % 2)
    boundary = "archbench-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.npz"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 16384):
            yield body[i : i + 16384]

    with api.client("a") as a:
        before = a.get("/v1/datasets").json()["items"]
        resp = a.post(
            "/v1/datasets",
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert "content-length" not in {k.lower() for k in resp.request.headers}
        problem = assert_problem(resp, 413)
        assert "400,000" in problem["detail"]
        seen = int(problem["detail"].split(": ")[-1].split(" bytes")[0].replace(",", ""))
        assert 400_000 < seen <= len(body), problem["detail"]
        assert a.get("/v1/datasets").json()["items"] == before
        assert a.get("/healthz").status_code == 200


def test_dataset_size_limit_names_figure_and_limit(api: SecuredApi) -> None:
    # 1,600,000 bytes of float64 zeros compress to a few kilobytes: under the 400,000-byte
    # upload limit, over the 1,000,000-byte limit on the arrays' uncompressed size.
    buf = io.BytesIO()
    np.savez_compressed(buf, x_train=np.zeros((1000, 200)), y_train=np.arange(1000) % 2)
    assert len(buf.getvalue()) < 400_000
    with zipfile.ZipFile(buf) as zf:
        uncompressed = sum(i.file_size for i in zf.infolist())
    with api.client("a") as a:
        body = assert_problem(
            a.post("/v1/datasets", files={"file": ("zeros.npz", buf.getvalue())}), 422
        )
    (error,) = body["errors"]
    assert error["loc"] == ["body", "file"]
    assert f"{uncompressed:,}" in error["msg"], error
    assert "1,000,000" in error["msg"], error
    assert "ARCHBENCH_MAX_DATASET_BYTES" in error["msg"]


@pytest.mark.worker
def test_training_on_an_upload_end_to_end(distributed: Service) -> None:
    data = good(200, 3, seed=2)
    with distributed.client() as c:
        resp = c.post("/v1/datasets", files={"file": ("t.npz", npz(**data))})
        assert resp.status_code == 201, resp.text
        spec = tiny_spec("upload e2e", variants=[small_mlp()], seeds=[0], epochs=3)
        spec["training"]["learning_rate"] = 0.01
        spec["dataset"] = {"name": resp.json()["name"]}
        spec["variants"][0]["layers"][-1]["units"] = 3
        submitted = c.post("/v1/comparisons", json=spec)
        assert submitted.status_code == 202, submitted.text
        done = wait_done(c, submitted.json()["id"], timeout=300)
        assert done["status"] == "succeeded", done
        trials = c.get(f"/v1/comparisons/{done['id']}/trials").json()["items"]
        metrics = c.get(f"/v1/comparisons/{done['id']}/metrics").json()["items"]
        assert [m["epoch"] for m in metrics] == [1, 2, 3]
        assert trials[0]["test_accuracy"] is not None
