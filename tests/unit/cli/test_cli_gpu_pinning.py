"""``archbench worker --gpus`` and ``archbench up``: which GPU each child process is pinned to.

The GPU count comes from a fake ``nvidia-smi`` on PATH (as ``worker.devices`` counts them);
the functions under test build each child's argv and environment, nothing is spawned.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cli import main as cli


def fake_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, n: int, visible: str | None) -> None:
    smi = tmp_path / "nvidia-smi"
    lines = "".join(f"echo 'GPU {i}: NVIDIA H100 (UUID: GPU-{i})'\n" for i in range(n))
    smi.write_text("#!/bin/sh\n" + lines)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)


def pinned(children: list[cli.Child]) -> list[str | None]:
    return [env.get("CUDA_VISIBLE_DEVICES") for _, env in children]


@pytest.mark.parametrize(
    ("visible", "spec", "expected"),
    [
        (None, "all", ["0", "1", "2", "3"]),
        ("2", "all", ["2"]),  # the audit's case: must not become physical GPU 0
        ("3,1", "all", ["3", "1"]),
        ("3,1", "1", ["1"]),
        ("2,3", "1,0", ["3", "2"]),
        ("GPU-2,GPU-0", "all", ["GPU-2", "GPU-0"]),
        ("1,7,2", "all", ["1"]),  # CUDA stops at the first id that does not exist
    ],
)
def test_worker_gpus_maps_through_the_parents_visible_devices(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    visible: str | None,
    spec: str,
    expected: list[str],
) -> None:
    fake_gpus(monkeypatch, tmp_path, 4, visible)
    devices = cli._select_gpus(spec)
    assert devices is not None
    children = cli.gpu_worker_children(devices, 2, {"KEEP": "me", **os.environ})
    assert pinned(children) == expected  # one child per selected GPU
    for argv, env in children:
        assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        assert env["KEEP"] == "me"
        assert argv[argv.index("--concurrency") + 1] == "2"
        assert "--gpus" not in argv  # the child is a plain worker on its one GPU
    names = [argv[argv.index("--name") + 1] for argv, _ in children]
    assert len(set(names)) == len(names)


def test_gpus_out_of_range_and_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_gpus(monkeypatch, tmp_path, 4, "2,3")
    with pytest.raises(SystemExit, match=r"GPUs 0\.\.1"):
        cli._select_gpus("2")
    fake_gpus(monkeypatch, tmp_path, 4, "")
    with pytest.raises(SystemExit, match="no GPU is visible"):
        cli._select_gpus("all")


@pytest.mark.parametrize(
    ("visible", "expected"),
    [(None, ["0", "1", "0"]), ("2,3", ["2", "3", "2"]), ("3", ["3", "3", "3"])],
)
def test_up_spreads_workers_over_the_visible_gpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, visible: str | None, expected: list[str]
) -> None:
    fake_gpus(monkeypatch, tmp_path, 2 if visible is None else 4, visible)
    children = cli.up_worker_children(3, cpu=False, env=dict(os.environ))
    assert pinned(children) == expected
    assert all(env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for _, env in children)
    assert len({argv[argv.index("--name") + 1] for argv, _ in children}) == 3


def test_up_without_gpus_or_with_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_gpus(monkeypatch, tmp_path, 2, None)
    assert pinned(cli.up_worker_children(2, cpu=True, env=dict(os.environ))) == ["", ""]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi at all
    children = cli.up_worker_children(2, cpu=False, env={"PATH": "x"})
    assert [env for _, env in children] == [{"PATH": "x"}, {"PATH": "x"}]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpus", "all", "--concurrency", "2"], "with --gpus use --trials-per-gpu"),
        (["--gpus", "all", "--concurrency", "1"], "with --gpus use --trials-per-gpu"),
        (["--trials-per-gpu", "2"], "--trials-per-gpu needs --gpus"),
        (["--concurrency", "0"], "at least 1"),
    ],
)
def test_worker_rejects_options_it_would_ignore(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["worker", *argv])
    assert message in str(exc.value.code)
