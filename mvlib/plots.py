"""Figures shared by the notebooks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mvlib import paths
from mvlib.data.store import BreastDataset


def savefig(fig: plt.Figure, name: str, profile: str) -> None:
    """Write `name`.png into the profile's figures folder (figures/ for `laptop`)."""
    fig.savefig(paths.figures(profile) / f"{name}.png", dpi=110, bbox_inches="tight")


def show_breasts(data: BreastDataset, indices: list[int], titles: list[str]) -> plt.Figure:
    """One row per breast: CC image and its benign/malignant heatmaps, then the same for MLO."""
    cols = [(v, c) for v in ("cc", "mlo") for c in range(data.cc.shape[1])]
    names = {0: "image", 1: "benign heatmap", 2: "malignant heatmap"}
    fig, axes = plt.subplots(len(indices), len(cols), figsize=(2.0 * len(cols), 2.6 * len(indices)),
                             squeeze=False)
    for r, (i, title) in enumerate(zip(indices, titles, strict=True)):
        for c, (view, ch) in enumerate(cols):
            arr = np.asarray(getattr(data, view)[i, ch], dtype=np.float32)
            ax = axes[r, c]
            ax.imshow(arr, cmap="gray" if ch == 0 else "magma", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{view.upper()} {names[ch]}", fontsize=8)
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
    fig.tight_layout()
    return fig
