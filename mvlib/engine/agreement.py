"""Does a device compute what the CPU computes? One training step compared tensor by tensor.

The same weights and the same batch go through forward and backward once in a reference
set-up (the CPU in fp64) and once in the set-up under test (the CPU in fp32, CUDA in fp32
without TF32, CUDA with bf16 autocast): the logits, the loss and every parameter's gradient
are compared by their relative L2 error, against tolerances set by the dtype under test
(`TOLERANCES`); and one fixed checkpoint scores the test split in both (its AUC and the
largest change of a probability). A training run's AUC is no such check: training amplifies
any change of rounding, so two correct set-ups end apart and a broken one can end close.
The input noise is switched off in both (its draw differs between devices and dtypes); the
step runs in training mode, so BatchNorm normalises with the batch's statistics.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from mvlib.data.loader import VIEWS, eval_loader, view_input
from mvlib.data.store import BreastDataset
from mvlib.data.windows import full_window
from mvlib.models.heads import InputNoise

# Largest relative L2 error ||a - b|| / ||b|| allowed against the fp64 reference, by the
# dtype under test: fp32 rounds at 6e-8 and the step's sums grow that by a few orders of
# magnitude at most (measured at trained smoke and laptop checkpoints: gradients 1e-4 and
# 2e-6); bf16 rounds at 4e-3 (8 bits of mantissa) in every convolution (CPU bf16 autocast
# at a trained laptop checkpoint: logits 1.4e-3, loss 3e-4, gradients up to 0.2; at the
# smoke size, 64x48 pixels, bf16 gradients differ by about their own size, so bf16 is
# checked at the laptop size). At initialisation BatchNorm's gradients are ill-conditioned
# (fp32 alone moves some by percents): the check wants a trained checkpoint.
# Gradients: the largest error over parameters whose gradient norm is at least 1e-3 of the
# largest one's (smaller ones are relative noise on nothing). AUC: the fixed checkpoint's
# test AUC may move by this much (a swap of two close scores on a small test split).
TOLERANCES = {"fp32": {"logits": 1e-4, "loss": 1e-5, "grads": 1e-3, "auc": 1e-3,
                       "probability": 1e-4},
              "bf16": {"logits": 5e-2, "loss": 2e-2, "grads": 5e-1, "auc": 2e-2,
                       "probability": 2e-2}}
SMALL_GRADIENT = 1e-3  # relative to the largest gradient norm: left out of "grads"


@dataclass(frozen=True)
class Setting:
    """Where and in what precision a step runs: device "cpu" or "cuda", dtype "fp64",
    "fp32" (TF32 off on CUDA) or "bf16" (autocast; the output layer stays fp32)."""
    device: str
    dtype: str

    def __str__(self) -> str:
        return f"{self.device} {self.dtype}"


REFERENCE = Setting("cpu", "fp64")


@contextlib.contextmanager
def _precision(s: Setting) -> Iterator[None]:
    """The block in `s`'s arithmetic: autocast for bf16, TF32 off for fp32 on CUDA."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if s.dtype == "fp32":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    cast = (torch.autocast(s.device, dtype=torch.bfloat16) if s.dtype == "bf16"
            else contextlib.nullcontext())
    try:
        with cast:
            yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _placed(model: torch.nn.Module, s: Setting) -> torch.nn.Module:
    """A copy of `model` on `s`'s device, in fp64 for the reference, its input noise off."""
    out = copy.deepcopy(model).to(s.device, memory_format=torch.channels_last)
    if s.dtype == "fp64":
        out = out.double()
    for m in out.modules():
        if isinstance(m, InputNoise):
            m.std = 0.0
    return out


def _inputs(x: dict[str, torch.Tensor], s: Setting) -> dict[str, torch.Tensor]:
    dtype = torch.float64 if s.dtype == "fp64" else torch.float32
    return {v: t.to(s.device, dtype).contiguous(memory_format=torch.channels_last)
            for v, t in x.items()}


def step_outputs(model: torch.nn.Module, x: dict[str, torch.Tensor], labels: torch.Tensor,
                 s: Setting) -> dict:
    """One training step's forward and backward of a copy of `model` in `s`: the logits, the
    loss (the sum over both tasks of the mean binary cross-entropy, as training's) and each
    parameter's gradient, all as fp64 on the CPU."""
    m = _placed(model, s).train()
    with _precision(s):
        logits = m(_inputs(x, s))
    logits = logits.double() if s.dtype == "fp64" else logits.float()
    y = labels.to(s.device, logits.dtype)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, y, reduction="none").mean(0).sum()
    loss.backward()
    return {"logits": logits.detach().cpu().double(), "loss": loss.detach().cpu().double(),
            "grads": {n: p.grad.detach().cpu().double() for n, p in m.named_parameters()
                      if p.grad is not None}}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def compare_steps(test: dict, reference: dict, dtype: str) -> dict:
    """The relative L2 errors of `test`'s logits, loss and gradients against `reference`'s
    (`step_outputs`), the parameter with the largest gradient error, and whether every one is
    within `TOLERANCES[dtype]`. A parameter missing a gradient on one side fails."""
    tol = TOLERANCES[dtype]
    ref_grads = reference["grads"]
    missing = sorted(set(ref_grads) ^ set(test["grads"]))
    norms = {n: float(g.norm()) for n, g in ref_grads.items()}
    floor = SMALL_GRADIENT * max(norms.values(), default=0.0)
    errors = {n: _relative(test["grads"][n], g) for n, g in ref_grads.items()
              if n in test["grads"] and norms[n] >= floor}
    worst = max(errors, key=errors.get) if errors else None
    out = {"logits": _relative(test["logits"], reference["logits"]),
           "loss": _relative(test["loss"], reference["loss"]),
           "grads": errors[worst] if worst else float("nan"), "worst_parameter": worst,
           "parameters_compared": len(errors), "missing_gradients": missing}
    out["within"] = bool(not missing and all(out[k] <= tol[k] for k in ("logits", "loss",
                                                                          "grads")))
    return out


@torch.no_grad()
def checkpoint_scores(model: torch.nn.Module, data: BreastDataset, split: str, s: Setting,
                      channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A checkpoint's malignant probability per breast of `split` (whole crops, eval mode)
    in `s`, and the labels."""
    m = _placed(model, s).eval()
    probs, labels = [], []
    for batch in eval_loader(data, split, channels=channels):
        x = _inputs({v: full_window(view_input(batch, v, torch.device("cpu"))) for v in VIEWS}, s)
        with _precision(s):
            logits = m(x)
        probs.append(torch.sigmoid(logits.double()[:, 0]).cpu().numpy())
        labels.append(batch["labels"][:, 0].numpy())
    return np.concatenate(probs), np.concatenate(labels)


def compare_checkpoint(model: torch.nn.Module, data: BreastDataset, test: Setting,
                       split: str = "test", channels: int = 3) -> dict:
    """A fixed checkpoint on `split` in `test` against the reference: both AUCs, the AUC's
    change and the largest change of a probability, within `TOLERANCES[test.dtype]`."""
    p_ref, y = checkpoint_scores(model, data, split, REFERENCE, channels)
    p, _ = checkpoint_scores(model, data, split, test, channels)
    tol = TOLERANCES[test.dtype]
    auc_ref, auc = roc_auc_score(y, p_ref), roc_auc_score(y, p)
    out = {"auc_reference": float(auc_ref), "auc": float(auc),
           "auc_change": float(abs(auc - auc_ref)),
           "probability": float(np.abs(p - p_ref).max())}
    out["within"] = bool(out["auc_change"] <= tol["auc"]
                         and out["probability"] <= tol["probability"])
    return out


def check(model: torch.nn.Module, x: dict[str, torch.Tensor], labels: torch.Tensor,
          settings: list[Setting], data: BreastDataset | None = None) -> dict:
    """Each setting's step (and, with `data`, the checkpoint's test scores) against the CPU
    in fp64: {str(setting): {"step": ..., "checkpoint": ...}}, and "within" for all."""
    reference = step_outputs(model, x, labels, REFERENCE)
    out = {}
    for s in settings:
        row = {"step": compare_steps(step_outputs(model, x, labels, s), reference, s.dtype)}
        if data is not None:
            row["checkpoint"] = compare_checkpoint(model, data, s)
        out[str(s)] = row
    out["within"] = all(r["step"]["within"] and r.get("checkpoint", {"within": True})["within"]
                        for k, r in out.items() if k != "within")
    return out
