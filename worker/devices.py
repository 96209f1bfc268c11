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

__all__ = ["configure_devices", "pin_env", "visible_gpu_count", "visible_gpu_ids"]

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


def _nvidia_smi_count() -> int:
    """How many GPUs ``nvidia-smi -L`` lists (it ignores ``CUDA_VISIBLE_DEVICES``)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def visible_gpu_ids() -> list[str]:
    """The device id of each GPU this process could use, in CUDA's order, without TensorFlow.

    Entry ``i`` is what a child's ``CUDA_VISIBLE_DEVICES`` must say to see this process's GPU
    ``i``: under ``CUDA_VISIBLE_DEVICES=2,3`` GPU 0 is physical GPU ``"2"`` (an entry may also
    be a ``GPU-``/``MIG-`` UUID, passed on as written).
    """
    count = _nvidia_smi_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(i) for i in range(count)]
    ids: list[str] = []
    for entry in visible.split(","):
        entry = entry.strip()
        # CUDA stops enumerating at the first invalid entry ("", "-1", an index too big, ...).
        if not entry or entry.startswith("-") or (entry.isdigit() and int(entry) >= count):
            break
        ids.append(entry)
    return ids[:count]


def visible_gpu_count() -> int:
    """Count the GPUs this process could use, via ``nvidia-smi -L``, without TensorFlow."""
    return len(visible_gpu_ids())


def pin_env(gpu: int | str | None) -> dict[str, str]:
    """Environment variables that pin a worker process to one GPU, or to the CPU (None).

    ``gpu`` is a device id as ``CUDA_VISIBLE_DEVICES`` takes it (an index or a UUID): map a
    logical index through :func:`visible_gpu_ids` first, or a parent started under
    ``CUDA_VISIBLE_DEVICES=2`` would pin its child to physical GPU 0.
    """
    if gpu is None:
        return {"CUDA_VISIBLE_DEVICES": ""}
    if isinstance(gpu, int) and gpu < 0:
        raise ValueError(f"gpu_index must be >= 0, got {gpu}")
    if isinstance(gpu, str) and (not gpu.strip() or gpu.strip().startswith("-") or "," in gpu):
        raise ValueError(f"one GPU id expected, got {gpu!r}")
    return {"CUDA_VISIBLE_DEVICES": str(gpu).strip(), "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
