"""Which accelerator a worker process trains on.

``visible_gpu_count`` and ``pin_env`` never import TensorFlow (the CLI and the Celery
parent call them); ``configure_devices`` does, and is meant for the worker child process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading

__all__ = ["configure_devices", "pin_env", "visible_gpu_count"]

_lock = threading.Lock()
_configured: str | None = None


def configure_devices() -> str:
    """Turn on GPU memory growth once and describe the device training will use."""
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            # RuntimeError: already initialised by someone else; the setting is fixed now.
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
        if not gpus:
            _configured = "CPU"
        else:
            details = tf.config.experimental.get_device_details(gpus[0])
            label = str(details.get("device_name", "")).strip() or "unknown GPU"
            _configured = f"GPU:0 ({label})"
            if len(gpus) > 1:
                _configured += f" (+{len(gpus) - 1} more visible, unused)"
        return _configured


def visible_gpu_count() -> int:
    """Count the GPUs this process could use, via ``nvidia-smi -L``, without TensorFlow."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    count = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return count
    listed = 0
    for entry in visible.split(","):
        entry = entry.strip()
        # CUDA stops enumerating at the first invalid entry ("", "-1", ...).
        if not entry or entry.startswith("-"):
            break
        listed += 1
    return min(listed, count)


def pin_env(gpu_index: int | None) -> dict[str, str]:
    """Environment variables that pin a worker process to one GPU, or to the CPU (None)."""
    if gpu_index is None:
        return {"CUDA_VISIBLE_DEVICES": ""}
    if gpu_index < 0:
        raise ValueError(f"gpu_index must be >= 0, got {gpu_index}")
    return {"CUDA_VISIBLE_DEVICES": str(gpu_index), "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
