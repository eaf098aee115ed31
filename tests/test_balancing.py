"""The later balancing methods of notebook 08: OGM-GE (mvlib.methods.ogm) and the greedy-learning
re-balancing adapted to sum fusion (mvlib.methods.rebalance), unit by unit and inside training
(determinism, resume)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import mvlib.engine.train as train_mod
from mvlib.engine.train import decay_epoch, make_optimizer, make_scheduler, train
from mvlib.experiment.profiles import PROFILES
from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.methods import ogm
from mvlib.methods.rebalance import Rebalancer, rebalancing_share
from mvlib.models.heads import build_model, loss_fn
from mvlib.study import balancing_methods, testbed

KNOBS = {"patients": {"train": 24, "val": 16, "test": 16}}
OGM = {"ogm_alpha": 0.5}
OGM_SGD = {"ogm_alpha": 0.5, "optimizer": "sgd", "lr": 3e-3, "epochs": 4}  # decays at epoch 3
REBALANCE = {"rebalance": {"epsilon": 0.01, "steps": 3}}
REBALANCE_INPUT = {"rebalance": {"epsilon": 0.01, "steps": 3, "hold": "input"}}
METHODS = [OGM, OGM_SGD, REBALANCE, REBALANCE_INPUT]
IDS = ["ogm", "ogm_sgd", "rebalance", "rebalance_input"]


def cfg(**kw):
    base = dict(model="joint", lr=3e-4, epochs=3, profile="smoke", tta_windows=2,
                knobs=KNOBS, experiment="t")
    return RunConfig(**{**base, **kw})


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = {"cc": torch.randn(n, 3, 32, 24, generator=g),
         "mlo": torch.randn(n, 3, 36, 20, generator=g)}
    y = torch.randint(0, 2, (n, 2), generator=g)
    return x, y


def backward(model, x, y, rebalancer=None):
    model.zero_grad(set_to_none=True)
    h = model.view_parts(x)
    if rebalancer:
        h = rebalancer.inputs(h)
    loss_fn(model.fuse_parts(h), y).backward()
    return h


# --- OGM-GE ----------------------------------------------------------------------------------

@pytest.mark.parametrize("s_cc, s_mlo, alpha, expected", [
    (6.0, 3.0, 0.5, {"cc": 1 - math.tanh(0.5 * 2.0), "mlo": 1.0}),   # CC dominant, rho 2
    (3.0, 6.0, 0.5, {"cc": 1.0, "mlo": 1 - math.tanh(0.5 * 2.0)}),   # MLO dominant
    (4.0, 4.0, 0.5, {"cc": 1.0, "mlo": 1 - math.tanh(0.5)}),        # rho = 1: the else branch
    (4.4, 4.0, 1.0, {"cc": 1 - math.tanh(1.1), "mlo": 1.0}),
])
def test_the_coefficient_scales_the_dominant_view_only(s_cc, s_mlo, alpha, expected):
    k = ogm.coefficients({"cc": s_cc, "mlo": s_mlo}, alpha)
    assert k == pytest.approx(expected, abs=1e-15)
    assert all(0 < v <= 1 for v in k.values())


def test_view_scores_use_half_the_bias_and_the_correct_label_probability():
    out = torch.nn.Linear(3, 2)
    with torch.no_grad():
        out.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]]))
        out.bias.copy_(torch.tensor([0.4, -0.2]))
    h = {"cc": torch.tensor([[1.0, 2.0, 0.0]]), "mlo": torch.tensor([[0.0, 0.0, 2.0]])}
    y = torch.tensor([[1, 0]])
    s = ogm.view_scores(out, h, y)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert s["cc"] == pytest.approx(sig(1.0 + 0.2) + 1 - sig(1.5 - 0.1), abs=1e-6)
    assert s["mlo"] == pytest.approx(sig(-2.0 + 0.2) + 1 - sig(1.0 - 0.1), abs=1e-6)
    # the two views' logits sum to the model's
    z = sum(h[v] @ out.weight.T + out.bias / 2 for v in ("cc", "mlo"))
    assert torch.allclose(z, out(h["cc"] + h["mlo"]))


def test_modulation_scales_and_noises_the_convolution_kernels_only():
    torch.manual_seed(0)
    model = build_model("joint").train()
    x, y = batch()
    h = backward(model, x, y)
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    m = ogm.OGMGE(model, alpha=0.7, epochs=4)
    m.start_epoch(0, seed=123)
    rec = m.modulate(h, y)
    k = {"cc": rec["k_cc"], "mlo": rec["k_mlo"]}
    assert rec["modulated"] and sorted(k.values())[0] < 1 == sorted(k.values())[1]
    noise = torch.Generator().manual_seed(123)  # the same draws, in the same order
    kernels = {id(p) for ps in m.tensors.values() for p in ps}
    for v in ("cc", "mlo"):
        for p in m.tensors[v]:
            name = next(n for n, q in model.named_parameters() if q is p)
            g = before[name]
            expected = g * k[v] + (g.std().item() + 1e-8) * torch.randn(g.shape, generator=noise)
            assert torch.allclose(p.grad, expected, atol=1e-7, rtol=1e-6), name
    for name, p in model.named_parameters():
        if id(p) not in kernels:  # BN, biases, FC-512, output layer: untouched
            assert torch.equal(p.grad, before[name]), name
    assert all(p.dim() == 4 for ps in m.tensors.values() for p in ps)
    assert len(m.tensors["cc"]) == len(m.tensors["mlo"]) > 10


def test_the_noise_has_the_unmodulated_gradients_standard_deviation():
    torch.manual_seed(1)
    model = build_model("joint").train()
    x, y = batch(seed=1)
    h = backward(model, x, y)
    m = ogm.OGMGE(model, alpha=0.3, epochs=2)
    big = max(m.tensors["cc"], key=lambda p: p.numel())  # the most draws: a tight estimate
    g = big.grad.clone()
    m.start_epoch(0, seed=5)
    rec = m.modulate(h, y)
    added = big.grad - rec["k_cc"] * g
    assert added.std().item() == pytest.approx(g.std().item(), rel=0.05)
    assert abs(added.mean().item()) < 0.05 * g.std().item()


def test_ogm_fc_modulates_the_fc_weights_too_and_nothing_runs_in_the_second_half():
    model = build_model("joint")
    with_fc = ogm.modulated_tensors(model, fc=True)
    def holds(tensors, p):
        return any(q is p for q in tensors)

    assert holds(with_fc["cc"], model.cc.fc.weight) and holds(with_fc["mlo"], model.mlo.fc.weight)
    assert not holds(ogm.modulated_tensors(model)["cc"], model.cc.fc.weight)
    # the reference: modulation_starts 0 <= epoch <= modulation_ends 50, of 100 epochs
    assert [ogm.active(e, 100) for e in (0, 49, 50, 51, 99)] == [True, True, True, False, False]
    assert sum(ogm.active(e, 100) for e in range(100)) == 51
    assert [ogm.active(e, 5) for e in range(5)] == [True, True, True, False, False]
    x, y = batch()
    h = backward(model, x, y)
    before = [p.grad.clone() for p in model.parameters()]
    m = ogm.OGMGE(model, alpha=0.5, epochs=4)
    m.start_epoch(3, seed=0)  # past the middle epoch (2 of 4)
    assert not m.modulate(h, y)["modulated"]
    assert all(torch.equal(p.grad, b) for p, b in zip(model.parameters(), before, strict=True))


# --- re-balancing ------------------------------------------------------------------------------

def test_speeds_accumulate_grad_over_weight_ratios_of_each_views_column_and_fc():
    torch.manual_seed(0)
    model = build_model("joint").train()
    x, y = batch()
    backward(model, x, y)
    r = Rebalancer()
    groups = model.param_groups()
    r.measure(groups)
    for v in ("cc", "mlo"):
        g2 = sum((p.grad ** 2).sum().item() for p in groups[v])
        w2 = sum((p ** 2).sum().item() for p in groups[v])
        assert r.mu[v] == pytest.approx(g2 / w2, rel=1e-6)
    first = dict(r.mu)
    r.measure(groups)  # the same gradients again: the sums double
    assert r.mu == pytest.approx({v: 2 * first[v] for v in first})
    assert r.speed_gap() == pytest.approx(math.log10(r.mu["cc"] / r.mu["mlo"]))


def test_a_speed_gap_above_epsilon_triggers_q_rebalancing_steps_from_the_second_epoch():
    r = Rebalancer(epsilon=0.01, steps=3)
    h = {"cc": torch.ones(2, 4), "mlo": torch.zeros(2, 4)}
    r.mu = {"cc": 2.0, "mlo": 1.0}  # d = log10 2 > 0.01: CC is faster
    assert not r.advance(h, epoch=0)["rebalancing"] and not r.rebalancing  # first epoch: never
    r.advance(h, epoch=1)
    assert r.rebalancing and r.faster == "cc" and r.pending == 3
    records = [r.advance(h, epoch=1) for _ in range(3)]
    assert [x["rebalancing"] for x in records] == [True] * 3 and not r.rebalancing
    r.mu = {"cc": 1.0, "mlo": 1.01}  # |d| = 0.0043 < 0.01: no re-balancing
    r.advance(h, epoch=1)
    assert not r.rebalancing
    r.mu = {"cc": 1.0, "mlo": 2.0}
    r.advance(h, epoch=2)
    assert r.faster == "mlo"


def test_the_running_mean_averages_regular_steps_only():
    r = Rebalancer(epsilon=10.0)  # never triggers
    for value in (1.0, 2.0, 6.0):
        r.advance({"cc": torch.full((2, 3), value), "mlo": torch.zeros(2, 3)}, epoch=1)
    assert torch.allclose(r.mean["cc"], torch.full((3,), 3.0))
    r.pending, r.faster = 1, "cc"
    r.advance({"cc": torch.full((2, 3), 100.0), "mlo": torch.zeros(2, 3)}, epoch=1)
    assert torch.allclose(r.mean["cc"], torch.full((3,), 3.0)) and r.regular_steps == 3


def test_a_rebalancing_step_trains_the_slower_view_and_the_output_layer_only():
    torch.manual_seed(0)
    model = build_model("joint").train()
    x, y = batch()
    r = Rebalancer(steps=2)
    h = backward(model, x, y, r)
    r.advance(h, epoch=0)  # a regular step: sets the running means
    r.pending, r.faster = 2, "mlo"
    held = r.inputs(model.view_parts(x))["mlo"]
    assert torch.equal(held, r.mean["mlo"].expand(4, -1)) and not held.requires_grad
    backward(model, x, y, r)
    groups = model.param_groups()
    assert all(p.grad is None for p in groups["mlo"])
    assert all(p.grad is not None for p in groups["cc"] + groups["shared"])
    mu = dict(r.mu)
    r.measure(groups)  # no speed is measured in a re-balancing step
    assert r.mu == mu
    # Adam leaves the held view alone
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mlo = [p.detach().clone() for p in groups["mlo"]]
    opt.step()
    assert all(torch.equal(p, q) for p, q in zip(groups["mlo"], mlo, strict=True))


def test_an_input_rebalancing_step_trains_every_parameter_holding_the_caring_views_input():
    torch.manual_seed(0)
    model = build_model("joint").train()
    x, y = batch()
    r = Rebalancer(steps=2, hold="input")
    torch.manual_seed(1)
    r.advance(model.view_parts(x), epoch=0)  # a regular step: sets the running means
    r.pending, r.faster = 2, "mlo"  # MLO faster: CC cares, MLO is held in CC's loss

    def grads(loss_of) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(2)  # the same input noise in every forward
        loss_of(model.view_parts(x)).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    def objective(h):
        logits, held = r.logits(model, h)
        assert torch.equal(logits, model.fuse_parts(h))  # the reported logits are the model's
        return loss_fn(logits, y) + loss_fn(held, y)

    got = grads(objective)
    regular = grads(lambda h: loss_fn(model.fuse_parts(h), y))
    alone = grads(lambda h: loss_fn(model.fuse_parts({**h, "mlo": r.mean["mlo"].expand(4, -1)}),
                                    y))
    names = model.group_names()
    assert set(got) == {n for n, _ in model.named_parameters()}  # every parameter trains
    for n in names["mlo"] + names["shared"]:  # the faster view and the output layer: regular
        assert torch.allclose(got[n], regular[n], atol=1e-7, rtol=1e-5), n
    for n in names["cc"]:  # the caring view: its loss with MLO held at its running mean
        assert torch.allclose(got[n], alone[n], atol=1e-7, rtol=1e-5), n
    assert not all(torch.allclose(got[n], regular[n]) for n in names["cc"])
    mu, steps = dict(r.mu), r.mean_steps
    r.measure(model.param_groups())  # no speed is measured in a re-balancing step
    assert r.mu == mu
    torch.manual_seed(3)
    h = model.view_parts(x)
    rec = r.advance(h, epoch=1)  # but the running means take every step's batch
    assert rec["rebalancing"] and rec["held"] == "mlo" and r.mean_steps == steps + 1
    assert r.regular_steps == 1 and r.pending == 1


def test_the_view_hold_is_the_first_adaptation_and_inputs_leaves_h_alone_with_input():
    h = {"cc": torch.ones(2, 3), "mlo": torch.zeros(2, 3)}
    for hold in ("view", "input"):
        r = Rebalancer(hold=hold)
        r.advance(h, epoch=0)
        r.pending, r.faster = 1, "cc"
        replaced = r.inputs({"cc": torch.full((2, 3), 5.0), "mlo": torch.zeros(2, 3)})["cc"]
        assert torch.equal(replaced, torch.full((2, 3), 5.0 if hold == "input" else 1.0))
        r.advance({"cc": torch.full((2, 3), 3.0), "mlo": torch.zeros(2, 3)}, epoch=1)
        expected = 2.0 if hold == "input" else 1.0  # the mean of (1, 3), or of (1) alone
        assert torch.allclose(r.mean["cc"], torch.full((3,), expected))
    with pytest.raises(ValueError, match="hold"):
        Rebalancer(hold="both")


def test_the_share_of_rebalancing_steps_per_epoch_from_the_runs_csv(tmp_path):
    run = RunDir(cfg(**REBALANCE_INPUT), tmp_path)
    run.create()
    epochs = {0: [(False, "")] * 4,
              1: [(False, "")] + [(True, "cc")] * 3 + [(True, "mlo")] * 2,
              2: [(False, ""), (False, ""), (True, "mlo")]}
    (run.path / "dynamics").mkdir()
    for e, steps in epochs.items():  # written by hand, as train() writes them
        pd.DataFrame([{"epoch": e, "iteration": i, "rebalancing": on, "held": v, "d": 0.1}
                      for i, (on, v) in enumerate(steps)]).to_csv(
            run.path / "dynamics" / f"balance_e{e:04d}.csv", index=False)
    share = rebalancing_share(run.dynamics("balance"))
    assert share.steps.tolist() == [4, 6, 3]
    assert share.rebalancing.tolist() == [0, 5, 1]
    assert share["CC held"].tolist() == [0, 3, 0] and share["MLO held"].tolist() == [0, 2, 1]
    assert share.share.tolist() == pytest.approx([0, 5 / 6, 1 / 3])
    assert rebalancing_share(pd.DataFrame()).empty


# --- the optimiser -----------------------------------------------------------------------------

def test_sgd_is_ogm_ges_reference_optimiser_and_adam_stays_the_default():
    model = build_model("joint")
    sgd = cfg(optimizer="sgd", lr=2e-3, epochs=10)
    opt = make_optimizer(model, sgd)
    assert type(opt) is torch.optim.SGD
    (group,) = opt.param_groups
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (2e-3, 0.9, 1e-4)
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}
    sched = make_scheduler(opt, sgd)
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR)
    rates = []
    for _ in range(10):  # one step after each epoch, as the reference's train_epoch
        rates.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: nothing moves, but the schedule sees a step taken
        sched.step()
    assert rates == pytest.approx([2e-3] * 7 + [2e-4] * 3)  # x0.1 after 70% of the epochs
    assert [decay_epoch(e) for e in (100, 5, 2)] == [70, 4, 2]
    adam = cfg()
    assert type(make_optimizer(model, adam)) is torch.optim.Adam
    assert make_scheduler(make_optimizer(model, adam), adam) is None
    assert cfg(optimizer="adam").digest() == adam.digest() != cfg(optimizer="sgd").digest()


def test_ogm_ges_search_draws_sgd_rates_and_alphas_independently():
    pairs = balancing_methods.ogm_settings(40, 32)
    assert pairs == balancing_methods.ogm_settings(40, 32) and len(set(pairs)) == 40
    lrs, alphas = zip(*pairs, strict=True)
    lo, hi = balancing_methods.OGM_LR_RANGE
    assert all(lo <= v <= hi for v in lrs)
    assert all(ogm.ALPHA_RANGE[0] <= v <= ogm.ALPHA_RANGE[1] for v in alphas)
    assert np.corrcoef(np.log(lrs), np.log(alphas))[0, 1] < 0.5  # not paired in order
    for n in (2, 5):  # Latin hypercube: one value in each log-stratum of each range
        for values, (lo, hi) in zip(zip(*balancing_methods.ogm_settings(n, 7), strict=True),
                                    (balancing_methods.OGM_LR_RANGE, ogm.ALPHA_RANGE), strict=True):
            strata = np.floor(n * np.log(np.array(values) / lo) / np.log(hi / lo))
            assert sorted(strata) == list(range(n))
    prof = PROFILES["laptop"]
    groups = balancing_methods.method_groups(prof, joint_lr=7e-4)
    assert len(groups[balancing_methods.OGM]) == 2 * prof.hp_samples
    assert all(s["optimizer"] == "sgd" for s in groups[balancing_methods.OGM])
    (rb,) = groups[balancing_methods.REBALANCE]
    assert rb["lr"] == 7e-4 and rb["rebalance"]["hold"] == "input" and "optimizer" not in rb


def test_rebalancer_state_round_trips():
    r = Rebalancer(epsilon=0.02, steps=4)
    r.advance({"cc": torch.ones(2, 3), "mlo": torch.zeros(2, 3)}, epoch=0)
    r.mu, r.pending, r.faster = {"cc": 3.0, "mlo": 1.0}, 2, "cc"
    s = Rebalancer(epsilon=0.02, steps=4)
    s.load_state_dict(r.state_dict())
    assert s.state_dict()["mu"] == r.mu and (s.pending, s.faster) == (2, "cc")
    assert torch.equal(s.mean["cc"], r.mean["cc"])


# --- inside training ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_a_method_is_recorded(method, store):
    # (that a second run of the config gives the same metrics: the resume test below, whose
    # resumed run is a fresh run of it)
    a = train(cfg(**method), store)
    assert a.status()["state"] == "done"
    bal = a.dynamics("balance")
    assert len(bal) == len(a.dynamics("grad_norms"))
    if "rebalance" in method:
        assert bal[bal.epoch == 0].rebalancing.sum() == 0
        assert bal[bal.epoch >= 1].rebalancing.any()  # the smoke run is imbalanced enough
        g = a.dynamics("grad_norms")
        on = bal.rebalancing.astype(bool).to_numpy()
        both = ((g.cc > 0) & (g.mlo > 0)).to_numpy()
        # 'input' trains every parameter in every step; 'view' leaves the held view without
        assert both.all() if method is REBALANCE_INPUT else not both[on].any()
    else:
        epochs = method.get("epochs", 3)
        # epochs 0 to the middle one inclusive (the reference: 0-50 of 100)
        assert bal.modulated.tolist() == [e <= epochs / 2 for e in bal.epoch]


def test_each_method_changes_training(store):
    plain = train(cfg(), store).metrics().train_loss
    for method in (OGM, REBALANCE, REBALANCE_INPUT):
        assert not np.allclose(train(cfg(**method), store).metrics().train_loss, plain)
    view, held = (train(cfg(**m), store).metrics().train_loss for m in (REBALANCE,
                                                                         REBALANCE_INPUT))
    assert not np.allclose(view, held)


def test_sgd_trains_with_its_schedule(store):
    run = train(cfg(**OGM_SGD), store)
    state = run.load("last.pt")
    assert state["scheduler"]["last_epoch"] == 4
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-4)  # decayed
    adam = train(cfg(**{**OGM_SGD, "optimizer": "adam"}), store)
    assert "scheduler" not in adam.load("last.pt")
    assert not np.allclose(run.metrics().train_loss, adam.metrics().train_loss)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_resume_mid_run_gives_the_uninterrupted_run(method, store, tmp_path, monkeypatch):
    whole = train(cfg(**method), store)
    calls = {"n": 0}
    real_predict = train_mod.predict

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # validation of epoch 2, after epoch 1's checkpoint
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(train_mod, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(**method), tmp_path)
    run = RunDir(cfg(**method), tmp_path)
    assert len(run.metrics()) == 2
    if "rebalance" in method:
        assert run.load("last.pt")["rebalance"]["regular_steps"] > 0
    if method is OGM_SGD:  # interrupted before the decay at epoch 3: the schedule resumes
        assert run.load("last.pt")["scheduler"]["last_epoch"] == 2
    monkeypatch.setattr(train_mod, "predict", real_predict)
    resumed = train(cfg(**method), tmp_path)
    pd.testing.assert_frame_equal(resumed.metrics().drop(columns="seconds"),
                                  whole.metrics().drop(columns="seconds"))
    pd.testing.assert_frame_equal(resumed.dynamics("balance"), whole.dynamics("balance"))
    pd.testing.assert_frame_equal(resumed.predictions(), whole.predictions())


@pytest.mark.parametrize("kw, message", [
    (dict(ogm_alpha=-0.1), "ogm_alpha"),
    (dict(ogm_alpha=0.5, rebalance={"epsilon": 0.01, "steps": 5}), "choose one"),
    (dict(ogm_alpha=0.5, model="shared"), "Joint ResNet"),
    (dict(rebalance={"epsilon": 0.01, "steps": 5}, view_dropout={"cc": 0.2}), "plain Joint"),
    (dict(rebalance={"epsilon": 0.01}), "rebalance"),
    (dict(rebalance={"epsilon": 0.01, "steps": 0}), "steps"),
    (dict(ogm_fc=True), "ogm_fc"),
    (dict(rebalance={"epsilon": 0.01, "steps": 5, "hold": "both"}), "hold"),
    (dict(rebalance={"steps": 5, "hold": "input"}), "rebalance"),
    (dict(optimizer="rmsprop"), "optimizer"),
])
def test_inconsistent_balancing_fields_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        cfg(**kw)


def test_the_synthesis_names_each_methods_verdicts_and_whether_any_held():
    claims = pd.DataFrame({
        "claim": ["OGM-GE improves Joint ResNet",
                  "+ OGM-GE reduces Joint ResNet's reliance on MLO (lower s)",
                  "Re-balancing (adapted) improves Joint ResNet"],
        "diff": [-0.09, 0.2, float("nan")], "lo": [-0.16, 0.05, float("nan")],
        "hi": [-0.02, 0.37, float("nan")],
        "verdict": ["contradicted", "contradicted", "not tested"]}).set_index("claim")
    text = balancing_methods.synthesis_markdown(claims)
    assert "* **OGM-GE**: improves Joint ResNet: **contradicted** (-0.090 [-0.160, -0.020]); " \
           "reduces Joint ResNet's reliance on MLO (lower s): **contradicted**" in text
    assert "* **Re-balancing (adapted)**: improves Joint ResNet: **not tested**." in text
    assert "No claim that a method improves Joint ResNet" in text
    claims.loc["OGM-GE improves Joint ResNet", "verdict"] = "holds"
    assert "Holding at this budget: OGM-GE improves Joint ResNet." in \
        balancing_methods.synthesis_markdown(claims)


def test_ogm_ges_own_baseline_is_joint_resnet_under_sgd_at_its_rates_without_modulation():
    prof = PROFILES["laptop"]
    (name, settings), = balancing_methods.sgd_baseline_group(prof).items()
    ogm_rates = [s["lr"] for s in balancing_methods.method_groups(prof, 7e-4)[
        balancing_methods.OGM]]
    assert name == balancing_methods.SGD_JOINT
    assert [s["lr"] for s in settings] == ogm_rates
    assert all(s["optimizer"] == "sgd" and "ogm_alpha" not in s for s in settings)
    assert RunConfig(**{k: v for k, v in settings[0].items() if k != "experiment"},
                     epochs=1).ogm_alpha == 0  # modulation off


def _compared(rows):
    index = pd.MultiIndex.from_tuples([(g, i) for g, i, *_ in rows],
                                      names=["group", "instrument"])
    cols = ["effect (method)", "effect (Joint ResNet)", "diff", "lo", "hi", "p", "verdict"]
    return pd.DataFrame([dict(zip(cols, r[2:], strict=True)) for r in rows], index=index)


def test_a_method_reduces_reliance_when_the_cue_test_says_it_lets_the_cue_in_less():
    cue, share = balancing_methods.CUE_TEST, "dependence: MLO's share (training split)"
    t7 = pd.DataFrame({"auc_mean": [0.8, 0.6], "auc_lo": [0.7, 0.45], "auc_hi": [0.9, 0.75]},
                      index=[balancing_methods.REBALANCE, balancing_methods.OGM])
    compared = _compared([
        (balancing_methods.REBALANCE, cue, 0.5, 2.0, -1.5, -2.5, -0.5, 0.01, "better"),
        (balancing_methods.REBALANCE, share, 0.1, 0.2, -0.1, -0.3, 0.1, 0.3, "inconclusive"),
        (balancing_methods.OGM, cue, 2.5, 2.0, 0.5, 0.1, 0.9, 0.02, "worse")])
    def rows(claims):
        return (claims[claims.index.str.startswith("Re-balancing")].iloc[0],
                claims[claims.index.str.startswith("OGM-GE")].iloc[0])

    rb, ogm_row = rows(testbed.reduces_reliance(compared, t7, balancing_methods.METHODS))
    assert rb.verdict == "holds" and "+0.500 under + Re-balancing" in rb.why and share in rb.why
    assert ogm_row.verdict == "not testable at this budget" and "0.5" in ogm_row.why
    t7.loc[balancing_methods.OGM, "auc_lo"] = 0.52
    methods = balancing_methods.METHODS
    assert rows(testbed.reduces_reliance(compared, t7, methods))[1].verdict == "contradicted"
    compared.loc[(balancing_methods.REBALANCE, cue), ["lo", "hi"]] = [-2.5, 0.5]
    assert rows(testbed.reduces_reliance(compared, t7, methods))[0].verdict == \
        "inconclusive at this budget"
    none = testbed.reduces_reliance(compared.drop(index=cue, level=1), t7, methods)
    assert (none.verdict == "not tested").all()


def test_compared_instruments_are_the_cue_test_and_the_first_validated_dependence_reading():
    found = pd.DataFrame({"reading": ["cue logit change", "s_mlo (train)", "s_mlo (test)",
                                      "MLO-only train AUC"],
                          "verdict": ["found", "found", "found", "not found at this budget"]},
                         index=[balancing_methods.CUE_TEST, "share train", "share test", "mlo"])
    assert testbed.compared_instruments(found) == (balancing_methods.CUE_TEST,
                                                              "share train")
    found.loc[balancing_methods.CUE_TEST, "verdict"] = "not found at this budget"
    assert testbed.compared_instruments(found) == ("share train",)


def test_the_rebalancing_text_formats_its_table_a_line_per_run():
    table = pd.DataFrame([
        {"group": "+ Re-balancing (adapted)", "seed": 0, "state": "done", "after epoch 0": 0.8,
         "Q": 5, "ceiling": 5 / 6, "re-balanced": 40, "steps": 60, "CC held": 30,
         "MLO held": 10},
        {"group": "+ Re-balancing (adapted)", "seed": 1, "state": "diverged"}])
    text = balancing_methods.rebalancing_markdown(table).splitlines()
    assert text == ["* **+ Re-balancing (adapted)**, seed 0: 80% of the steps after the first "
                    "epoch re-balanced (ceiling 5/6 = 83%), 40 of 60 in all; CC held in 30, "
                    "MLO in 10.", "* **+ Re-balancing (adapted)**, seed 1: diverged."]
