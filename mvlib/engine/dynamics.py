"""Training-dynamics instruments (the paper's Section 5 and Appendix A):
per-group gradient norms, and Loss Change Allocation (Lan et al. 2019).

LCA splits a loss change L(end) - L(start) among the parameters along the straight path
between two parameter states: LCA_i = integral of dL/dtheta_i along the path times
(end_i - start_i), integrated with composite Simpson's rule. Negative LCA = the parameter
helped. The loss must be a function of the parameters alone (fixed examples, no noise, a
fixed BatchNorm mode); then the allocations sum to the actual change up to the quadrature
error, which is reported. Buffers are not on the path: the model ends in the `end` state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd
import torch

RK4 = "rk4_"  # prefix of the columns an online LCA window records before refinement


def group_grad_norms(groups: dict[str, list[torch.nn.Parameter]]) -> dict[str, float]:
    """Euclidean norm of the current gradient of each parameter group (theta_CC, ...), for
    the groups of `model.param_groups()` (built once per run: this runs every iteration)."""
    norms = {name: torch.nn.utils.get_total_norm(grads) for name, ps in groups.items()
             if (grads := [p.grad for p in ps if p.grad is not None])}
    # One transfer for all groups; the norms stay on the gradients' device until then.
    stacked = torch.stack(list(norms.values())).tolist() if norms else []
    values = dict(zip(norms, stacked, strict=True))
    return {name: values.get(name, 0.0) for name in groups}  # no gradient (e.g. frozen): 0


class Level(NamedTuple):
    """One refinement level of `lca`: Simpson sub-intervals, error, group sums."""

    splits: int
    error: float
    groups: dict[str, float]


@dataclass
class LCAResult:
    """Allocations per parameter (same shapes), their group sums, the actual loss change,
    the error (actual - allocated) and the number of Simpson sub-intervals used. `levels`
    holds every refinement level tried, coarsest first, which shows what the refinement
    changed (the last level is the result)."""

    per_param: dict[str, torch.Tensor]
    groups: dict[str, float]
    actual: float
    error: float
    splits: int
    levels: list[Level] = field(default_factory=list)
    end_eval: tuple[float, dict[str, torch.Tensor]] = field(default=None, repr=False)

    @property
    def allocated(self) -> float:
        return self.actual - self.error


def simpson_weights(n: int) -> list[float]:
    """Composite Simpson weights on n (even) sub-intervals of [0, 1]: 1,4,2,...,4,1 / 3n."""
    if n < 2 or n % 2:
        raise ValueError(f"Simpson's rule needs an even number of sub-intervals, got {n}")
    w = [1.0] + [4.0 if k % 2 else 2.0 for k in range(1, n)] + [1.0]
    return [x / (3 * n) for x in w]


LCA_TOL = 1e-3  # the |error| a window's allocation aims for (the paper's set-up keeps it)


def lca(model: torch.nn.Module, start: dict[str, torch.Tensor], end: dict[str, torch.Tensor],
        loss_fn: Callable[[torch.nn.Module], torch.Tensor], splits: int = 2,
        tol: float = LCA_TOL, max_splits: int = 32,
        start_eval: tuple[float, dict[str, torch.Tensor]] | None = None) -> LCAResult:
    """Allocate L(end) - L(start) to every parameter along the straight path start -> end.

    `start`, `end`: state dicts; `loss_fn(model)` evaluates the loss on a fixed set (it
    should put the model in eval mode, with no augmentation or noise). The number of
    sub-intervals doubles from `splits` while |error| > `tol`, up to `max_splits`. Groups come
    from `model.param_groups()` when the model has them (else one group, "all"). The model
    ends in the `end` state. Consecutive windows on the same loss can pass the previous
    result's `end_eval` (loss and gradient at its end) as `start_eval`, saving one
    evaluation per window.
    """
    names = [n for n, _ in model.named_parameters()]
    a = {n: start[n].detach().float() for n in names}
    delta = {n: end[n].detach().float() - a[n] for n in names}
    model.load_state_dict(start)
    params = dict(model.named_parameters())
    cache: dict[float, tuple[float, dict[str, torch.Tensor]]] = {}
    if start_eval is not None:
        cache[0.0] = start_eval

    def at(t: float) -> tuple[float, dict[str, torch.Tensor]]:
        if t not in cache:
            with torch.no_grad():
                for n in names:
                    params[n].copy_(a[n] + t * delta[n])
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model)
            loss.backward()
            cache[t] = (loss.item(), {n: params[n].grad.detach().clone() for n in names})
        return cache[t]

    named_groups = (model.param_groups() if hasattr(model, "param_groups")
                    else {"all": list(params.values())})
    owner = {id(p): g for g, ps in named_groups.items() for p in ps}
    if (missing := [n for n in names if id(params[n]) not in owner]):
        raise ValueError(f"parameters in no group of model.param_groups(): {missing}")
    actual = at(1.0)[0] - at(0.0)[0]
    n, levels = splits, []
    while True:
        weights = simpson_weights(n)
        mean_grad = {k: torch.zeros_like(v) for k, v in delta.items()}
        for k, w in enumerate(weights):
            for name, g in at(k / n)[1].items():
                mean_grad[name] += w * g
        per_param = {k: mean_grad[k] * delta[k] for k in names}
        groups = dict.fromkeys(named_groups, 0.0)
        for name in names:
            groups[owner[id(params[name])]] += float(per_param[name].sum())
        error = actual - sum(groups.values())
        levels.append(Level(n, error, groups))
        if abs(error) <= tol or n >= max_splits:
            break
        n *= 2
    model.load_state_dict(end)
    model.zero_grad(set_to_none=True)
    return LCAResult(per_param, groups, actual, error, n, levels, end_eval=cache[1.0])


def mlo_share(windows: pd.DataFrame, prefix: str = "") -> float:
    """theta_MLO's share of the loss reduction allocated over online LCA windows (NaN when
    the loss did not go down); `prefix` RK4 reads the windows' unrefined allocations, NaN for
    records made before they were kept."""
    cols = [f"{prefix}{g}" for g in ("cc", "mlo", "shared")]
    if not set(cols) <= set(windows) or windows[cols].isna().any().any():
        return math.nan
    cc, mlo, shared = (float(windows[c].sum()) for c in cols)
    reduction = -(cc + mlo + shared)
    return -mlo / reduction if reduction > 0 else math.nan
