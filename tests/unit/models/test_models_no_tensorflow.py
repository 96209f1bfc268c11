"""The api-side modules of ``models`` must not load TensorFlow or Keras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CODE = """
import sys
import models, models.spec, models.analysis, models.keras_import, models.errors
layers = [{"type": "Flatten"}, {"type": "Dense", "units": 2}]
v = models.parse_variant({"name": "a", "layers": layers})
models.analyze_variant(v, input_shape=(4, 4, 1), num_classes=2)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
assert not loaded, loaded
print("clean")
"""


def test_models_import_without_tensorflow() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_public_names() -> None:
    import models

    for name in models.__all__:
        if name != "build_model":  # loading it would import Keras
            assert getattr(models, name) is not None
    assert set(models.__all__) >= {"SpecError", "Variant", "parse_variant", "analyze", "Limits"}
