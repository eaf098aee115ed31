"""Every knob of the synthetic two-view mammography generator, in one JSON-able dataclass."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ViewKnobs:
    """How a finding shows in one view, and the view-specific shortcut cue.

    `visible_prob`: chance that a finding is visible at all in this view (else it is hidden
    by overlapping tissue). `contrast_scale`: multiplies every finding's contrast here.
    `heatmap_sensitivity`: chance that the simulated patch classifier fires on a visible
    finding. `shortcut_strength` in [0, 1]: how strongly the cue (a bright marker outside
    the breast) predicts malignancy in the *training split only*; 0 disables the
    correlation, the cue then appears with `shortcut_base_rate` regardless of label.
    """

    visible_prob: float = 0.9
    contrast_scale: float = 1.0
    heatmap_sensitivity: float = 0.8
    shortcut_strength: float = 0.0


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator. Same config and seed give the same data bit for bit."""

    seed: int = 0
    # Patients per split; every patient contributes a left and a right breast.
    patients: dict[str, int] = field(
        default_factory=lambda: {"train": 400, "val": 150, "test": 200}
    )
    # (H, W) per view; CC and MLO differ in shape as in the paper (2677x1942, 2974x1748).
    cc_size: tuple[int, int] = (128, 96)
    mlo_size: tuple[int, int] = (144, 84)
    # Per-breast label prevalence. Benign and malignant are drawn independently, so a
    # breast can carry both. Incidental = benign-looking finding that was never biopsied.
    p_malignant: float = 0.15
    p_benign: float = 0.25
    p_incidental: float = 0.15
    # Conspicuity defaults follow Korhonen et al. 2019: one-view-only cancers are more
    # often seen in CC, so MLO hides findings more often and shows them less clearly.
    cc: ViewKnobs = ViewKnobs(visible_prob=0.92, contrast_scale=1.0)
    mlo: ViewKnobs = ViewKnobs(visible_prob=0.78, contrast_scale=0.85, shortcut_strength=1.0)
    shortcut_base_rate: float = 0.3
    # Finding appearance, contrast in image units (tissue spans about 0.3..0.8). These and the
    # MLO cue's strength come from the calibration study in notebook 02 (mvlib.study.testbed): with
    # fainter findings (masses 0.05-0.14, radius 0.035-0.08, calcifications 0.25-0.5) models
    # without heatmaps stayed at chance, and a cue of 0.4 was hardly used; with masses at
    # 0.12-0.3 the image-only models of Table 3 were above chance in some re-runs only.
    mass_contrast: tuple[float, float] = (0.25, 0.45)
    calc_contrast: tuple[float, float] = (0.4, 0.8)
    mass_radius: tuple[float, float] = (0.05, 0.1)  # fraction of breast depth
    # Heatmap realism: cross-talk between the two maps, false-positive blobs, noise.
    heatmap_amplitude: tuple[float, float] = (0.6, 1.0)  # peak of a detected finding's blob
    heatmap_crosstalk: float = 0.35
    heatmap_false_positives: float = 0.6  # mean blobs per map
    false_positive_amplitude: tuple[float, float] = (0.1, 0.45)
    heatmap_noise: float = 0.04
    density: tuple[float, float] = (0.2, 0.7)  # fibroglandular fraction range
    texture_beta: tuple[float, float] = (2.6, 3.4)  # power-law exponent of the texture

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SynthConfig:
        d = dict(d)
        for view in ("cc", "mlo"):
            if isinstance(d.get(view), dict):
                d[view] = ViewKnobs(**d[view])
        for key in ("cc_size", "mlo_size", "mass_contrast", "calc_contrast", "mass_radius",
                    "density", "texture_beta", "heatmap_amplitude", "false_positive_amplitude"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def view(self, name: str) -> ViewKnobs:
        return {"cc": self.cc, "mlo": self.mlo}[name]

    def size(self, name: str) -> tuple[int, int]:
        return {"cc": self.cc_size, "mlo": self.mlo_size}[name]

    def digest(self) -> str:
        """Short stable hash of the config: names the data set on disk."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]
