"""Loss Change Allocation and gradient norms on small models with known answers."""

import math

import pandas as pd
import pytest
import torch

from mvlib.engine.dynamics import RK4, group_grad_norms, lca, mlo_share, simpson_weights
from mvlib.models.heads import JointResNet, UniView, loss_fn


class Tiny(torch.nn.Module):
    """Two 'views' and a shared head: small enough to integrate by brute force."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.head(torch.tanh(self.a(x)) + torch.tanh(self.b(x))).squeeze(1)

    def param_groups(self):
        return {"cc": list(self.a.parameters()), "mlo": list(self.b.parameters()),
                "shared": list(self.head.parameters())}


def states(seed=0, step=0.5):
    torch.manual_seed(seed)
    m = Tiny()
    start = {k: v.clone() for k, v in m.state_dict().items()}
    end = {k: v + step * torch.randn_like(v) for k, v in start.items()}
    return m, start, end


X = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
Y = (torch.randn(32, generator=torch.Generator().manual_seed(2)) > 0).float()


def bce(model):
    return torch.nn.functional.binary_cross_entropy_with_logits(model(X), Y)


def test_simpson_weights():
    assert simpson_weights(2) == pytest.approx([1 / 6, 4 / 6, 1 / 6])
    assert sum(simpson_weights(8)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        simpson_weights(3)


def test_allocations_sum_to_the_actual_change_within_the_error():
    m, start, end = states()
    r = lca(m, start, end, bce, tol=1e-6)
    loss0 = bce_at(m, start)
    loss1 = bce_at(m, end)
    assert r.actual == pytest.approx(loss1 - loss0, abs=1e-6)
    total = sum(float(v.sum()) for v in r.per_param.values())
    assert total == pytest.approx(r.actual - r.error, abs=1e-9)
    assert sum(r.groups.values()) == pytest.approx(total, abs=1e-9)
    assert abs(r.error) <= 1e-6 or r.splits == 32
    assert set(r.groups) == {"cc", "mlo", "shared"}
    assert {k: v.shape for k, v in r.per_param.items()} == {
        k: v.shape for k, v in m.named_parameters()}


def bce_at(model, state):
    model.load_state_dict(state)
    with torch.no_grad():
        return float(bce(model))


def test_matches_a_brute_force_fine_grid_integral_per_parameter():
    m, start, end = states(seed=3)
    r = lca(m, start, end, bce, splits=2, tol=0.0, max_splits=16)  # 16 intervals, no early stop
    # Brute force: midpoint rule with 400 points along the path, per parameter.
    names = [n for n, _ in m.named_parameters()]
    total = {n: torch.zeros_like(start[n]) for n in names}
    k = 400
    for i in range(k):
        t = (i + 0.5) / k
        m.load_state_dict({n: start[n] + t * (end[n] - start[n]) for n in start})
        m.zero_grad()
        bce(m).backward()
        for n, p in m.named_parameters():
            total[n] += p.grad / k
    for n in names:
        brute = total[n] * (end[n] - start[n])
        torch.testing.assert_close(r.per_param[n], brute, atol=2e-5, rtol=1e-3)


def test_a_quadratic_loss_is_integrated_exactly_with_two_intervals():
    m, start, end = states(seed=5)
    target = {n: torch.randn_like(p) for n, p in m.named_parameters()}

    def quadratic(model):
        return sum(((p - target[n]) ** 2 * (1 + i)).sum()
                   for i, (n, p) in enumerate(model.named_parameters()))

    r = lca(m, start, end, quadratic, splits=2, tol=1e-3)
    assert r.splits == 2  # Simpson is exact for quadratics: no doubling was needed
    assert abs(r.error) < 1e-4 * max(1.0, abs(r.actual))


def test_adaptive_doubling_stops_at_the_tolerance_or_the_cap():
    m, start, end = states(seed=7, step=3.0)  # a long, curved path
    loose = lca(m, start, end, bce, splits=2, tol=1.0)
    assert loose.splits == 2
    tight = lca(m, start, end, bce, splits=2, tol=1e-12, max_splits=8)
    assert tight.splits == 8
    assert abs(tight.error) <= abs(loose.error) + 1e-12


def test_levels_record_each_refinement_coarsest_first():
    m, start, end = states(seed=7, step=3.0)
    r = lca(m, start, end, bce, splits=2, tol=1e-12, max_splits=8)
    assert [lv.splits for lv in r.levels] == [2, 4, 8] and r.splits == 8
    for level in r.levels:
        assert level.error == pytest.approx(r.actual - sum(level.groups.values()), abs=1e-12)
    for cap, level in zip((2, 4), r.levels, strict=False):  # each level = a run capped there
        capped = lca(m, start, end, bce, splits=2, tol=1e-12, max_splits=cap)
        assert level == (cap, capped.error, capped.groups)
    assert abs(r.levels[0].error) > abs(r.error)  # the long path needs the refinement
    assert lca(m, start, end, bce, splits=4, tol=1e-12, max_splits=8).levels[0].splits == 4


def test_a_parameter_outside_every_group_is_refused():
    class Partial(Tiny):
        def param_groups(self):
            return {"first": [self.a.weight]}

    torch.manual_seed(0)
    m = Partial()
    start = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="no group"):
        lca(m, start, start, bce)


def test_the_model_ends_in_the_end_state():
    m, start, end = states()
    lca(m, start, end, bce)
    for k, v in m.state_dict().items():
        assert torch.equal(v, end[k])


def test_group_grad_norms_of_joint_resnet():
    model = JointResNet(1)
    x = {"cc": torch.randn(2, 1, 64, 48), "mlo": torch.randn(2, 1, 72, 42)}
    loss_fn(model(x), torch.tensor([[1, 0], [0, 1]])).backward()
    norms = group_grad_norms(model.param_groups())
    for g, params in model.param_groups().items():
        expected = math.sqrt(sum(float((p.grad**2).sum()) for p in params))
        assert norms[g] == pytest.approx(expected, rel=1e-5)


def test_a_group_without_gradients_has_norm_zero():
    model = UniView("cc", 1)  # its MLO group is empty
    loss_fn(model({"cc": torch.randn(2, 1, 64, 48)}), torch.tensor([[1, 0], [0, 1]])).backward()
    norms = group_grad_norms(model.param_groups())
    assert norms["mlo"] == 0.0 and norms["cc"] > 0 and norms["shared"] > 0
    assert all(type(v) is float for v in norms.values())


def test_reusing_the_previous_windows_end_evaluation_changes_nothing():
    m, start, mid = states(seed=11)
    end = {k: v + 0.3 * torch.randn_like(v) for k, v in mid.items()}
    first = lca(m, start, mid, bce)
    fresh = lca(m, mid, end, bce)
    reused = lca(m, mid, end, bce, start_eval=first.end_eval)
    assert reused.actual == fresh.actual and reused.splits == fresh.splits
    for k in fresh.per_param:
        assert torch.equal(reused.per_param[k], fresh.per_param[k])


def test_mlo_share_of_the_allocated_reduction():
    w = pd.DataFrame({"cc": [-0.1, -0.1], "mlo": [-0.3, 0.0], "shared": [0.0, 0.1],
                      "rk4_cc": [-0.2, 0.0], "rk4_mlo": [-0.2, 0.0], "rk4_shared": [0.0, 0.0]})
    assert mlo_share(w) == pytest.approx(0.3 / 0.4)
    assert mlo_share(w, RK4) == pytest.approx(0.5)
    assert math.isnan(mlo_share(w.assign(shared=[0.0, 0.5])))  # the loss went up: no share
    # Records made before the RK4 columns were kept: none, or only some windows (resumed).
    assert math.isnan(mlo_share(w[["cc", "mlo", "shared"]], RK4))
    assert math.isnan(mlo_share(w.assign(rk4_mlo=[-0.2, float("nan")]), RK4))
