"""The embedded default through `archbench up` as a subprocess: SQLite, SQL broker, one worker."""

from __future__ import annotations

import csv
import enum
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.exports.bundle import folder_name
from tests.support.helpers import assert_trained, small_mlp, tiny_spec, wait_done
from tests.support.services import ROOT, Service, base_env, free_port, start, stop, wait_http

pytestmark = [pytest.mark.worker]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = base_env(data_dir)
    svc = Service(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir)
    svc.logs = {"up": data_dir / "up.log"}
    cmd = [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--data-dir", str(data_dir)]
    svc.procs["up"] = start(cmd, env, svc.logs["up"])
    try:
        wait_http(svc.url, svc.procs["up"], svc.logs["up"], timeout=90)
        yield svc
    finally:
        stop(svc.procs["up"], sig=signal.SIGINT)


def test_embedded_end_to_end(embedded: Service) -> None:
    assert (embedded.data_dir / "archbench.db").exists()
    spec = tiny_spec("embedded")
    with embedded.client() as client:
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        done = wait_done(client, cid)
        assert done["status"] == "succeeded", embedded.log("up")[-4000:]
        trials = assert_trained(client, cid, spec)
        assert len(trials) == 4
        ready = client.get("/readyz").json()
        assert ready["checks"] == {"database": "ok", "broker": "ok"}
    assert "authentication is OFF" in embedded.log("up")


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def test_openapi_examples_are_the_articles_and_valid(embedded: Service, tmp_path: Path) -> None:
    """/openapi.json carries the article's examples, and each one is accepted as it stands."""
    from core.config import Settings
    from core.spec import ComparisonSpec
    from core.trials.validation import validate_comparison

    article = json.loads((ROOT / "examples" / "article.json").read_text())
    with embedded.client() as client:
        doc = client.get("/openapi.json").json()
        submit = doc["paths"]["/v1/comparisons"]["post"]
        examples = submit["requestBody"]["content"]["application/json"]["examples"]
        assert examples["article"]["value"] == _without_nulls(article)  # OpenAPI drops nulls
        location = submit["responses"]["202"]["headers"]["Location"]
        assert location["schema"]["type"] == "string"

        analyze = doc["paths"]["/v1/architectures/analyze"]["post"]
        variants = analyze["requestBody"]["content"]["application/json"]["examples"]
        assert set(variants) == {v["name"] for v in article["variants"]}
        params = {}
        for name, example in variants.items():
            assert example["value"]["dataset"] == {"name": "mnist_5k"}
            resp = client.post("/v1/architectures/analyze", json=example["value"])
            assert resp.status_code == 200, resp.text
            params[name] = resp.json()["params"]
    # Conv2D(128, 3x3) on 28x28x1: 1,280; Dense(10) on 26*26*128: 865,290.
    assert params["conv128"] == 866_570
    # 640 + 36,928 (+ 36,928) for the convolutions; Dense(10) on 12*12*64 (11*11*64).
    assert params["conv64x2"] == 640 + 36_928 + 92_170
    assert params["conv64x3"] == 640 + 2 * 36_928 + 77_450
    # The submit example validates as a whole (posting it would train nine trials).
    validated = validate_comparison(
        ComparisonSpec.model_validate(examples["article"]["value"]), Settings(data_dir=tmp_path)
    )
    assert len(validated.spec.variants) * len(validated.spec.initial_seeds) == 9


def _readme_tour(section: str = "tour") -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {section}:start -->(.*?)<!-- {section}:end -->", text, re.S)
    assert match, f"README.md has no {section} section"
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", match.group(1), re.S)
    assert blocks, f"the README {section} section has no shell blocks"
    return "\n".join(blocks)


def test_readme_tour_runs(embedded: Service, tmp_path: Path) -> None:
    """The README's curl tour, run as written (on the quick example, to keep the suite fast)."""
    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.fail("the README tour needs curl and jq; .ci/run installs them")
    script = _readme_tour().replace("examples/article.json", str(ROOT / "examples/quick.json"))
    env = {**os.environ, "ARCHBENCH_URL": embedded.url}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("trial_id,variant,seed,stage,replicate,epoch,loss,accuracy")
    assert len(metrics) == 1 + 6 * 2  # 2 variants x 3 seeds x 2 epochs

    # The README sends files with --data-binary: --data strips the newlines, and the located
    # error of a malformed file always said line 1.
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"curl [^\n]*(?:\n  [^\n]*)*?(-d|--data)[ =][@']", readme) == []
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "name": "x",\n  "seeds": [0, 1,]\n}\n')  # a trailing comma, line 3
    for flag, line in (("--data-binary", 3), ("--data", 1)):
        answer = subprocess.run(
            [
                "curl",
                "-s",
                "-X",
                "POST",
                f"{embedded.url}/v1/comparisons",
                "-H",
                "Content-Type: application/json",
                flag,
                f"@{broken}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        [error] = json.loads(answer.stdout)["errors"]
        assert error["msg"].startswith(f"invalid JSON at line {line},"), (flag, error)


def test_up_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path)
    log = tmp_path / "up.log"
    proc = start(
        [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--data-dir", str(tmp_path)],
        env,
        log,
    )
    try:
        # "archbench is up at ..." is printed only once the api answers: when the line shows,
        # /healthz already answers (the api was polled before printing it).
        deadline = time.monotonic() + 90
        while "archbench is up at" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        wait_http(f"http://127.0.0.1:{port}", proc, log, timeout=90)
        children = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(children) == 2  # the api and one worker
    finally:
        proc.send_signal(signal.SIGINT)  # the parent alone, as a terminal's Ctrl-C would reach it
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_readme_cli_lines_run(embedded: Service, tmp_path: Path) -> None:
    """The README's command-line lines, as typed in a fresh shell: the first puts `archbench`
    on PATH from `.venv` (where `make up` installs it), and each line after it must work.

    The shell's PATH is stripped of this virtualenv, so without the activation line
    `archbench` is not found. The venv is the one running the tests (`.venv` of a clean
    clone under `make test`); PYTHONPATH makes its `archbench` run this checkout's code.
    """
    script = _readme_tour("cli")
    first = script.splitlines()[0]
    assert first.split("#")[0].strip() == ". .venv/bin/activate", first
    venv = Path(sys.prefix)
    assert (venv / "bin" / "archbench").exists(), "the archbench command is not in the venv"
    script = script.replace(". .venv/bin/activate", f". {venv}/bin/activate", 1)
    script = script.replace("examples/quick.json", str(ROOT / "examples/quick.json"))
    bins = {str(venv / "bin"), str(venv.resolve() / "bin")}
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p not in bins)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")},
        "PATH": path,
        "ARCHBENCH_URL": embedded.url,
        "PYTHONPATH": str(ROOT),
    }
    assert shutil.which("archbench", path=path) is None  # a fresh shell has no archbench

    def bash(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", text],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )

    proc = bash(script)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    ended = re.search(r"^comparison (\S+) succeeded$", out, re.M)  # wait's last line
    assert ended, out[-3000:]
    cid = ended.group(1)
    assert "status   succeeded" in out  # status
    assert "wrote trials.csv, metrics.csv, report.json, report.md, report.png" in out
    assert {p.name for p in (tmp_path / "results").iterdir()} >= {"trials.csv", "report.png"}
    with (tmp_path / "results" / "trials.csv").open() as fh:
        timed = [row["inference_ms_per_sample"] for row in csv.DictReader(fh)]
    quick = json.loads((ROOT / "examples" / "quick.json").read_text())
    n = len(quick["variants"]) * len(quick["seeds"])
    assert len(timed) == n
    assert all(float(x) > 0 for x in timed), timed  # every seed, not one per variant
    assert f"logged {n} new run(s)" in out
    assert f"wrote {n} new TensorBoard run(s)" in out
    # One folder for the comparison (its name and id), a run per trial and its report run.
    folder = tmp_path / "runs" / folder_name({"name": quick["name"], "id": cid})
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [folder.name]
    runs = sorted(p.parent.relative_to(folder) for p in folder.glob("*/*/events.out.tfevents.*"))
    assert [str(r) for r in runs] == sorted(
        f"{v['name']}/seed{seed}" for v in quick["variants"] for seed in quick["seeds"]
    )
    assert list((folder / "report").glob("events.out.tfevents.*"))

    # Exporting again: nothing is written twice, and the command says what was there.
    # TensorBoard's own reader finds each trial's curve, step = epoch, as the api has it.
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    with embedded.client() as client:
        trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
        metrics = client.get(f"/v1/comparisons/{cid}/metrics").json()["items"]
    for t in trials:
        acc = event_accumulator.EventAccumulator(
            str(folder / t["variant"] / f"seed{t['seed']}"),
            size_guidance={event_accumulator.TENSORS: 0},
        ).Reload()
        read = {
            e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors("loss")
        }
        want = {m["epoch"]: m["loss"] for m in metrics if m["trial_id"] == t["id"]}
        assert read.keys() == want.keys() == set(range(1, quick["training"]["epochs"] + 1))
        for epoch, loss in want.items():
            assert read[epoch] == pytest.approx(loss, rel=1e-6)  # stored as float32

    # The same comparison in a notebook: the client's objects render as HTML.
    from archbench.client import Client

    with Client(embedded.url) as ab:
        shown = ab.get(cid)._repr_html_()
        report = ab.report(cid)
    assert "succeeded" in shown
    epochs = n * quick["training"]["epochs"]
    assert f"epochs {epochs}/{epochs} (100%)" in shown
    assert html.escape(str(report["verdict"]).split(":")[0]) in report._repr_html_()

    exports = [line for line in script.splitlines() if line.startswith("archbench export")]
    again = bash("\n".join([script.splitlines()[0], f"ID={cid}", *exports[1:]]))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "logged 0 new run(s)" in again.stdout
    assert f"{n} already there from an earlier export" in again.stdout
    assert "wrote 0 new TensorBoard run(s)" in again.stdout
    assert f"{n} already there" in again.stdout


def test_a_generated_client_submits_polls_and_reads_the_report(
    embedded: Service, tmp_path: Path
) -> None:
    """Other tools script against /openapi.json: a client generated from it with
    openapi-python-client (not archbench's own) submits a comparison, polls it to its end and
    reads the report through its typed models."""
    import importlib
    import time as clock

    generator = Path(sys.prefix) / "bin" / "openapi-python-client"
    if not generator.exists():
        pytest.fail("openapi-python-client is not installed (the dev extra has it)")
    with embedded.client() as client:
        (tmp_path / "openapi.json").write_text(client.get("/openapi.json").text)
    env = {**os.environ, "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    gen = subprocess.run(
        [str(generator), "generate", "--path", "openapi.json", "--output-path", "generated"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = gen.stdout + gen.stderr
    assert gen.returncode == 0, out[-3000:]
    assert "Client was generated" in out or "Generating client" in out, out[-3000:]
    (package,) = [p.name for p in (tmp_path / "generated").iterdir() if (p / "api").is_dir()]
    sys.path.insert(0, str(tmp_path / "generated"))
    try:
        gen_client = importlib.import_module(f"{package}.client")
        comparisons = importlib.import_module(f"{package}.api.comparisons")
        reports = importlib.import_module(f"{package}.api.reports")
        models = importlib.import_module(f"{package}.models")
        submit = importlib.import_module(f"{comparisons.__name__}.submit_v1_comparisons_post")
        get = importlib.import_module(
            f"{comparisons.__name__}.get_comparison_v1_comparisons_comparison_id_get"
        )
        report_op = importlib.import_module(
            f"{reports.__name__}.report_v1_comparisons_comparison_id_report_get"
        )
        spec = tiny_spec("generated-client", seeds=[0, 1, 2], epochs=1, samples=200)
        spec["reuse"] = True  # trained once per test session at most
        api = gen_client.AuthenticatedClient(base_url=embedded.url, token="unused", timeout=60)
        with api:
            # A bad body: a typed problem with every located error, not an untyped blob.
            bad = {**spec, "seeds": [], "variants": [small_mlp("a"), small_mlp("a")]}
            refused = submit.sync_detailed(client=api, body=models.ComparisonSpec.from_dict(bad))
            assert refused.status_code == 422
            assert isinstance(refused.parsed, models.Problem), refused.parsed
            assert {tuple(e.loc) for e in refused.parsed.errors} >= {
                ("body", "seeds"),
                ("body", "variants", 1, "name"),
            }
            created = submit.sync(client=api, body=models.ComparisonSpec.from_dict(spec))
            assert isinstance(created, models.SubmittedOut), created  # ComparisonOut + warnings
            assert created.warnings == []
            assert created.progress.trials_total == 6
            deadline = clock.monotonic() + 300
            # The documented statuses are an enum in the generated client.
            assert isinstance(created.status, enum.Enum), type(created.status)
            assert {s.value for s in type(created.status)} == {
                "queued",
                "running",
                "succeeded",
                "failed",
                "cancelled",
            }
            status = str(getattr(created.status, "value", created.status))
            while status not in {"succeeded", "failed", "cancelled"}:
                assert clock.monotonic() < deadline, status
                clock.sleep(0.5)
                polled = get.sync(created.id, client=api)
                assert isinstance(polled, models.ComparisonOut), polled
                status = str(getattr(polled.status, "value", polled.status))
            assert status == "succeeded", embedded.log("up")[-3000:]
            report = report_op.sync(created.id, client=api)
            assert isinstance(report, models.Report), report
    finally:
        sys.path.remove(str(tmp_path / "generated"))
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]
    # Typed fields, checked against the same report read as plain JSON.
    with embedded.client() as client:
        raw = client.get(f"/v1/comparisons/{created.id}/report").json()
    assert report.final is True
    assert report.verdict == raw["verdict"]
    assert report.primary_metric == "test_accuracy"
    assert [v.name for v in report.variants] == ["cnn", "mlp"]
    for typed, plain in zip(report.variants, raw["variants"], strict=True):
        assert isinstance(typed.n, int)
        assert typed.n == plain["n"] == 3
        assert isinstance(typed.mean, float)
        assert typed.mean == plain["mean"]
        assert list(typed.ci95) == plain["ci95"]
    (pair,) = report.pairwise
    assert (pair.a, pair.b) == (raw["pairwise"][0]["a"], raw["pairwise"][0]["b"])
    assert (
        str(getattr(pair.conclusion, "value", pair.conclusion)) == raw["pairwise"][0]["conclusion"]
    )
    assert report.ranking == raw["ranking"]
