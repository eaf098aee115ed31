"""The planted MLO marker switched on and off for the same breasts: a counterfactual cue test.

Every breast of a split is generated again from the same chunk streams as its data set, and
its MLO image is returned twice, with the marker forced present and forced absent; nothing
else differs (tissue, findings, heatmaps, CC). A breast that had the marker keeps it at the
same place; one that had none gets it at a place drawn from its own side stream. The data
set on disk (and its name) is not touched: this is a separate rendering.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import threadpoolctl
import torch

from mvlib.synth.config import SynthConfig
from mvlib.synth.generate import CHUNK, generate_chunk, split_of_breasts


def marker_counterfactual(cfg: SynthConfig, split: str = "test") -> dict:
    """The breasts of `split` in data-set order: `rows` (their manifest rows, `mlo_cue` the
    marker as generated), `cc` (N, 3, H, W) and `mlo_with` / `mlo_without` (N, 3, H, W), all
    float16 as stored in a data set (heatmap channels as generated)."""
    ids = np.flatnonzero(split_of_breasts(cfg) == split)
    if not len(ids):
        raise ValueError(f"the data set has no breasts in split {split!r}")
    parts = {"rows": [], "cc": [], "mlo_with": [], "mlo_without": []}
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for k in range(ids[0] // CHUNK, ids[-1] // CHUNK + 1):
            b = generate_chunk(cfg, k, marker_counterfactual=True)
            keep = np.isin(b.rows.breast_id.to_numpy(), ids)
            parts["rows"].append(b.rows[keep])
            parts["cc"].append(_half(b.views["cc"][keep]))
            for name in ("with", "without"):
                mlo = b.views["mlo"][keep].copy()
                mlo[:, 0] = b.mlo_marker[name][keep]
                parts[f"mlo_{name}"].append(_half(mlo))
    out = {k: np.concatenate(v) for k, v in parts.items() if k != "rows"}
    return {"rows": pd.concat(parts["rows"], ignore_index=True), **out}


def _half(a: np.ndarray) -> np.ndarray:
    """float16 as the data set stores it (the same torch cast as generate._build_chunk)."""
    return torch.from_numpy(np.ascontiguousarray(a)).half().numpy()
