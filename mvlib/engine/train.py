"""One training run of the paper's protocol, top to bottom (Wu et al. 2020, Section 4).

Each epoch (`train_one_epoch`): the paper's sampler (every biopsied exam + as many
biopsy-free ones, each drawn exam's breasts as instances), random windows, Adam at batch 4;
then (`evaluate`) validation malignant AUC on the whole crops. The best epoch's weights are
kept; the test AUC is that checkpoint's TTA mean prediction (over `tta_windows` random
windows; 10 in the paper). `optimizer` 'sgd' swaps Adam for OGM-GE's reference recipe
(`make_optimizer`, `make_scheduler`). Every random draw of epoch e comes from (seed, e), so a run
resumed after its last finished epoch gives the same metrics as one that was never
interrupted. Every iteration records the gradient norm of each parameter group; with
`lca_every`, Loss Change Allocation runs online over windows of that many iterations on
the epoch's own sample (Appendix A, with shrunken epochs: `epoch_fraction`). The
regularizers of Section 6.2 are config fields: Modality Dropout lives in the model, Split
Learning Rates in the optimiser, Gradient Blending in the loss, Pretraining in the
initialisation. The later balancing methods of notebook 08 are one call each at their place
in the step: OGM-GE (mvlib.methods.ogm) between backward() and the optimiser step, the re-balancing
(mvlib.methods.rebalance) where the views are fused. A non-finite loss ends the run as `diverged`,
recorded in its folder, without raising.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mvlib.core.device import autocast, cpu_threads, pick_device, to_device
from mvlib.data.loader import Batches, BreastArrays, eval_loader, to_model_input, train_loader
from mvlib.data.store import BreastDataset
from mvlib.engine.dynamics import RK4, group_grad_norms, lca
from mvlib.engine.evaluate import auc, predict, scores
from mvlib.engine.view_parts import run_reliance
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import DamagedCheckpoint, RunConfig, RunDir
from mvlib.methods.ogm import OGMGE
from mvlib.methods.rebalance import Rebalancer
from mvlib.models.heads import blended_loss, build_model, loss_fn


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A distinct, reproducible seed for each (run seed, epoch, random stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def plain(obj: object) -> object:
    """Bookkeeping as plain Python types (numpy floats become floats), so that a checkpoint
    loads with `weights_only=True`."""
    return json.loads(json.dumps(obj))


def clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def epoch_loss(data: BreastDataset, epoch_indices: np.ndarray, channels: int,
               device: torch.device) -> Callable[[torch.nn.Module], torch.Tensor]:
    """The LCA loss of Appendix A: the loss on the current epoch's own sample ("the loss
    change on samples used in the current epoch"), whole crops, no input noise. BatchNorm
    normalises with the statistics of these fixed batches, as in training: the loss is then
    a function of the parameters alone (running statistics lag the parameters and made the
    eval-mode loss jump between windows). It is smooth only piecewise: ReLU and max-pool
    kinks make its gradient along a path rough, which is why Simpson's rule needs more
    sub-intervals over longer paths (higher learning rates, longer windows)."""
    keep = np.sort(epoch_indices)
    items = BreastArrays(data, channels)
    # Read by hand: a loader's pass draws from the global RNG and would shift the noise.
    batches = []
    for lo in range(0, len(keep), 64):
        b = items.batch(keep[lo:lo + 64])
        batches.append((to_device(to_model_input(b, device, augment=False), device),
                        b["labels"].to(device)))

    def loss(model: torch.nn.Module) -> torch.Tensor:
        model.eval()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train()  # batch statistics; the running ones are restored by lca()
        total = sum(loss_fn(model(x).float(), y) * len(y) for x, y in batches)
        return total / len(keep)

    return loss


def selection_score(row: dict | None) -> tuple[float, float]:
    """Checkpoint selection: validation malignant AUC, higher first. When a validation split
    has no malignant breast (small real data sets) the AUC is NaN for every epoch and the
    lower validation loss decides instead."""
    if row is None:
        return (-math.inf, -math.inf)
    val_auc, val_loss = row["val_auc_malignant"], row["val_loss"]
    if math.isfinite(val_auc):
        return (val_auc, 0.0)
    return (-math.inf, -val_loss if math.isfinite(val_loss) else -math.inf)


# OGM-GE's reference optimiser (GeWu-Lab/OGM-GE_CVPR2022 main.py, 246-247: SGD with momentum
# 0.9 and weight decay 1e-4 on every parameter, StepLR x0.1 after 70 of its 100 epochs,
# stepped once per epoch, line 159). Our runs are shorter: the decay comes after the same
# share of the epochs, ceil(0.7 * epochs), once (4 of 5 at the laptop profile, 70 of 100).
SGD_MOMENTUM, SGD_WEIGHT_DECAY = 0.9, 1e-4
SGD_DECAY, SGD_DECAY_AT = 0.1, (7, 10)  # the factor, and after this share of the epochs


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """The config's optimiser over the trainable parameters (Adam, or SGD as OGM-GE's
    reference); with `group_lr` (Split Learning Rates), one parameter group per theta_CC /
    theta_MLO / theta_shared with its own learning rate."""
    if not cfg.group_lr:
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        groups = [{"params": [p for p in ps if p.requires_grad], "lr": cfg.group_lr[name],
                   "name": name} for name, ps in model.param_groups().items()]
        params = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=SGD_MOMENTUM,
                               weight_decay=SGD_WEIGHT_DECAY)
    return torch.optim.Adam(params, lr=cfg.lr, fused=True)


def decay_epoch(epochs: int) -> int:
    """The first epoch at the decayed rate: ceil(0.7 * epochs), in integers (70 of 100)."""
    num, den = SGD_DECAY_AT
    return -(-num * epochs // den)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig
                   ) -> torch.optim.lr_scheduler.StepLR | None:
    """SGD's learning-rate schedule (the reference's StepLR, stepped after each epoch); none
    for Adam, which the paper trains at a constant rate."""
    if cfg.optimizer != "sgd":
        return None
    return torch.optim.lr_scheduler.StepLR(optimizer, decay_epoch(cfg.epochs), SGD_DECAY)


def make_model(cfg: RunConfig, store: Path) -> torch.nn.Module:
    """The run's model at initialisation: Modality Dropout rates, and for Pretraining the
    views copied from the best checkpoints of the `init_from` uni-view runs (then frozen
    when only the output layer is fine-tuned)."""
    model = build_model(cfg.model, cfg.channels, cfg.view_dropout)
    if cfg.init_from:
        if cfg.model not in ("joint", "joint_blend"):
            raise ValueError(f"Pretraining initialises a Joint ResNet, not {cfg.model!r}")
        if cfg.finetune == "output" and cfg.model != "joint":
            raise ValueError("fine-tuning the output layer alone is for Joint ResNet: "
                             f"{cfg.model!r} has extra heads that would stay untrained")
        states = {}
        for view, ref in cfg.init_from.items():
            path = store / ref / "best.pt"
            if not path.exists():
                raise FileNotFoundError(f"{path}: the pretrained {view} run has no best "
                                        "checkpoint (train it first)")
            states[view] = torch.load(path, map_location="cpu", weights_only=True)
        model.init_views(states)
        if cfg.finetune == "output":
            model.freeze_views()
    return model


def train(cfg: RunConfig, store: Path | None = None) -> RunDir:
    """Run `cfg` into the store (or resume it, or return at once if it is finished), on
    the config's number of CPU threads."""
    run = RunDir(cfg, store)
    if run.finished:
        return run
    with cpu_threads(cfg.threads):
        return run_protocol(cfg, run)


class Diverged(Exception):
    """The training loss turned non-finite: the run ends as `diverged`, with this reason."""


def train_file(path: Path, store: Path | None = None) -> RunDir:
    """`train` on a run config saved as JSON: what a job runs (`python -m mvlib train`, a
    SLURM array task)."""
    try:
        cfg = RunConfig.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise SystemExit(f"{path}: not a run config ({e})") from e
    return train(cfg, store)


@dataclass
class Setup:
    """What a run trains with: its config, data, device, model, optimiser and schedule, the
    epoch loader and its balancing method (OGM-GE or re-balancing), if any."""
    cfg: RunConfig
    data: BreastDataset
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.StepLR | None
    loader: Batches
    ogm: OGMGE | None = None
    rebalancer: Rebalancer | None = None


@dataclass
class EpochRecord:
    """What one epoch of training leaves: its training metrics, each iteration's gradient
    norms, the LCA windows and the balancing method's per-step records."""
    fit: dict
    norms: list[dict] = field(default_factory=list)
    lca: list[dict] = field(default_factory=list)
    balance: list[dict] = field(default_factory=list)


def forward(s: Setup, x: dict) -> tuple[torch.Tensor, dict | None, dict | None,
                                        torch.Tensor | None]:
    """The forward pass as the run's method needs it: (joint logits, Gradient Blending's
    heads, each view's h for a balancing method, the re-balancing step's held-view logits)."""
    heads = h = held = None
    with autocast(s.device):
        if s.cfg.blend_weights:  # Gradient Blending: the joint and the two extra heads
            heads = s.model.heads(x)
            logits = heads["joint"]
        elif s.ogm or s.rebalancer:  # the balancing methods read each view's h
            h = s.model.view_parts(x)
            if s.rebalancer:
                logits, held = s.rebalancer.logits(s.model, h)
            else:
                logits = s.model.fuse_parts(h)
        else:
            logits = s.model(x)
    return logits, heads, h, held


def optimizer_step(s: Setup, groups: dict, h: dict | None, y: torch.Tensor,
                   at: dict) -> list[dict]:
    """The optimiser's step with the balancing method in its place: OGM-GE modulates the
    gradients before it, re-balancing measures the views' speed before it and advances
    after it. Returns the method's records of this step."""
    records = []
    if s.ogm:
        records.append({**at, **s.ogm.modulate(h, y)})
    if s.rebalancer:
        s.rebalancer.measure(groups)
    s.optimizer.step()
    if s.rebalancer:
        records.append({**at, **s.rebalancer.advance(h, at["epoch"])})
    return records


class OnlineLCA:
    """Loss Change Allocation over windows of `lca_every` iterations of one epoch (Appendix
    A), on the epoch's own sample: each window's start and end parameters and the loss path
    between them, the end's evaluation carried to the next window's start."""

    def __init__(self, s: Setup, epoch: int):
        self.s, self.epoch = s, epoch
        self.loss = epoch_loss(s.data, s.loader.sampler.epoch_indices(epoch), s.cfg.channels,
                               s.device)
        self.start, self.start_eval = clone_state(s.model), None
        self.windows: list[dict] = []

    def after_step(self, it: int, last: bool) -> None:
        """Close a window at every `lca_every`-th iteration and at the epoch's last."""
        cfg, model = self.s.cfg, self.s.model
        if not ((it + 1) % cfg.lca_every == 0 or last):
            return
        end = clone_state(model)
        r = lca(model, self.start, end, self.loss, max_splits=cfg.lca_max_splits,
                start_eval=self.start_eval)
        rk4 = r.levels[0]  # before refinement: what RK4 alone gives
        self.windows.append({"epoch": self.epoch, "iteration": it, **r.groups,
                             "actual": r.actual, "allocated": r.allocated, "error": r.error,
                             "splits": r.splits,
                             **{f"{RK4}{g}": v for g, v in rk4.groups.items()},
                             f"{RK4}error": rk4.error})
        self.start, self.start_eval = end, r.end_eval  # same loss within the epoch
        model.train()


def train_one_epoch(s: Setup, epoch: int) -> EpochRecord:
    """One epoch of the sampler's draw, random windows, the optimiser; every iteration the
    gradient norm of each parameter group, with `lca_every` online LCA windows on this
    epoch's own sample, and with a balancing method its step. Raises Diverged."""
    cfg, model = s.cfg, s.model
    s.loader.sampler.set_epoch(epoch)
    torch.manual_seed(epoch_seed(cfg.seed, epoch, 0))  # the input-noise layer
    windows = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 1))
    if s.ogm:
        s.ogm.start_epoch(epoch, epoch_seed(cfg.seed, epoch, 3))
    groups = model.param_groups()
    model.train()
    online_lca = OnlineLCA(s, epoch) if cfg.lca_every else None
    record, losses, probs, labels = EpochRecord(fit={}), [], [], []
    for it, batch in enumerate(s.loader):
        x = to_device(to_model_input(batch, s.device, augment=True, generator=windows),
                      s.device)
        y = batch["labels"].to(s.device)
        logits, heads, h, held = forward(s, x)
        loss = (blended_loss(heads, y, cfg.blend_weights) if cfg.blend_weights
                else loss_fn(logits.float(), y))
        if not torch.isfinite(loss):
            raise Diverged(f"non-finite training loss {loss.item()} at epoch {epoch}")
        # a re-balancing step holding the caring view's input adds that view's own loss
        objective = loss if held is None else loss + loss_fn(held.float(), y)
        s.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        at = {"epoch": epoch, "iteration": it}
        record.norms.append({**at, **group_grad_norms(groups)})
        record.balance += optimizer_step(s, groups, h, y, at)
        losses.append(loss.item())
        if online_lca:
            online_lca.after_step(it, last=it + 1 == len(s.loader))
        probs.append(torch.sigmoid(logits.detach().float()).cpu().numpy())
        labels.append(batch["labels"].numpy())
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    record.fit = {"train_loss": float(np.mean(losses)),
                  "train_auc_malignant": auc(labels[:, 0], probs[:, 0]),
                  "train_auc_benign": auc(labels[:, 1], probs[:, 1])}
    record.lca = online_lca.windows if online_lca else []
    return record


def evaluate(model: torch.nn.Module, data: BreastDataset, cfg: RunConfig,
             device: torch.device) -> tuple[dict, pd.DataFrame]:
    """The checkpoint on the validation split (whole crops): its loss and AUCs, for a
    two-view model also with CC only and MLO only (view reliance during training), and with
    `checkpoint_curves` the same for the training split evaluated alike. Returns (metrics,
    per-breast validation predictions)."""
    val = predict(model, eval_loader(data, "val", channels=cfg.channels), device, reliance=True)
    row = {"val_loss": val.attrs["loss"], **{f"val_{k}": v for k, v in scores(val).items()}}
    if cfg.checkpoint_curves:  # the training split as validation sees it, at this checkpoint
        fit = predict(model, eval_loader(data, "train", channels=cfg.channels), device)
        row.update({"train_eval_loss": fit.attrs["loss"],
                    **{f"train_eval_{k}": v for k, v in scores(fit).items()}})
    return row, val


def setup(cfg: RunConfig, run: RunDir) -> Setup:
    """The run's data, model, optimiser, schedule, loader and balancing method, as at
    initialisation."""
    device = pick_device()
    data = prepare(cfg.dataset, cfg.profile, cfg.data_root, progress=False, **cfg.knobs)
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, run.store).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    ogm = OGMGE(model, cfg.ogm_alpha, cfg.epochs, cfg.ogm_fc) if cfg.ogm_alpha else None
    rebalancer = Rebalancer(**cfg.rebalance) if cfg.rebalance else None
    loader = train_loader(data, cfg.seed, cfg.batch_size, cfg.channels,
                          unit=cfg.sampling, fraction=cfg.epoch_fraction,
                          pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise ValueError(f"{data.root}: the training split has no breast to draw an epoch "
                         "from (no biopsied exam and no biopsy-free one)")
    return Setup(cfg, data, device, model, optimizer, make_scheduler(optimizer, cfg), loader,
                 ogm, rebalancer)


def resume(run: RunDir, s: Setup) -> tuple[list[dict], dict]:
    """Restore the last finished epoch's state from last.pt, if any: (metrics so far, the
    best epoch). A damaged last.pt is set aside and the run starts again, with a warning."""
    try:
        checkpoint = run.load("last.pt")
    except DamagedCheckpoint as e:  # a full disk, a copy gone wrong: start again, say so
        moved = run.set_aside("last.pt")
        warnings.warn(f"{e}; moved to {moved.name}, and the run restarts from its first "
                      "epoch (last.pt was its only saved state)", stacklevel=3)
        checkpoint = None
    if checkpoint is None:
        return [], {"epoch": -1, "val_auc": -math.inf}
    s.model.load_state_dict(checkpoint["model"])
    s.optimizer.load_state_dict(checkpoint["optimizer"])
    if s.scheduler:
        s.scheduler.load_state_dict(checkpoint["scheduler"])
    if s.rebalancer:
        s.rebalancer.load_state_dict(checkpoint["rebalance"])
    return checkpoint["metrics"], checkpoint["best"]


def save_epoch(run: RunDir, s: Setup, epoch: int, record: EpochRecord,
               val: pd.DataFrame | None, metrics: list[dict], best: dict) -> None:
    """One finished epoch into the run's folder: its instruments' records, the validation
    predictions (`checkpoint_curves`), last.pt to resume from, and the metrics."""
    run.write_dynamics(epoch, "grad_norms", record.norms)
    if s.cfg.checkpoint_curves and val is not None:  # per breast: Table 5 weights on a subset
        run.write_dynamics(epoch, "val_predictions", val.assign(epoch=epoch).to_dict("records"))
    if record.lca:
        run.write_dynamics(epoch, "lca", record.lca)
    if record.balance:
        run.write_dynamics(epoch, "balance", record.balance)
    run.save("last.pt", {"model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
                         "metrics": plain(metrics), "best": plain(best),
                         **({"scheduler": s.scheduler.state_dict()} if s.scheduler else {}),
                         **({"rebalance": s.rebalancer.state_dict()} if s.rebalancer else {})})
    run.write_metrics(metrics)


def run_protocol(cfg: RunConfig, run: RunDir) -> RunDir:
    """The paper's protocol for one run, top to bottom: epochs of training with the
    instruments, validation and checkpoints, then the test predictions and (runs without
    LCA) each view's part of the best checkpoint's decision (mvlib.engine.view_parts)."""
    run.create()
    s = setup(cfg, run)
    metrics, best = resume(run, s)
    run.set_status(state="running")
    if cfg.checkpoint_curves and not metrics:  # Gradient Blending's window starts untrained
        initial, val = evaluate(s.model, s.data, cfg, s.device)
        run.write_initial(initial, val)

    # Bars show in a terminal only (disable=None), so notebooks and logs stay clean.
    for epoch in tqdm(range(len(metrics), cfg.epochs), desc=cfg.model, unit="epoch",
                      initial=len(metrics), total=cfg.epochs, disable=None, leave=False):
        start = time.perf_counter()
        try:
            record = train_one_epoch(s, epoch)
        except Diverged as e:
            run.set_status(state="diverged", epoch=epoch, reason=str(e))
            return run
        if s.scheduler:  # after the epoch's training, as the reference's train_epoch
            s.scheduler.step()
        row, val = {"epoch": epoch, **record.fit}, None
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            checked, val = evaluate(s.model, s.data, cfg, s.device)
            if not math.isfinite(checked["val_loss"]):
                run.set_status(state="diverged", epoch=epoch,
                               reason=f"non-finite validation loss at epoch {epoch}")
                return run
            row.update(checked)
        row["seconds"] = time.perf_counter() - start
        metrics.append(row)
        if val is not None and selection_score(row) > selection_score(
                metrics[best["epoch"]] if best["epoch"] >= 0 else None):
            best = {"epoch": epoch, "val_auc": row["val_auc_malignant"]}
            run.save("best.pt", s.model.state_dict())
        save_epoch(run, s, epoch, record, val, metrics, best)

    s.model.load_state_dict(run.load("best.pt"))
    test = predict(s.model, eval_loader(s.data, "test", channels=cfg.channels), s.device,
                   n_windows=cfg.tta_windows, seed=epoch_seed(cfg.seed, cfg.epochs, 2))
    run.write_predictions(test)
    if not cfg.lca_every:  # in the worker, beside the others, not later in the notebook
        run_reliance(run)
    run.set_status(state="done", best_epoch=best["epoch"], best_val_auc=best["val_auc"],
                   best_val_loss=metrics[best["epoch"]]["val_loss"],
                   test_auc=scores(test)["auc_malignant"], test_loss=test.attrs["loss"])
    return run
