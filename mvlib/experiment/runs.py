"""A run's configuration and its folder in the run store.

A run folder is named by its config's hash and tells everything about the run:
  config.json     the RunConfig
  status.json     state (running / done / diverged), best epoch, test AUC, reason
  metrics.csv     one row per finished epoch (validation columns empty in epochs that
                  `val_every` skips)
  initial.csv     with checkpoint_curves: the untrained model evaluated like a checkpoint
  dynamics/       per epoch: gradient norms per iteration; LCA windows (when on: group
                  allocations, actual change, error, Simpson sub-intervals, and the same
                  before refinement as rk4_*); validation predictions per breast (with
                  checkpoint_curves; `_init` for the untrained model)
  last.pt         model, optimiser (and its learning-rate schedule, with SGD) and
                  bookkeeping after the last finished epoch (resume)
  best.pt         model weights of the epoch with the best validation malignant AUC
  predictions.csv test predictions of the best checkpoint (TTA mean over `tta_windows`)
  reliance.csv    view-reliance predictions of the best checkpoint (mvlib.instruments.reliance)
Every file is written atomically. Checkpoints hold plain types and tensors only and are
read with `weights_only=True`: a run store may be shared, and a crafted pickle would run code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import pickle
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from mvlib.core import paths
from mvlib.core.atomic import write_atomic, write_json
from mvlib.data.sampler import UNITS

# Version of the training protocol behind a run's numbers, part of every run's name: runs of
# an earlier protocol are never reused. 2: epochs draw exams (1 drew breasts), LCA runs on
# shrunken epochs, fp32 output layer under autocast.
PROTOCOL = 2

OPTIMIZERS = ("adam", "sgd")  # RunConfig.optimizer
REBALANCE_HOLDS = ("view", "input")  # RunConfig.rebalance['hold']: see mvlib.methods.rebalance


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run; its hash names the run folder."""

    model: str  # a name of mvlib.models.heads.MODELS
    lr: float
    epochs: int
    seed: int = 0
    channels: int = 3  # 1 = image only, 3 = image + heatmaps
    batch_size: int = 4
    tta_windows: int = 10
    group_lr: dict[str, float] | None = None  # per-group learning rates (cc, mlo, shared)
    # The optimiser (mvlib.engine.train.make_optimizer): "adam", the paper's; "sgd", OGM-GE's
    # reference recipe (SGD, momentum 0.9, weight decay 1e-4, the rate x0.1 at 70% of the
    # epochs; GeWu-Lab/OGM-GE_CVPR2022 main.py).
    optimizer: str = "adam"
    # Regularizers of Section 6.2: Modality Dropout rates {'cc': p, 'mlo': p}; Gradient
    # Blending weights {'joint', 'cc', 'mlo'} (model 'joint_blend'); Pretraining: the
    # uni-view runs ('<experiment>/<run folder>' in the store) whose best checkpoints
    # initialise each view, and what is then fine-tuned ('all' or 'output').
    view_dropout: dict[str, float] | None = None
    blend_weights: dict[str, float] | None = None
    init_from: dict[str, str] | None = None
    finetune: str = "all"
    # The later balancing methods (notebook 08), for Joint ResNet alone: OGM-GE's alpha (0 =
    # off; mvlib.methods.ogm), with `ogm_fc` modulating the FC-512 weights too; greedy-learning
    # re-balancing, adapted, {'epsilon': ..., 'steps': ..., 'hold': ...} (None = off; 'hold'
    # optional, 'view' when absent; mvlib.methods.rebalance).
    ogm_alpha: float = 0.0
    ogm_fc: bool = False
    rebalance: dict[str, float | str] | None = None
    # Gradient Blending's curves: evaluate the training split at every checkpoint (as the
    # validation split is), the untrained model included, and keep per-breast validation
    # predictions of every validated epoch.
    checkpoint_curves: bool = False
    # The epoch sampler (mvlib.data.sampler): exams (the paper's Section 4) or breasts, and
    # the share of a regular epoch's positive and negative units drawn per epoch (Appendix
    # A's LCA runs train on shrunken epochs of 0.1).
    sampling: str = "exam"
    epoch_fraction: float = 1.0
    # Validate (and select the checkpoint) every `val_every` epochs and after the last: the
    # shrunken epochs of an LCA run are validated once per regular epoch's worth.
    val_every: int = 1
    # Online Loss Change Allocation (Appendix A): every `lca_every` iterations (0 = off), the
    # loss measured on the current epoch's own sample; Simpson sub-intervals double from 2
    # up to `lca_max_splits` while |error| > 1e-3 (the reference's rule; 2 = RK4 only).
    lca_every: int = 0
    lca_max_splits: int = 32
    # CPU threads of the run. Float reductions, and through them the whole training, depend on
    # the count, so it is part of the config: a run gives the same metrics whichever executor
    # runs it. Sweeps get parallelism by running several runs side by side instead.
    threads: int = 1
    # The data: a source prepared at a profile's sizes (see mvlib.experiment.prepare).
    dataset: str = "synthetic"
    profile: str = "laptop"
    data_root: str | None = None
    knobs: dict = field(default_factory=dict)
    experiment: str = "default"  # folder under the store that groups related runs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(d) - known):
            raise ValueError(f"unknown RunConfig fields {unknown}")
        return cls(**d)

    def __post_init__(self):
        from mvlib.models.heads import MODELS

        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {sorted(MODELS)}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (image) or 3 (image + heatmaps), "
                             f"got {self.channels}")
        if not (_number(self.lr, numbers.Real) and 0 < self.lr < float("inf")):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("epochs", "batch_size", "tta_windows", "threads"):
            if not (_number(getattr(self, name), numbers.Integral) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not (_number(self.lca_every, numbers.Integral) and self.lca_every >= 0):
            raise ValueError(f"lca_every must be an integer >= 0, got {self.lca_every!r}")
        if not (_number(self.val_every, numbers.Integral) and self.val_every >= 1):
            raise ValueError(f"val_every must be a positive integer, got {self.val_every!r}")
        if self.sampling not in UNITS:
            raise ValueError(f"sampling must be one of {UNITS}, got {self.sampling!r}")
        if not (_number(self.epoch_fraction, numbers.Real) and 0 < self.epoch_fraction <= 1):
            raise ValueError(f"epoch_fraction must be in (0, 1], got {self.epoch_fraction!r}")
        _check_keys("group_lr", self.group_lr, {"cc", "mlo", "shared"}, exact=True,
                    valid=lambda v: v > 0)
        _check_keys("view_dropout", self.view_dropout, {"cc", "mlo"},
                    valid=lambda v: 0 <= v < 1)
        _check_keys("blend_weights", self.blend_weights, {"joint", "cc", "mlo"}, exact=True,
                    valid=lambda v: v >= 0)
        _check_keys("init_from", self.init_from, {"cc", "mlo"}, valid=lambda v: bool(v))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.finetune not in ("all", "output"):
            raise ValueError(f"finetune must be 'all' or 'output', got {self.finetune!r}")
        if (self.model == "joint_blend") != bool(self.blend_weights):
            raise ValueError("Gradient Blending weights go with model 'joint_blend' and only it")
        if self.blend_weights and not self.blend_weights["joint"] > 0:
            raise ValueError("blend_weights need w_joint > 0: the joint head makes every "
                             "prediction, and with w_joint = 0 nothing trains it")
        if self.lca_max_splits < 2 or self.lca_max_splits & (self.lca_max_splits - 1):
            raise ValueError("lca_max_splits must be a power of two >= 2 (Simpson's rule, "
                             f"doubled from 2), got {self.lca_max_splits}")
        if self.finetune == "output" and not self.init_from:
            raise ValueError("finetune='output' needs init_from (the pretrained uni-view runs)")
        self._check_balancing()

    def _check_balancing(self) -> None:
        if not (_number(self.ogm_alpha, numbers.Real) and 0 <= self.ogm_alpha < float("inf")):
            raise ValueError(f"ogm_alpha must be a number >= 0 (0 = off), got {self.ogm_alpha!r}")
        _check_keys("rebalance", self.rebalance, {"epsilon", "steps", "hold"})
        r = self.rebalance
        if r is not None and not (
                {"epsilon", "steps"} <= set(r)
                and _number(r["epsilon"], numbers.Real) and r["epsilon"] >= 0
                and _number(r["steps"], numbers.Integral) and r["steps"] >= 1
                and r.get("hold", "view") in REBALANCE_HOLDS):
            raise ValueError("rebalance needs epsilon >= 0, an integer steps >= 1 and hold in "
                             f"{REBALANCE_HOLDS} (optional), got {self.rebalance!r}")
        if self.ogm_fc and not self.ogm_alpha:
            raise ValueError("ogm_fc modulates the FC-512 weights too: it needs ogm_alpha > 0")
        methods = [n for n, on in (("ogm_alpha", self.ogm_alpha), ("rebalance", self.rebalance))
                   if on]
        if not methods:
            return
        if len(methods) > 1:
            raise ValueError("OGM-GE (ogm_alpha) and re-balancing (rebalance) are separate "
                             "methods: choose one")
        if self.model != "joint":
            raise ValueError(f"{methods[0]} is built for Joint ResNet's sum fusion (model "
                             f"'joint'), not {self.model!r}")
        if self.view_dropout or self.group_lr or self.init_from:
            raise ValueError(f"{methods[0]} trains a plain Joint ResNet: no Modality Dropout, "
                             "Split Learning Rates or Pretraining in the same run")

    def synthetic_data(self) -> str | None:
        """The name of the synthetic data set this run trains on (its generator config and
        version), or None for a profile this library does not define."""
        from mvlib.experiment import profiles
        from mvlib.synth.generate import dataset_dir

        if self.profile not in profiles.PROFILES:
            return None
        # the profile's own definition: no environment (executor, seeds) enters a run's name
        return dataset_dir(profiles.PROFILES[self.profile].synthetic_config(**self.knobs),
                           "").name

    def digest(self) -> str:
        """Hash of PROTOCOL, the synthetic data set's name and the fields that differ from
        their defaults: adding a field with a default keeps every earlier run's name
        (config.json still lists every field), and a change of protocol or of the generator's
        defaults gives every run a new one."""
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING
                    else f.default_factory() for f in dataclasses.fields(self)
                    if f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING}
        changed = {k: v for k, v in self.to_dict().items()
                   if k not in defaults or v != defaults[k]}
        if PROTOCOL > 1:
            changed["protocol"] = PROTOCOL
        if self.dataset == "synthetic":  # new generator defaults give new runs
            changed["data"] = self.synthetic_data()
        blob = json.dumps(changed, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _number(value: object, kind: type) -> bool:
    """A number of `kind` (numpy scalars included), not a bool."""
    return isinstance(value, kind) and not isinstance(value, bool)


def _check_keys(field: str, value: dict | None, allowed: set[str], exact: bool = False,
                valid=lambda v: True) -> None:
    """A dict-valued RunConfig field: its keys (all of `allowed` when `exact`) and values."""
    if value is None:
        return
    if not isinstance(value, dict) or not set(value) <= allowed or (
            exact and set(value) != allowed):
        need = "exactly" if exact else "a subset of"
        raise ValueError(f"{field} must be a dict with keys {need} {sorted(allowed)}, "
                         f"got {value!r}")
    if bad := {k: v for k, v in value.items() if not valid(v)}:
        raise ValueError(f"{field} has invalid values {bad}")


class DamagedCheckpoint(Exception):
    """A checkpoint file that cannot be read; the message names the file."""


class RunDir:
    """The folder of one run in the store, with atomic readers and writers."""

    def __init__(self, cfg: RunConfig, store: Path | None = None):
        self.cfg = cfg
        self.store = Path(store or paths.store())
        self.path = self.store / cfg.experiment / f"{cfg.model}-{cfg.digest()}"

    @property
    def ref(self) -> str:
        """The run's place in its store, '<experiment>/<folder>' (what `init_from` holds)."""
        return f"{self.cfg.experiment}/{self.path.name}"

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "config.json", self.cfg.to_dict())

    def status(self) -> dict:
        p = self.path / "status.json"
        return json.loads(p.read_text()) if p.exists() else {"state": "new"}

    def set_status(self, **fields) -> None:
        write_json(self.path / "status.json", {**self.status(), **fields})

    @property
    def state(self) -> str:
        """new, running, done, diverged or failed: the one way to read where a run stands."""
        return self.status()["state"]

    @property
    def done(self) -> bool:
        """Trained to the end (a diverged run is finished but not done)."""
        return self.state == "done"

    @property
    def finished(self) -> bool:
        return self.state in ("done", "diverged")

    def metrics(self) -> pd.DataFrame:
        p = self.path / "metrics.csv"
        return pd.read_csv(p) if p.exists() else pd.DataFrame()

    def write_metrics(self, rows: list[dict]) -> None:
        write_atomic(self.path / "metrics.csv",
                     lambda p: pd.DataFrame(rows).to_csv(p, index=False))

    def save(self, name: str, obj: object) -> None:
        write_atomic(self.path / name, lambda p: torch.save(obj, p))

    def load(self, name: str) -> object | None:
        """A checkpoint (tensors and plain types only), None when absent; DamagedCheckpoint
        when it cannot be read (truncated, not a checkpoint, or naming code to run)."""
        p = self.path / name
        if not p.exists():
            return None
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
                zipfile.BadZipFile) as e:
            raise DamagedCheckpoint(f"{p}: cannot read the checkpoint "
                                    f"({str(e).splitlines()[0]})") from e

    def set_aside(self, name: str) -> Path:
        """Move a damaged file out of the way (kept for inspection); returns its new path."""
        p = self.path / name
        moved = p.with_name(f"{name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        p.replace(moved)
        return moved

    def write_initial(self, row: dict, val_predictions: pd.DataFrame) -> None:
        """The untrained model's evaluation (runs with checkpoint_curves): where Gradient
        Blending's [0, 100] window starts."""
        write_atomic(self.path / "dynamics" / "val_predictions_init.csv",
                     lambda p: val_predictions.assign(epoch=-1).to_csv(p, index=False))
        write_atomic(self.path / "initial.csv",
                     lambda p: pd.DataFrame([{"epoch": -1, **row}]).to_csv(p, index=False))

    def initial(self) -> pd.DataFrame:
        """The row `write_initial` wrote (epoch -1), or an empty table."""
        p = self.path / "initial.csv"
        return pd.read_csv(p) if p.exists() else pd.DataFrame()

    def checkpoints(self) -> pd.DataFrame:
        """Every evaluated checkpoint: the untrained model's row (epoch -1, runs with
        checkpoint_curves) and then metrics.csv."""
        return pd.concat([self.initial(), self.metrics()], ignore_index=True)

    def val_predictions(self) -> pd.DataFrame:
        """Per-breast validation predictions of every checkpoint (with checkpoint_curves),
        the untrained model's first (epoch -1)."""
        init = self.path / "dynamics" / "val_predictions_init.csv"
        return pd.concat([pd.read_csv(init) if init.exists() else pd.DataFrame(),
                          self.dynamics("val_predictions")], ignore_index=True)

    def write_dynamics(self, epoch: int, name: str, rows: list[dict]) -> None:
        path = self.path / "dynamics" / f"{name}_e{epoch:04d}.csv"
        write_atomic(path, lambda p: pd.DataFrame(rows).to_csv(p, index=False))

    def dynamics(self, name: str) -> pd.DataFrame:
        """All epochs of a dynamics record: 'grad_norms' or 'lca'."""
        parts = sorted((self.path / "dynamics").glob(f"{name}_e*.csv"))
        return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True) if parts \
            else pd.DataFrame()

    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "predictions.csv")

    def write_predictions(self, pred: pd.DataFrame) -> None:
        write_atomic(self.path / "predictions.csv", lambda p: pred.to_csv(p, index=False))
