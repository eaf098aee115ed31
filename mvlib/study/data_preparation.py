"""Section 3 (notebook 00): what the synthetic data set holds, read from its ground truth
and from the diagnostics of mvlib.synth.diagnostics, beside the paper's data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvlib.core import paper
from mvlib.data.store import BreastDataset


def data_markdown(splits: pd.DataFrame, one: pd.Series, views: pd.DataFrame,
                  leak: pd.DataFrame) -> str:
    """Notebook 00's summary of a synthetic data set in words: counts (`splits`, the data
    set's `counts()`) beside the paper's, how many malignant findings one view alone shows
    (`one`: `diagnostics.one_view_only`), what the heatmaps and the planted MLO marker give
    (`views`: contrast and heatmap AUCs per view; `leak`: the markers' AUCs per split)."""
    total = splits.loc["total"]
    heat = views.filter(like="peak")
    contrast = views["test AUC from ground-truth contrast"]
    return "\n".join([
        f"* **Counts.** {total.breasts:,} breasts of {total.patients:,} patients; "
        f"{total.malignant} malignant ({total.malignant / total.breasts:.0%}) and {total.benign} "
        f"benign ({total.benign / total.breasts:.0%}), against "
        f"{paper.DATA['malignant breasts'] / paper.DATA['breasts']:.2%} and "
        f"{paper.DATA['benign breasts'] / paper.DATA['breasts']:.2%} in the paper's data.",
        f"* **Conspicuity.** Of {int(one.sum())} malignant findings, {one['CC only']} are visible "
        f"in CC only and {one['MLO only']} in MLO only. A classifier on the ground-truth "
        f"contrasts reaches a test AUC of {contrast['cc']:.2f} from CC and {contrast['mlo']:.2f} "
        f"from MLO.",
        "* **Heatmaps.** The peak of the malignant heatmap alone gives AUCs of "
        + ", ".join(f"{a:.2f}" for a in heat.loc["cc"]) + " in CC (train, validation, test) "
        "against " + ", ".join(f"{a:.2f}" for a in heat.loc["mlo"]) + " in MLO. Validation "
        f"and test hold only {splits.loc['val', 'malignant']} and "
        f"{splits.loc['test', 'malignant']} malignant breasts, so these AUCs are uncertain.",
        "* **The shortcut.** The MLO marker's AUC for malignancy is "
        + ", ".join(f"{a:.2f}" for a in leak["mlo"]) + " (" + ", ".join(leak.index)
        + "), the CC marker's " + ", ".join(f"{a:.2f}" for a in leak["cc"]) + "."])


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
