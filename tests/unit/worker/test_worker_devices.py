"""worker.devices: pinning environments and GPU counting without TensorFlow."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from worker import devices


def test_pin_env() -> None:
    assert devices.pin_env(None) == {"CUDA_VISIBLE_DEVICES": ""}
    assert devices.pin_env(1) == {"CUDA_VISIBLE_DEVICES": "1", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    assert devices.pin_env("GPU-1a2b")["CUDA_VISIBLE_DEVICES"] == "GPU-1a2b"
    with pytest.raises(ValueError, match=">= 0"):
        devices.pin_env(-1)
    for bad in ("", "-1", "0,1"):
        with pytest.raises(ValueError, match="one GPU id"):
            devices.pin_env(bad)


def test_no_nvidia_smi_means_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert devices.visible_gpu_count() == 0


@pytest.mark.parametrize(
    ("visible", "expected"), [(None, 2), ("1", 1), ("", 0), ("0,-1,1", 1), ("1,5,0", 1)]
)
def test_counts_nvidia_smi_and_honours_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, visible: str | None, expected: int
) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\n"
        "echo 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert devices.visible_gpu_count() == expected


def test_configure_devices_on_this_machine() -> None:
    import tensorflow as tf

    desc = devices.configure_devices()
    if tf.config.list_physical_devices("GPU"):
        assert desc.startswith("GPU:0 (")
    else:
        assert desc == "CPU"
    assert devices.configure_devices() is desc
