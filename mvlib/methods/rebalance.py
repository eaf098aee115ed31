"""Greedy-learning re-balancing, adapted to Joint ResNet's sum fusion (our adaptation of
Wu, Jastrzebski, Cho & Geras, "Characterizing and overcoming the greedy nature of learning in
multi-modal deep neural networks", ICML 2022; code: nyukat/greedy_multimodal_learning, read
at a190e03; the line numbers below are that commit's).

What the reference does (src/callbacks.py, Bias_Mitigation_Strong; src/balanced_mmtm.py):
  * speeds: per modality, the cumulative sum from the first step of ||g||^2 / ||theta||^2
    (ratio of sums over a parameter group, raw gradients before the step; callbacks.py
    199-228), measured on regular steps only (243: `compute_BDR` runs only outside
    curation mode; every step of the first epoch, 260-263);
  * schedule: from the second epoch (starting_epoch 2 of 1-based epochs: 265-267,
    framework.py 293-294; configs/training_guided.gin 16), after each regular step's
    backward, |d| > epsilon (0.01, gin 14) starts a window of Q = 5 re-balancing steps (gin
    15; 244-252, 256-259), after which the next step is regular again. Nothing else ends it:
    while d stays outside +-epsilon, Q of every Q + 1 steps re-balance until training stops
    (CompletedStopping, 5 epochs at 100% training accuracy, gin 10-13 and callbacks.py
    318-326, or 300 epochs, gin 24). Since d moves on regular steps only, a 5-in-6 share
    is the reference's own behaviour too;
  * a re-balancing step trains EVERY parameter (framework.py 310-315: the optimiser steps in
    curation mode as in any step); only the caring modality's cross-modal input, its MMTM
    excitation computed from both modalities, is replaced by its running mean
    (balanced_mmtm.py 128-152), so that branch learns as if alone, while the other
    modality's excitation still reads both. The running mean is updated at every forward,
    re-balancing steps included (113-116).

Joint ResNet has no MMTM layers; its one cross-view coupling is the shared logit
z = W (h_cc + h_mlo) + b, through which each column's gradient depends on the other view. The
adaptation, `hold`:
  * "input" (Table 7's, follows the reference): in a re-balancing step the caring (slower)
    view's column learns from the loss of W (h_slow + m_fast) + b, the faster view held at
    its running mean m (its cross-view input held; the output layer detached in that loss),
    while the faster column and the output layer take the regular step's gradient. Every
    parameter trains. The running mean of h is updated at every training step, as the
    reference's, but not during evaluation (the reference's forward also updates it on
    validation and test batches, letting held-out data into training) and from each view's
    own h (the reference's line 114 updates the second modality's mean from the first's).
  * "view" (our first adaptation, kept so that earlier runs keep their meaning): the faster
    view's h is replaced by its running mean over regular steps in the whole step, so only
    the slower column and the output layer learn (Adam leaves a parameter without gradient
    untouched). With the 5-in-6 share those models trained mostly as one column plus a
    constant, which the reference never does.

Our speed proxy (both modes) is the reference's ratio over each view's column and FC-512:
  mu_v = the cumulative sum over regular steps of ||g_v||^2 / ||theta_v||^2;
  d    = log10(mu_cc / mu_mlo): d > 0 means CC learns faster (it is held), MLO cares.
The reference's d compares each modality's fusion-layer speed with its branch speed, which
sum fusion cannot measure (no fusion parameters). The state (mu, the means, the pending
steps) is saved with each checkpoint, so a resumed run continues exactly where an
uninterrupted one would be.
"""

from __future__ import annotations

import math

import pandas as pd
import torch

VIEWS = ("cc", "mlo")
EPSILON, STEPS = 0.01, 5  # the reference's defaults
HOLDS = ("view", "input")  # what a re-balancing step holds (see the module docstring)


def other(view: str) -> str:
    return "mlo" if view == "cc" else "cc"


class Rebalancer:
    """The re-balancing state of one run, used at three places of each training step:
    `logits` where the representations are fused, `measure` after backward() and `advance`
    after the optimiser step."""

    def __init__(self, epsilon: float = EPSILON, steps: int = STEPS, hold: str = "view"):
        if not epsilon >= 0 or steps < 1 or hold not in HOLDS:
            raise ValueError(f"re-balancing needs epsilon >= 0, steps >= 1 and hold in "
                             f"{HOLDS}, got {epsilon}, {steps}, {hold!r}")
        self.epsilon, self.steps, self.hold = float(epsilon), int(steps), hold
        self.mu = {v: 0.0 for v in VIEWS}
        self.mean: dict[str, torch.Tensor | None] = {v: None for v in VIEWS}
        self.regular_steps = 0
        self.mean_steps = 0  # batches in the running means
        self.pending = 0  # re-balancing steps still to take
        self.faster: str | None = None  # the view held at its mean while pending

    @property
    def rebalancing(self) -> bool:
        return self.pending > 0

    def _held(self, h: dict[str, torch.Tensor]) -> torch.Tensor:
        v = self.faster
        return self.mean[v].to(h[v].device, h[v].dtype).expand_as(h[v])

    def inputs(self, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """hold='view': the representations to fuse; during a re-balancing step the faster
        view's h is replaced by its running mean (no gradient flows into that view)."""
        if not self.rebalancing or self.hold != "view":
            return h
        return {**h, self.faster: self._held(h)}

    def logits(self, model: torch.nn.Module, h: dict[str, torch.Tensor]
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the step's logits, the caring view's held logits or None). With hold='input' in a
        re-balancing step the first carry no gradient into the caring view, and the second,
        W (h_slow + m_fast) + b with W and b detached, train the caring column alone: the
        training objective is the sum of both losses (the first alone is reported)."""
        if not self.rebalancing or self.hold == "view":
            return model.fuse_parts(self.inputs(h)), None
        slow = other(self.faster)
        logits = model.fuse_parts({**h, slow: h[slow].detach()})
        fused = model.fuse({slow: h[slow], self.faster: self._held(h)})
        out = model.output
        with torch.autocast(fused.device.type, enabled=False):  # fp32, as the output layer
            held = torch.nn.functional.linear(fused.float(), out.weight.detach().float(),
                                              out.bias.detach().float())
        return logits, held

    @torch.no_grad()
    def measure(self, groups: dict[str, list[torch.nn.Parameter]]) -> None:
        """After backward() of a regular step: add ||g_v||^2 / ||theta_v||^2 to mu_v."""
        if self.rebalancing:
            return
        for v in VIEWS:
            ps = [p for p in groups[v] if p.grad is not None]
            if not ps:
                continue
            g2 = sum(float(p.grad.float().pow(2).sum()) for p in ps)
            w2 = sum(float(p.float().pow(2).sum()) for p in ps)
            self.mu[v] += g2 / w2 if w2 > 0 else 0.0

    @torch.no_grad()
    def _update_means(self, h: dict[str, torch.Tensor]) -> None:
        n = self.mean_steps
        for v in VIEWS:
            batch = h[v].detach().float().mean(dim=0)
            self.mean[v] = batch if self.mean[v] is None else (self.mean[v] * n + batch) / (n + 1)
        self.mean_steps = n + 1

    @torch.no_grad()
    def advance(self, h: dict[str, torch.Tensor], epoch: int) -> dict:
        """After the optimiser step: the running means take the batch (every step with
        hold='input', regular steps with 'view'); a regular step may, from the second epoch,
        schedule re-balancing steps; a re-balancing step counts down. Returns the record."""
        record = {"rebalancing": self.rebalancing, "held": self.faster or "",
                  "mu_cc": self.mu["cc"], "mu_mlo": self.mu["mlo"]}
        if self.hold == "input" or not self.rebalancing:
            self._update_means(h)
        if self.rebalancing:
            self.pending -= 1
            if not self.pending:
                self.faster = None
            return {**record, "d": math.nan}
        self.regular_steps += 1
        d = self.speed_gap()
        if epoch >= 1 and math.isfinite(d) and abs(d) > self.epsilon:
            self.pending, self.faster = self.steps, "cc" if d > 0 else "mlo"
        return {**record, "d": d}

    def speed_gap(self) -> float:
        """d = log10(mu_cc / mu_mlo); NaN until both views have a speed."""
        if self.mu["cc"] <= 0 or self.mu["mlo"] <= 0:
            return math.nan
        return math.log10(self.mu["cc"] / self.mu["mlo"])

    def state_dict(self) -> dict:
        return {"mu": dict(self.mu), "mean": dict(self.mean), "regular_steps": self.regular_steps,
                "mean_steps": self.mean_steps, "pending": self.pending, "faster": self.faster}

    def load_state_dict(self, state: dict) -> None:
        self.mu = {v: float(state["mu"][v]) for v in VIEWS}
        self.mean = {v: state["mean"][v] for v in VIEWS}
        self.regular_steps, self.pending = int(state["regular_steps"]), int(state["pending"])
        # checkpoints from before `mean_steps`: the means were over regular steps
        self.mean_steps = int(state.get("mean_steps", self.regular_steps))
        self.faster = state["faster"]


def rebalancing_share(balance: pd.DataFrame) -> pd.DataFrame:
    """Per epoch of a run's re-balancing record (`RunDir.dynamics("balance")`, from
    dynamics/balance_e*.csv): its steps, the re-balancing ones, their share, and how many held
    CC and MLO. The reference's ceiling, while |d| > epsilon, is Q / (Q + 1)."""
    cols = ["steps", "rebalancing", "share", "CC held", "MLO held"]
    if balance.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="epoch"))
    on = balance.rebalancing.astype(bool)
    held = balance.held.fillna("").astype(str)
    by = balance.epoch
    out = pd.DataFrame({"steps": by.groupby(by).size(),
                        "rebalancing": on.groupby(by).sum().astype(int),
                        "CC held": (on & (held == "cc")).groupby(by).sum().astype(int),
                        "MLO held": (on & (held == "mlo")).groupby(by).sum().astype(int)})
    out["share"] = out.rebalancing / out.steps
    out.index.name = "epoch"
    return out[cols]
