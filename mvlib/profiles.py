"""Run profiles: `smoke` (CI, each notebook < 90 s), `laptop` (default, all of
`make reproduce` < 60 min on 2 CPU cores) and `paper` (the paper's settings, for GPUs and
real data). Notebooks take `profile` as a papermill parameter; when it is None the
environment variable MVLIB_PROFILE decides, so nbval (which cannot inject parameters)
runs whatever the Makefile exports.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from mvlib.synth.config import SynthConfig

# The paper's crop sizes (H, W); REFERENCE section 1.
PAPER_CC_SIZE = (2677, 1942)
PAPER_MLO_SIZE = (2974, 1748)


@dataclass(frozen=True)
class Profile:
    name: str
    cc_size: tuple[int, int]  # model input (H, W); real data are prepared to this size
    mlo_size: tuple[int, int]
    synthetic_patients: dict[str, int] = field(default_factory=dict)
    # Synthetic images are made at size // downscale: full resolution (31 MB a view in
    # float16) is for real data, where disk and GPUs are planned for it.
    synthetic_downscale: int = 1

    def synthetic_config(self, **knobs) -> SynthConfig:
        """The embedded default data set of this profile; `knobs` override generator fields."""
        d = self.synthetic_downscale
        return dataclasses.replace(
            SynthConfig(), patients=dict(self.synthetic_patients),
            cc_size=(self.cc_size[0] // d, self.cc_size[1] // d),
            mlo_size=(self.mlo_size[0] // d, self.mlo_size[1] // d), **knobs)


PROFILES = {
    "smoke": Profile("smoke", (64, 48), (72, 42), {"train": 40, "val": 20, "test": 20}),
    "laptop": Profile("laptop", (128, 96), (144, 84), {"train": 400, "val": 150, "test": 200}),
    "paper": Profile("paper", PAPER_CC_SIZE, PAPER_MLO_SIZE,
                     {"train": 2000, "val": 500, "test": 500}, synthetic_downscale=4),
}


def get(name: str | None = None) -> Profile:
    """The named profile; None means $MVLIB_PROFILE, else `laptop`."""
    name = name or os.environ.get("MVLIB_PROFILE") or "laptop"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
