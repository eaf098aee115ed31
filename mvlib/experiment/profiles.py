"""Run profiles: `smoke` (CI, each notebook < 90 s), `laptop` (default; the target: all
of `make reproduce` < 60 min on 2 CPU cores) and `paper` (the paper's settings, for GPUs
and real data). Notebooks take `profile` as a papermill parameter; when it is None the
environment variable MVLIB_PROFILE decides, so nbval (which cannot inject parameters)
runs whatever the Makefile exports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field

from mvlib.core.paper import CC_SIZE as PAPER_CC_SIZE
from mvlib.core.paper import MLO_SIZE as PAPER_MLO_SIZE
from mvlib.synth.config import SynthConfig


@dataclass(frozen=True)
class Profile:
    name: str
    cc_size: tuple[int, int]  # model input (H, W); real data are prepared to this size
    mlo_size: tuple[int, int]
    synthetic_patients: dict[str, int] = field(default_factory=dict)
    # Synthetic images are made at size // downscale: full resolution (31 MB a view in
    # float16) is for real data, where disk and GPUs are planned for it.
    synthetic_downscale: int = 1
    # Training budgets (the paper: 100 epochs, 10 sampled learning rates, 3 seeds each,
    # 10 test windows). `search_seeds` seeds per sampled learning rate; the winner then
    # gets `seeds` in all. `workers` runs train side by side (one thread each).
    epochs: int = 100
    lr_samples: int = 10
    search_seeds: int = 3
    seeds: int = 3
    tta_windows: int = 10
    workers: int = 1
    # CPU threads of each run (RunConfig.threads: part of a run's identity, since results
    # depend on it): all cores when runs go one at a time, one each when they share them.
    threads: int = 1
    # Modality Dropout and Split Learning Rates: sampled sets per base learning rate (the
    # paper: 10 at 1e-5 and 10 at 1e-4).
    hp_samples: int = 10
    # Seeds per condition of the known-answer testbed (notebook 02, mvlib.study.testbed).
    testbed_seeds: int = 3
    # What the laptop profile leaves out to fit `make reproduce` in its 60 minutes (the
    # guide's "What was cut"): notebook 02's sensitivity study runs only the testbed's own cue
    # strengths (0 and 1), notebook 08 repeats its methods with `method_seeds` (None: `seeds`)
    # and trains them with heatmaps only (`method_image_only`).
    cue_strengths: tuple[float, ...] = (0.0, 0.5, 1.0)
    method_seeds: int | None = None
    method_image_only: bool = True
    # A re-run with another seed list (MVLIB_RESEED): the searches keep their seeds, the
    # repetitions after them start at `reseed` instead (see `seed_list`).
    reseed: int = 0
    # Where the runs train (not part of any run's identity): "local" (this machine: the
    # `workers`, or `runs_per_gpu` runs on each GPU) or "slurm" (mvlib.executors.slurm;
    # resources from `slurm`, overridden by MVLIB_SLURM_* variables; `runs_per_gpu` runs a
    # job). $MVLIB_RUNS_PER_GPU overrides `runs_per_gpu`.
    executor: str = "local"
    slurm: dict = field(default_factory=dict)
    runs_per_gpu: int = 1
    # The data every run of the notebooks trains on: the synthetic default, or a real
    # source prepared from `data_root` with `data_knobs` (mvlib.experiment.prepare).
    dataset: str = "synthetic"
    data_root: str | None = None
    data_knobs: dict = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """Names this profile's outputs: the profile, plus the data set and a hash of its
        root and knobs when it is not the synthetic default (so real-data runs never
        overwrite the committed figures, nor each other's)."""
        name = f"{self.name}-reseed{self.reseed}" if self.reseed else self.name
        if self.dataset == "synthetic" and not self.data_knobs:
            return name
        source = json.dumps([self.data_root, self.data_knobs], sort_keys=True).encode()
        return f"{name}-{self.dataset}-{hashlib.sha256(source).hexdigest()[:6]}"

    def seed_list(self, n: int) -> list[int]:
        """The seeds of `n` repetitions: 0, 1, ..., n - 1, the first `search_seeds` of them the
        search's own runs. With `reseed`, the ones after the search's are reseed, reseed + 1,
        ...: the same searches, new repetitions (does a verdict survive other seeds?)."""
        head = list(range(min(n, self.search_seeds)))
        start = max(self.reseed, len(head)) if self.reseed else len(head)
        return head + list(range(start, start + n - len(head)))

    def synthetic_config(self, **knobs) -> SynthConfig:
        """The embedded default data set of this profile; `knobs` override generator fields."""
        d = self.synthetic_downscale
        config = SynthConfig().to_dict()
        config.update(patients=dict(self.synthetic_patients),
                      cc_size=(self.cc_size[0] // d, self.cc_size[1] // d),
                      mlo_size=(self.mlo_size[0] // d, self.mlo_size[1] // d))
        for key, value in knobs.items():  # a view's knobs merge: {"mlo": {"shortcut_strength": 0}}
            if isinstance(value, dict) and key in ("cc", "mlo"):
                value = {**config[key], **value}
            config[key] = value
        return SynthConfig.from_dict(config)


PROFILES = {
    # Smoke: every notebook end to end in seconds; one sampled learning rate per group (the
    # search's choice among several is tested in tests/test_search.py).
    "smoke": Profile("smoke", (64, 48), (72, 42), {"train": 40, "val": 20, "test": 20},
                     epochs=2, lr_samples=1, search_seeds=1, seeds=2, tta_windows=2,
                     hp_samples=1, threads=2, testbed_seeds=2, slurm={"time_min": 10}),
    # Laptop: 5 epochs of exams (480 breasts each here) train about as many iterations as
    # the 6 epochs of breasts (368 each) that this profile had before epochs drew exams; 3
    # seeds at each winner, as on the testbed (5, then 4, until the runs of the control grid
    # outgrew the 60 minutes: at 3 seeds a t interval over seeds has 2 degrees of freedom);
    # 3 test windows (of the paper's 10); notebook 08's methods with heatmaps only; the
    # sensitivity study at the testbed's own cue strengths.
    "laptop": Profile("laptop", (96, 72), (108, 64), {"train": 240, "val": 100, "test": 160},
                      epochs=5, lr_samples=2, search_seeds=1, seeds=3, tta_windows=3,
                      workers=2, hp_samples=1, cue_strengths=(0.0, 1.0), method_seeds=3,
                      method_image_only=False, slurm={"time_min": 30}),
    "paper": Profile("paper", PAPER_CC_SIZE, PAPER_MLO_SIZE,
                     {"train": 2000, "val": 500, "test": 500}, synthetic_downscale=4,
                slurm={"time_min": 24 * 60, "gpus": 1, "cpus": 8, "mem_gb": 64}),
}


def get(name: str | None = None, dataset: str = "synthetic", data_root: str | None = None,
        executor: str | None = None, reseed: int | None = None, **data_knobs) -> Profile:
    """The named profile (None means $MVLIB_PROFILE, else `laptop`), training on `dataset`
    (prepared from `data_root` with `data_knobs`; see mvlib.experiment.prepare), with the seed
    list of `reseed` (`Profile.seed_list`; None means $MVLIB_RESEED, else 0: the committed
    seeds), its runs trained by `executor` (None means $MVLIB_EXECUTOR, else "local")."""
    name = name or os.environ.get("MVLIB_PROFILE") or "laptop"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    prof = PROFILES[name]
    if reseed is None and (env := os.environ.get("MVLIB_RESEED")):
        if not env.isdigit():
            raise ValueError(f"MVLIB_RESEED={env!r}: expected a non-negative integer")
        reseed = int(env)
    if reseed:
        if not isinstance(reseed, int) or reseed < 0:
            raise ValueError(f"reseed={reseed!r}: expected a non-negative integer")
        prof = dataclasses.replace(prof, reseed=reseed)
    executor = executor or os.environ.get("MVLIB_EXECUTOR") or "local"
    if executor not in ("local", "slurm"):
        raise ValueError(f"unknown executor {executor!r}; choose 'local' or 'slurm'")
    if executor != prof.executor:
        prof = dataclasses.replace(prof, executor=executor)
    if dataset == "synthetic" and data_root is None and not data_knobs:
        return prof
    return dataclasses.replace(prof, dataset=dataset,
                               data_root=None if data_root is None else str(data_root),
                               data_knobs=dict(data_knobs))
