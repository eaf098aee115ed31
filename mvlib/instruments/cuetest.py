"""The counterfactual cue test: a run's causal reliance on the planted MLO marker.

Every breast of a synthetic split is scored twice by the run's best checkpoint (whole crops,
eval mode, as mvlib.instruments.reliance scores it), once with the marker forced into its MLO image
and once with it forced out, everything else identical (mvlib.synth.counterfactual). The mean
change of the malignant logit is how much the marker moves the decision; the change of the
AUC is what the marker does to the ranking. A known answer no real data set can give.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvlib.core.atomic import write_atomic
from mvlib.core.device import cpu_threads
from mvlib.data.store import BreastDataset
from mvlib.engine.view_parts import load_best, malignant_logits
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunDir
from mvlib.instruments.stats import auc_ci, delong_test
from mvlib.synth.config import SynthConfig
from mvlib.synth.counterfactual import marker_counterfactual

COLUMNS = ("breast_id", "malignant", "mlo_cue", "z_on", "z_off")


def cue_test(run: RunDir, knobs: dict | None = None, split: str = "test") -> pd.DataFrame:
    """Per breast of `split` (data-set order): `breast_id`, `malignant`, `mlo_cue` (the
    marker as generated) and the run's malignant logit with the marker on (`z_on`) and off
    (`z_off`). `knobs`: the synthetic data set to score on (default: the run's own; the
    testbed scores control runs on the planted data). Kept in the run's folder as
    cue_test-<split>-<data set>.csv."""
    cfg = run.cfg
    if cfg.dataset != "synthetic":
        raise ValueError(f"the cue test needs the synthetic generator, not {cfg.dataset!r}")
    data = prepare(cfg.dataset, cfg.profile, cfg.data_root, progress=False,
                   **(cfg.knobs if knobs is None else knobs))
    path = run.path / f"cue_test-{split}-{data.root.name}.csv"
    if path.exists():
        cached = pd.read_csv(path)
        if set(COLUMNS) <= set(cached):
            return cached
    idx = data.indices(split)
    cf = marker_counterfactual(SynthConfig.from_dict(data.meta["config"]), split)
    if not np.array_equal(cf["rows"].breast_id.to_numpy(), idx):
        raise ValueError(f"{data.root}: the regenerated {split} split has other breasts")
    stored = np.asarray(data.mlo[idx])
    cue = cf["rows"].mlo_cue.to_numpy().astype(bool)
    if not (np.array_equal(cf["mlo_with"][cue], stored[cue])
            and np.array_equal(cf["mlo_without"][~cue], stored[~cue])):
        raise ValueError(f"{data.root}: regenerating its {split} split does not reproduce the "
                         "stored MLO images (the generator changed without a version bump?)")
    manifest = data.manifest.iloc[idx].reset_index(drop=True)
    cc = np.asarray(data.cc[idx])
    model = load_best(run)
    device = next(model.parameters()).device
    out = manifest[["breast_id", "malignant"]].assign(mlo_cue=cue.astype(int))
    with cpu_threads(cfg.threads):
        for name, mlo in (("on", cf["mlo_with"]), ("off", cf["mlo_without"])):
            version = BreastDataset(data.root, data.meta, manifest, cc, mlo)
            z, rows = malignant_logits(model, version, split, cfg.channels, device)
            if not np.array_equal(rows.breast_id.to_numpy(), np.arange(len(idx))):
                raise ValueError("the counterfactual breasts came back in another order")
            out[f"z_{name}"] = z
    write_atomic(path, lambda p: out.to_csv(p, index=False))
    return out


def cue_summary(test: pd.DataFrame, level: float = 0.95) -> dict[str, float]:
    """One run's cue test: the mean change of the malignant logit (marker on - off; overall,
    and among the breasts that had the marker and that had none), the AUC with the marker
    on every breast and off every breast, and their difference with its DeLong interval.
    NaN AUCs when a class has fewer than 2 breasts."""
    d = (test.z_on - test.z_off).to_numpy()
    cue = test.mlo_cue.to_numpy().astype(bool)
    out = {"logit change": float(d.mean()),
           "logit change (had marker)": float(d[cue].mean()) if cue.any() else np.nan,
           "logit change (had none)": float(d[~cue].mean()) if (~cue).any() else np.nan}
    try:
        y = test.malignant.to_numpy()
        on, off = auc_ci(y, test.z_on, level)[0], auc_ci(y, test.z_off, level)[0]
        t = delong_test(y, test.z_on.to_numpy(), test.z_off.to_numpy(), level)
        out.update({"AUC marker on": on, "AUC marker off": off,
                    "AUC change": float(t["diff"]), "AUC change lo": float(t["lo"]),
                    "AUC change hi": float(t["hi"])})
    except ValueError:
        out.update(dict.fromkeys(["AUC marker on", "AUC marker off", "AUC change",
                                  "AUC change lo", "AUC change hi"], np.nan))
    return out
