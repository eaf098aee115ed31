"""Greedy-learning re-balancing, adapted to Joint ResNet's sum fusion (our adaptation of
Wu, Jastrzebski, Cho & Geras, "Characterizing and overcoming the greedy nature of learning in
multi-modal deep neural networks", ICML 2022; code: nyukat/greedy_multimodal_learning).

Their algorithm balances the conditional learning speeds of the modalities by alternating
regular steps with re-balancing steps that train one modality's branch through MMTM fusion
layers. Joint ResNet has no such layers, so here a re-balancing step replaces the faster
view's representation h by its running mean (a detached constant): only the slower view's
column and FC and the output layer learn (the faster view's parameters get no gradient, and
Adam leaves a parameter without gradient untouched).

  mu_v  = the cumulative sum over regular steps of ||g_v||^2 / ||theta_v||^2, over the view's
          column and FC-512 (ratio of sums over the group's tensors; raw loss gradients,
          before the optimiser step): the proxy of its learning speed;
  d     = log10(mu_cc / mu_mlo), checked after every regular step from the second epoch;
          when |d| > epsilon (reference default 0.01) the next `steps` (Q, default 5) steps
          re-balance, with the faster view (d > 0: CC) held at its running mean;
  mean  = the running mean of each view's h over the regular steps' mini-batches.
The state (mu, the means, the pending re-balancing steps) is saved with each checkpoint, so a
resumed run continues exactly where an uninterrupted one would be.
"""

from __future__ import annotations

import math

import torch

VIEWS = ("cc", "mlo")
EPSILON, STEPS = 0.01, 5  # the reference's defaults


class Rebalancer:
    """The re-balancing state of one run, used at three places of each training step:
    `inputs` where the representations are fused, `measure` after backward() and `advance`
    after the optimiser step."""

    def __init__(self, epsilon: float = EPSILON, steps: int = STEPS):
        if not epsilon >= 0 or steps < 1:
            raise ValueError(f"re-balancing needs epsilon >= 0 and steps >= 1, got "
                             f"{epsilon}, {steps}")
        self.epsilon, self.steps = float(epsilon), int(steps)
        self.mu = {v: 0.0 for v in VIEWS}
        self.mean: dict[str, torch.Tensor | None] = {v: None for v in VIEWS}
        self.regular_steps = 0
        self.pending = 0  # re-balancing steps still to take
        self.faster: str | None = None  # the view held at its mean while pending

    @property
    def rebalancing(self) -> bool:
        return self.pending > 0

    def inputs(self, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The representations to fuse: during a re-balancing step, the faster view's h is
        replaced by its running mean (no gradient flows into that view)."""
        if not self.rebalancing:
            return h
        v = self.faster
        return {**h, v: self.mean[v].to(h[v].device, h[v].dtype).expand_as(h[v])}

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
    def advance(self, h: dict[str, torch.Tensor], epoch: int) -> dict:
        """After the optimiser step: a regular step updates the running means and, from the
        second epoch, may schedule re-balancing steps; a re-balancing step counts down.
        Returns the step's record."""
        record = {"rebalancing": self.rebalancing, "held": self.faster or "",
                  "mu_cc": self.mu["cc"], "mu_mlo": self.mu["mlo"]}
        if self.rebalancing:
            self.pending -= 1
            if not self.pending:
                self.faster = None
            return {**record, "d": math.nan}
        n = self.regular_steps
        for v in VIEWS:
            batch = h[v].detach().float().mean(dim=0)
            self.mean[v] = batch if self.mean[v] is None else (self.mean[v] * n + batch) / (n + 1)
        self.regular_steps = n + 1
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
                "pending": self.pending, "faster": self.faster}

    def load_state_dict(self, state: dict) -> None:
        self.mu = {v: float(state["mu"][v]) for v in VIEWS}
        self.mean = {v: state["mean"][v] for v in VIEWS}
        self.regular_steps, self.pending = int(state["regular_steps"]), int(state["pending"])
        self.faster = state["faster"]
