"""The regularizers of Section 6.2: Modality Dropout, Pretraining, Split Learning Rates and
Gradient Blending (its heads, its loss and the offline weight estimate of Appendix C)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import mvlib.engine.train as train_mod
import mvlib.instruments.blending as blending
from mvlib.engine.evaluate import auc
from mvlib.engine.search import BASE_LRS, dropout_rates, split_learning_rates
from mvlib.engine.train import make_model, make_optimizer, train
from mvlib.experiment.runs import RunConfig
from mvlib.instruments.stats import delong_test
from mvlib.models.heads import (
    BlendedJointResNet,
    JointResNet,
    ModalityDropout,
    UniView,
    blended_loss,
    build_model,
    loss_fn,
)
from mvlib.study.gradient_blending import (
    ablation_settings,
    blend_setting,
    blend_settings,
    untestable,
)

VIEWS = ("cc", "mlo")
KNOBS = {"patients": {"train": 12, "val": 10, "test": 6}}  # a small smoke set: ~2 s a run


def views(b=2, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"cc": torch.randn(b, c, 64, 48, generator=g),
            "mlo": torch.randn(b, c, 72, 42, generator=g)}


def labels(b):
    return torch.tensor([[i % 2, (i // 2) % 2] for i in range(b)])


def smoke(model, **kw):
    return RunConfig(model=model, **{**dict(lr=1e-4, epochs=1, profile="smoke",
                                            tta_windows=1, knobs=KNOBS), **kw})


def encoder_state(uni_state):
    return {k.removeprefix("encoder."): v for k, v in uni_state.items()
            if k.startswith("encoder.")}


def view_state(state, view):
    return {k.removeprefix(f"{view}."): v for k, v in state.items()
            if k.startswith(f"{view}.")}


def assert_states_equal(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def states_differ(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a)


# --- Modality Dropout ------------------------------------------------------------------------

def reps(n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {v: torch.rand(n, 512, generator=g) + 0.1 for v in VIEWS}  # no zero entries


def test_modality_dropout_is_the_identity_at_eval_and_with_zero_rates():
    h = reps(64)
    for md in (ModalityDropout(0.5, 0.9).eval(), ModalityDropout().train(),
               ModalityDropout(0.0, 0.0).train()):
        out = md(h)
        for v in VIEWS:
            assert torch.equal(out[v], h[v])


def test_modality_dropout_keeps_or_zeroes_each_example_without_rescaling():
    torch.manual_seed(0)
    h = reps(4000)
    out = ModalityDropout(cc=0.3, mlo=0.7).train()(h)
    dropped = {}
    for v in VIEWS:
        kept = (out[v] == h[v]).all(dim=1)  # exactly the input: no 1/(1-p) rescale
        zero = (out[v] == 0).all(dim=1)
        assert (kept ^ zero).all(), "every row is either kept exactly or all zeros"
        assert kept.any() and zero.any(), "masks differ across examples"
        dropped[v] = zero.float()
    assert dropped["cc"].mean().item() == pytest.approx(0.3, abs=0.03)
    assert dropped["mlo"].mean().item() == pytest.approx(0.7, abs=0.03)
    # Independent masks: both dropped at p_cc * p_mlo (a shared draw would give 0.3).
    both = (dropped["cc"] * dropped["mlo"]).mean().item()
    assert both == pytest.approx(0.3 * 0.7, abs=0.03)
    equal_rates = ModalityDropout(0.5, 0.5).train()(h)
    assert not torch.equal((equal_rates["cc"] == 0).all(1), (equal_rates["mlo"] == 0).all(1))


def test_an_example_that_loses_both_views_is_predicted_by_the_output_bias():
    torch.manual_seed(3)
    model = JointResNet(view_dropout={"cc": 0.7, "mlo": 0.7}).train()
    seen = {}
    model.dropout.register_forward_hook(lambda m, i, o: seen.update(o))
    x, y = views(8), labels(8)
    logits = model(x)
    both = ((seen["cc"] == 0).all(1) & (seen["mlo"] == 0).all(1))
    assert both.any() and not both.all()
    fused = seen["cc"] + seen["mlo"]
    assert (fused[both] == 0).all()
    bias = model.output.bias.detach().expand(int(both.sum()), -1)
    assert torch.equal(logits[both].detach(), bias)
    assert not torch.isclose(logits[~both].detach(), model.output.bias.detach()).all(1).any()
    # Its loss still trains the bias, and only the bias.
    loss_fn(logits[both], y[both]).backward()
    assert model.output.bias.grad.abs().sum() > 0
    assert torch.count_nonzero(model.output.weight.grad) == 0
    for p in [*model.cc.parameters(), *model.mlo.parameters()]:
        assert p.grad is None or torch.count_nonzero(p.grad) == 0


@pytest.mark.parametrize("rates", [{"cc": -0.1}, {"mlo": 1.0}, {"cc": 1.5}, {"mlo": math.nan}])
def test_modality_dropout_rates_outside_zero_one_are_rejected(rates):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ModalityDropout(**rates)


@pytest.mark.parametrize("name", ["uni_cc", "uni_mlo", "split"])
def test_modality_dropout_needs_a_fusing_model(name):
    with pytest.raises(ValueError, match="fusing"):
        build_model(name, view_dropout={"cc": 0.2, "mlo": 0.2})
    assert isinstance(build_model("joint", view_dropout={"cc": 0.2, "mlo": 0.3}).dropout,
                      ModalityDropout)


# --- Pretraining: units ------------------------------------------------------------------------

def trained_uniview(view):
    model = UniView(view).train()
    with torch.no_grad():
        model(views(4, seed=1))  # BatchNorm running statistics away from their init
    return model


def test_init_views_copies_each_uniview_encoder_and_not_the_output_layer():
    torch.manual_seed(0)
    uni = {v: trained_uniview(v) for v in VIEWS}
    joint = JointResNet()
    output_before = {k: v.clone() for k, v in joint.output.state_dict().items()}
    assert states_differ(joint.cc.state_dict(), encoder_state(uni["cc"].state_dict()))
    joint.init_views({v: uni[v].state_dict() for v in VIEWS})
    for v in VIEWS:
        assert_states_equal(getattr(joint, v).state_dict(), encoder_state(uni[v].state_dict()))
    assert_states_equal(joint.output.state_dict(), output_before)


def test_init_views_of_one_view_leaves_the_other_and_rejects_non_uniview_states():
    joint = JointResNet()
    mlo_before = {k: v.clone() for k, v in joint.mlo.state_dict().items()}
    joint.init_views({"cc": trained_uniview("cc").state_dict()})
    assert_states_equal(joint.mlo.state_dict(), mlo_before)
    with pytest.raises(ValueError, match="encoder"):
        joint.init_views({"cc": JointResNet().state_dict()})


def test_freeze_views_trains_the_output_layer_only():
    model = JointResNet().train()
    model.freeze_views()
    assert not model.cc.training and not model.mlo.training and model.output.training
    names = model.group_names()
    params = dict(model.named_parameters())
    for group in ("cc", "mlo"):
        assert names[group] and not any(params[n].requires_grad for n in names[group])
    assert names["shared"] and all(params[n].requires_grad for n in names["shared"])
    model.eval()
    model.train()
    for view in VIEWS:
        assert not any(m.training for m in getattr(model, view).modules())
    assert model.output.training and model.noise.training and model.dropout.training
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    out = model(views(4))
    for k, v in model.state_dict().items():
        if "running" in k:
            assert torch.equal(v, buffers[k]), k
    loss_fn(out, labels(4)).backward()
    assert model.output.weight.grad is not None
    assert all(p.grad is None for v in VIEWS for p in getattr(model, v).parameters())
    # Control: without freezing, the same forward moves the running statistics.
    free = JointResNet().train()
    before = free.cc.column.state_dict()
    before = {k: v.clone() for k, v in before.items() if "running_mean" in k}
    free(views(4))
    assert any(not torch.equal(free.cc.column.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("group_lr", [None, {"cc": 1e-5, "mlo": 1e-4, "shared": 1e-3}])
def test_optimizer_of_a_frozen_model_holds_the_output_layer_only(group_lr):
    model = JointResNet()
    model.freeze_views()
    opt = make_optimizer(model, smoke("joint", group_lr=group_lr))
    held = [p for g in opt.param_groups for p in g["params"]]
    assert sorted(map(id, held)) == sorted(map(id, model.output.parameters()))
    if group_lr:
        assert [(g["name"], g["lr"]) for g in opt.param_groups] == [("shared", 1e-3)]


# --- Pretraining: end to end -------------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    uni = {v: train(smoke(f"uni_{v}"), store) for v in VIEWS}
    init_from = {v: uni[v].ref for v in VIEWS}
    runs = {f: train(smoke("joint", init_from=init_from, finetune=f), store)
            for f in ("output", "all")}
    return store, uni, runs


def test_pretraining_output_only_keeps_the_uniview_columns(pretrained):
    store, uni, runs = pretrained
    run = runs["output"]
    assert run.status()["state"] == "done"
    best = run.load("best.pt")
    for v in VIEWS:
        # Weights and BatchNorm statistics: frozen columns stay the uni-view encoders.
        assert_states_equal(view_state(best, v), encoder_state(uni[v].load("best.pt")))
    torch.manual_seed(run.cfg.seed)  # what train() does before make_model
    init = make_model(run.cfg, store)
    assert init.frozen
    assert states_differ(view_state(best, "output"), init.output.state_dict())
    norms = run.dynamics("grad_norms")
    assert (norms.cc == 0).all() and (norms.mlo == 0).all() and (norms.shared > 0).all()


def test_pretraining_whole_model_starts_from_and_moves_away_from_the_uniview_columns(
        pretrained):
    store, uni, runs = pretrained
    run = runs["all"]
    assert run.status()["state"] == "done"
    torch.manual_seed(run.cfg.seed)
    init = make_model(run.cfg, store)
    assert not init.frozen and all(p.requires_grad for p in init.parameters())
    best = run.load("best.pt")
    for v in VIEWS:
        encoder = encoder_state(uni[v].load("best.pt"))
        assert_states_equal(getattr(init, v).state_dict(), encoder)
        assert states_differ(view_state(best, v), encoder)


def test_pretraining_from_a_missing_run_names_the_missing_checkpoint(pretrained):
    store, uni, _ = pretrained
    cfg = smoke("joint", init_from={"cc": "default/no-such-run", "mlo": uni["mlo"].ref},
                finetune="output", experiment="missing")
    with pytest.raises(FileNotFoundError) as err:
        train(cfg, store)
    assert str(store / "default" / "no-such-run" / "best.pt") in str(err.value)


@pytest.mark.parametrize("name", ["uni_cc", "split", "shared"])
def test_pretraining_initialises_joint_resnets_only(pretrained, name):
    store, uni, _ = pretrained
    cfg = smoke(name, init_from={v: uni[v].ref for v in VIEWS})
    with pytest.raises(ValueError, match="Joint ResNet"):
        make_model(cfg, store)


# --- RunConfig validation ------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(model="joint", blend_weights={"joint": 0.5, "cc": 0.25, "mlo": 0.25}),
    dict(model="joint_blend"),
    dict(model="joint_blend", blend_weights={}),
    dict(model="joint", finetune="output"),
    dict(model="joint", finetune="bogus", init_from={"cc": "a/b", "mlo": "a/c"}),
])
def test_run_config_rejects_inconsistent_regularizer_fields(kw):
    with pytest.raises(ValueError):
        RunConfig(lr=1e-4, epochs=1, **kw)


def test_run_config_accepts_consistent_regularizer_fields():
    RunConfig(model="joint_blend", lr=1e-4, epochs=1,
              blend_weights={"joint": 0.5, "cc": 0.25, "mlo": 0.25})
    RunConfig(model="joint", lr=1e-4, epochs=1, init_from={"cc": "a/b", "mlo": "a/c"},
              finetune="output")


# --- Split Learning Rates and Modality Dropout sampling ---------------------------------------

@pytest.mark.parametrize("base", BASE_LRS)
def test_split_learning_rates_are_log_uniform_within_a_decade(base):
    a = split_learning_rates(base, 2000, seed=10)
    assert a == split_learning_rates(base, 2000, seed=10)
    assert a != split_learning_rates(base, 2000, seed=11)
    assert len(a) == 2000 and all(set(r) == {"cc", "mlo", "shared"} for r in a)
    rates = np.array([[r[g] for g in ("cc", "mlo", "shared")] for r in a])
    assert (rates >= base / 10 * (1 - 5e-3)).all() and (rates <= base * 10 * (1 + 5e-3)).all()
    assert all(float(f"{x:.3g}") == x for x in rates.ravel())  # 3 significant digits
    exponents = np.log10(rates / base)
    assert abs(exponents.mean()) < 0.05
    for col in exponents.T:  # each group uniform on [-1, 1]
        assert abs(col.mean()) < 0.06 and col.min() < -0.95 and col.max() > 0.95
        assert np.mean(col < -0.5) == pytest.approx(0.25, abs=0.04)
        assert np.mean(col > 0.5) == pytest.approx(0.25, abs=0.04)
    assert abs(np.corrcoef(exponents.T)[0, 1]) < 0.1  # the groups are drawn independently


def test_dropout_rates_are_uniform_per_view_and_reproducible():
    a = dropout_rates(2000, seed=20)
    assert a == dropout_rates(2000, seed=20) and a != dropout_rates(2000, seed=21)
    for v in VIEWS:
        r = np.array([d[v] for d in a])
        assert (r >= 0).all() and (r <= 1).all()
        assert r.mean() == pytest.approx(0.5, abs=0.03)
        assert np.mean(r < 0.25) == pytest.approx(0.25, abs=0.04)


def test_dropout_rates_stay_below_one_so_every_sample_builds_a_model():
    rates = [p for d in dropout_rates(2000, seed=0) for p in d.values()]
    assert max(rates) < 1.0
    for d in dropout_rates(2000, seed=0):
        ModalityDropout(**d)


# --- Gradient Blending: heads and loss -----------------------------------------------------------

def test_blended_model_has_a_joint_head_and_one_extra_head_per_view():
    torch.manual_seed(0)
    model = BlendedJointResNet().eval()
    x = views()
    heads = model.heads(x)
    assert set(heads) == {"joint", "cc", "mlo"}
    assert all(h.shape == (2, 2) for h in heads.values())
    assert torch.equal(model(x), heads["joint"])
    h = {v: getattr(model, v)(x[v]) for v in VIEWS}
    assert torch.allclose(heads["joint"], model.output(h["cc"] + h["mlo"]), atol=1e-6)
    for v in VIEWS:  # the extra heads read the column's pooled 256-d features
        feats = getattr(model, v).column(x[v]).mean(dim=(2, 3))
        assert torch.allclose(heads[v], model.extra[v](feats), atol=1e-6)
    changed = model.heads({"cc": x["cc"], "mlo": x["mlo"] + 1})
    assert torch.equal(changed["cc"], heads["cc"])
    assert not torch.allclose(changed["mlo"], heads["mlo"])
    assert not torch.allclose(changed["joint"], heads["joint"])


def test_blended_loss_is_the_weighted_sum_of_the_three_losses():
    torch.manual_seed(0)
    heads = {k: torch.randn(6, 2) for k in ("joint", "cc", "mlo")}
    y = labels(6)
    w = {"joint": 0.5, "cc": 0.2, "mlo": 0.3}
    expected = sum(w[k] * loss_fn(heads[k], y) for k in w)
    assert torch.isclose(blended_loss(heads, y, w), expected)
    assert not torch.isclose(blended_loss(heads, y, {"joint": 0.5, "cc": 0.3, "mlo": 0.2}),
                             expected)


def blended_step(w):
    torch.manual_seed(0)
    model = BlendedJointResNet().train()
    before = {v: [p.detach().clone() for p in model.extra[v].parameters()] for v in VIEWS}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    blended_loss(model.heads(views(4)), labels(4), w).backward()
    grads = {v: [p.grad for p in model.extra[v].parameters()] for v in VIEWS}
    opt.step()
    moved = {v: any(not torch.equal(p, q) for p, q in zip(model.extra[v].parameters(),
                                                          before[v], strict=True))
             for v in VIEWS}
    return model, grads, moved


def nonzero(grads):
    return any(g is not None and torch.count_nonzero(g) > 0 for g in grads)


def test_a_blended_step_trains_an_extra_head_only_when_its_weight_is_positive():
    _, grads, moved = blended_step({"joint": 0.5, "cc": 0.3, "mlo": 0.2})
    assert nonzero(grads["cc"]) and nonzero(grads["mlo"]) and moved["cc"] and moved["mlo"]
    model, grads, moved = blended_step({"joint": 0.7, "cc": 0.0, "mlo": 0.3})
    assert not nonzero(grads["cc"]) and not moved["cc"]
    assert nonzero(grads["mlo"]) and moved["mlo"]
    assert nonzero([p.grad for p in model.cc.parameters()])  # the joint head still trains it


def test_training_with_blend_weights_uses_the_blended_loss(tmp_path, monkeypatch):
    calls = []
    real = train_mod.blended_loss

    def recording(heads, y, weights):
        calls.append((sorted(heads), dict(weights)))
        return real(heads, y, weights)

    monkeypatch.setattr(train_mod, "blended_loss", recording)
    w = {"joint": 0.6, "cc": 0.1, "mlo": 0.3}
    run = train(smoke("joint_blend", blend_weights=w), tmp_path)
    assert run.status()["state"] == "done"
    assert calls and all(c == (["cc", "joint", "mlo"], w) for c in calls)
    norms = run.dynamics("grad_norms")
    assert len(norms) == len(calls)


# --- Gradient Blending: the weight estimate ------------------------------------------------------

def checkpoint_curve(val, train_eval, measure="loss"):
    """A checkpoint table (epoch -1 = untrained, then one row per epoch) with the given
    validation and training-split values of `measure`."""
    n = len(val)
    other = np.full(n, 0.5 if measure == "loss" else 1.0)
    if measure == "loss":
        cols = {"val_loss": val, "train_eval_loss": train_eval,
                "val_auc_malignant": other, "train_eval_auc_malignant": other}
    else:
        cols = {"val_auc_malignant": val, "train_eval_auc_malignant": train_eval,
                "val_loss": other, "train_eval_loss": other}
    return pd.DataFrame({"epoch": np.arange(-1, n - 1), **{k: np.asarray(v, float)
                                                          for k, v in cols.items()}})


def assert_weights(w, expected, tol=1e-9):
    assert set(w) == set(expected)
    assert all(v >= 0 for v in w.values()) and sum(w.values()) == pytest.approx(1, abs=1e-12)
    for k in expected:
        assert w[k] == pytest.approx(expected[k], abs=tol), k


# Loss at the untrained model and after 4 epochs (validation, training split), by hand:
#   joint: G = 1.2 - 0.9 = 0.3, O = (0.9 - 0.8) - (1.2 - 1.2)  = 0.1  -> G/O^2 = 30
#   cc:    G = 1.2 - 1.0 = 0.2, O = (1.0 - 0.9) - (1.2 - 1.15) = 0.05 -> G/O^2 = 80
#   mlo:   G = 1.2 - 1.1 = 0.1, O = (1.1 - 0.9) - (1.2 - 1.2)  = 0.2  -> G/O^2 = 2.5
# weights 30, 80, 2.5 over 112.5.
ENDS = {"joint": ((1.2, 0.9), (1.2, 0.8)), "cc": ((1.2, 1.0), (1.15, 0.9)),
        "mlo": ((1.2, 1.1), (1.2, 0.9))}
BY_HAND = {"joint": 30 / 112.5, "cc": 80 / 112.5, "mlo": 2.5 / 112.5}


def two_ends(ends=ENDS, middle=(1.0, 0.95, 1.3), measure="loss"):
    """Curves of 4 epochs with the given values at the untrained model and the last
    checkpoint, and arbitrary ones in between."""
    return {k: checkpoint_curve([v0, *middle, v1], [t0, *middle, t1], measure)
            for k, ((v0, v1), (t0, t1)) in ends.items()}


def test_estimate_on_a_hand_computed_two_checkpoint_example():
    assert_weights(blending.estimate(two_ends(), "loss", (0, 1)), BY_HAND)
    terms = blending.window_terms(two_ends(), "loss", (0, 1))
    assert terms.loc["cc", "G"] == pytest.approx(0.2)
    assert terms.loc["cc", "O"] == pytest.approx(0.05)
    assert (terms["from"] == 0).all() and (terms["to"] == 4).all()
    assert blending.undefined(terms) == "" and "G lo" not in terms  # no predictions given


def test_only_the_windows_end_checkpoints_matter():
    a = blending.estimate(two_ends(middle=(1.0, 0.95, 1.3)), "loss", (0, 1))
    b = blending.estimate(two_ends(middle=(0.3, 2.0, 0.7)), "loss", (0, 1))
    assert_weights(a, b)


def test_auc_measure_gains_auc_and_overfits_by_the_auc_gap():
    # AUC: G = AUC*_end - AUC*_start; gap = AUC_train - AUC*.
    ends = {"joint": ((0.5, 0.8), (0.5, 0.9)),   # G 0.3, O 0.1 -> 30
            "cc": ((0.5, 0.7), (0.55, 0.8)),     # G 0.2, O 0.1 - 0.05 = 0.05 -> 80
            "mlo": ((0.5, 0.6), (0.5, 0.8))}     # G 0.1, O 0.2 -> 2.5
    assert_weights(blending.estimate(two_ends(ends, (0.6, 0.6, 0.6), "auc"), "auc", (0, 1)),
                   BY_HAND)


def test_the_late_window_starts_at_the_checkpoint_of_its_first_epoch():
    assert blending.window_ends(100, (0.9, 1.0)) == (90, 100)
    assert blending.window_ends(6, (0.9, 1.0)) == (5, 6)
    assert blending.window_ends(6, (0.0, 1.0)) == (0, 6)
    assert blending.window_ends(1, (0.9, 1.0)) == (0, 1)  # never an empty window
    # 10 epochs: [90, 100] compares the checkpoints after epochs 9 and 10 only.
    val = np.linspace(1.2, 0.8, 11)
    curves = {k: checkpoint_curve(val, val - 0.01 * np.arange(11) * (i + 1))
              for i, k in enumerate(("joint", "cc", "mlo"))}
    terms = blending.window_terms(curves, "loss", (0.9, 1.0))
    assert (terms["from"] == 9).all() and (terms["to"] == 10).all()
    assert terms.G.to_numpy() == pytest.approx([0.04] * 3)
    assert terms.O.to_numpy() == pytest.approx([0.01, 0.02, 0.03])
    with pytest.raises(ValueError, match="window"):
        blending.window_ends(10, (0.5, 0.5))


def test_a_model_that_did_not_generalise_leaves_the_estimate_undefined():
    # Wang et al.'s G / O^2 would give it a weight <= 0: no guard stands in, no weights.
    for v_end in (1.2, 1.3):  # G = 0, then G < 0
        ends = {**ENDS, "mlo": ((1.2, v_end), (1.2, 0.9))}
        terms = blending.window_terms(two_ends(ends), "loss", (0, 1))
        assert terms.weight.isna().all()
        assert terms.loc["cc", "G/O^2"] == pytest.approx(80)  # the raw values stay shown
        assert "mlo has G" in blending.undefined(terms)
        assert "joint" not in blending.undefined(terms)
        with pytest.raises(ValueError, match="mlo has G"):
            blending.estimate(two_ends(ends), "loss", (0, 1))


def test_a_shrinking_gap_keeps_the_formula_and_no_change_leaves_it_undefined():
    # CC's gap shrinks (O = 0.05 - 0.1 = -0.05): G / O^2 = 0.2 / 0.0025 = 80, as for O = +0.05.
    ends = {**ENDS, "cc": ((1.2, 1.0), (1.1, 0.95))}
    terms = blending.window_terms(two_ends(ends), "loss", (0, 1))
    assert terms.loc["cc", "O"] == pytest.approx(-0.05)
    assert_weights(terms.weight.to_dict(), BY_HAND)
    ends["joint"] = ((1.2, 0.9), (1.2, 0.9))  # G 0.3, O 0: G / O^2 is infinite
    terms = blending.window_terms(two_ends(ends), "loss", (0, 1))
    assert terms.weight.isna().all() and "joint has O = 0" in blending.undefined(terms)


def constant_predictions(n=80, malignant=20, checkpoints=(-1, 0, 1, 2, 3), shift=None, seed=0):
    """Validation predictions per checkpoint: the same breasts, each checkpoint's p_malignant
    the first's plus `shift[epoch]` times per-breast noise."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(malignant, int), np.zeros(n - malignant, int)]
    base = rng.uniform(0.2, 0.8, n)
    noise = rng.normal(0, 1, n)
    shift = shift or {}
    return pd.concat([pd.DataFrame({
        "breast_id": np.arange(n), "malignant": y, "benign": 1 - y,
        "p_malignant": np.clip(base + shift.get(e, 0.0) * noise, 0.01, 0.99),
        "p_benign": 0.5, "epoch": e}) for e in checkpoints], ignore_index=True)


def test_g_carries_an_interval_and_an_estimate_on_noise_says_so():
    curves = two_ends()
    steady = {k: constant_predictions() for k in curves}
    terms = blending.window_terms(curves, "loss", (0, 1), steady)
    assert (terms["G lo"] == terms.G).all() and (terms["G hi"] == terms.G).all()  # no spread
    assert blending.at_noise(terms) == ""
    # MLO's last checkpoint moves each breast's prediction: a spread around its G of 0.1.
    preds = {**steady, "mlo": constant_predictions(shift={3: 0.3})}
    terms = blending.window_terms(curves, "loss", (0, 1), preds)
    p = preds["mlo"]
    a, b = (p[p.epoch == e].sort_values("breast_id") for e in (-1, 3))

    def loss(q):
        y, m = q.malignant.to_numpy(), q.p_malignant.to_numpy()
        return -(y * np.log(m) + (1 - y) * np.log(1 - m)) + np.log(2)  # p_benign 0.5

    d = loss(a) - loss(b)
    half = 1.959963984540054 * d.std(ddof=1) / np.sqrt(len(d))
    assert terms.loc["mlo", "G hi"] - terms.loc["mlo", "G"] == pytest.approx(half, rel=1e-9)
    assert terms.loc["mlo", "G lo"] < 0 < terms.loc["mlo", "G hi"]
    assert blending.at_noise(terms).startswith("mlo's G +0.1")
    assert_weights(terms.weight.to_dict(), BY_HAND)  # defined, but resting on noise
    # By AUC, DeLong's paired interval of the two checkpoints' AUCs.
    auc_terms = blending.window_terms(two_ends(measure="auc", ends={
        k: ((0.5, 0.8), (0.5, 0.9)) for k in ENDS}), "auc", (0, 1), preds)
    r = delong_test(b.malignant.to_numpy(), b.p_malignant.to_numpy(), a.p_malignant.to_numpy())
    assert auc_terms.loc["mlo", "G hi"] - auc_terms.loc["mlo", "G"] == pytest.approx(
        (r["hi"] - r["lo"]) / 2, rel=1e-9)


def test_estimate_is_undefined_when_no_model_generalised():
    worse = {k: ((v0, v0 + 0.1), t) for k, ((v0, _), t) in ENDS.items()}
    with pytest.raises(ValueError, match="undefined"):
        blending.estimate(two_ends(worse), "loss", (0, 1))
    with pytest.raises(ValueError, match="measure"):
        blending.estimate(two_ends(), "accuracy", (0, 1))


def test_estimate_needs_checkpoint_evaluations_and_the_untrained_model():
    curves = two_ends()
    no_start = {k: c[c.epoch >= 0] for k, c in curves.items()}
    with pytest.raises(ValueError, match="untrained"):
        blending.estimate(no_start, "loss", (0, 1))
    running = {k: c.drop(columns=["train_eval_loss"]) for k, c in curves.items()}
    with pytest.raises(ValueError, match="checkpoint_curves"):
        blending.estimate(running, "loss", (0, 1))


# --- Gradient Blending: the 10% validation subset ----------------------------------------------

def val_predictions(n=40, malignant=3, epochs=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(100, 100 + n))
    mal = np.zeros(n, int)
    mal[rng.choice(n, malignant, replace=False)] = 1
    ben = rng.integers(0, 2, n)
    frames = [pd.DataFrame({"breast_id": ids, "malignant": mal, "benign": ben,
                            "p_malignant": rng.uniform(0.05, 0.95, n),
                            "p_benign": rng.uniform(0.05, 0.95, n), "epoch": e})
              for e in range(epochs)]
    return pd.concat(frames, ignore_index=True)


def metrics_curve(epochs=3):
    return pd.DataFrame({"epoch": np.arange(epochs), "train_loss": np.linspace(1, 0.5, epochs),
                         "val_loss": 9.0, "train_auc_malignant": 0.7,
                         "val_auc_malignant": 0.0})


def bce(y, p):
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_subset_curve_on_the_whole_set_recomputes_loss_and_auc():
    vp, curve = val_predictions(malignant=8), metrics_curve()
    original = curve.copy()
    out = blending.subset_curve(curve, vp, 1.0)
    pd.testing.assert_frame_equal(curve, original)  # the input is not modified
    pd.testing.assert_series_equal(out.train_loss, curve.train_loss)
    for e in range(3):
        p = vp[vp.epoch == e]
        row = out[out.epoch == e].iloc[0]
        assert row.val_auc_malignant == pytest.approx(auc(p.malignant, p.p_malignant), abs=1e-12)
        expected = bce(p.malignant, p.p_malignant) + bce(p.benign, p.p_benign)
        assert row.val_loss == pytest.approx(expected, rel=1e-9)
        logits = torch.logit(torch.tensor(p[["p_malignant", "p_benign"]].to_numpy()))
        y = torch.tensor(p[["malignant", "benign"]].to_numpy())
        assert row.val_loss == pytest.approx(loss_fn(logits, y).item(), rel=1e-6)


def test_subset_curve_keeps_a_fixed_stratified_tenth(monkeypatch):
    vp, curve = val_predictions(n=40, malignant=3), metrics_curve()
    seen = []
    real = blending.auc

    def recording(y, s):
        seen.append((sorted(vp.loc[y.index, "breast_id"]), int(y.sum()), len(y)))
        return real(y, s)

    monkeypatch.setattr(blending, "auc", recording)
    out = blending.subset_curve(curve, vp, 0.1, seed=5)
    assert len(seen) == 3
    ids, positives, size = seen[0]
    assert positives == 1 and size == 1 + round(0.1 * 37)  # max(1, round(0.3)) malignant
    assert all(s[0] == ids for s in seen)  # the same breasts every epoch
    assert np.isfinite(out.val_auc_malignant).all() and (out.val_loss != 9.0).all()
    monkeypatch.setattr(blending, "auc", real)
    pd.testing.assert_frame_equal(out, blending.subset_curve(curve, vp, 0.1, seed=5))
    assert not out.equals(blending.subset_curve(curve, vp, 0.1, seed=6))
    whole = blending.subset_curve(curve, vp, 1.0)
    assert not np.allclose(out.val_loss, whole.val_loss)


# --- Table 5's weight sets ------------------------------------------------------------------

def weights_table(auc_weights):
    nan = {"w_joint": np.nan, "w_cc": np.nan, "w_mlo": np.nan}
    rows = [
        {"validation": "whole", "measure": "loss", "window": "[0, 100]",
         "w_joint": 0.9, "w_cc": 0.05, "w_mlo": 0.05, "note": ""},
        {"validation": "whole", "measure": "auc", "window": "[90, 100]", **nan,
         "note": "undefined: mlo has G = -0.1 <= 0"},
        {"validation": "10%", "measure": "loss", "window": "[0, 100]",
         "w_joint": 0.5, "w_cc": 0.2, "w_mlo": 0.3, "note": ""},
        {"validation": "10%", "measure": "auc", "window": "[0, 100]",
         **(auc_weights or nan), "note": "" if auc_weights else "undefined: cc has G = 0 <= 0"},
    ]
    return pd.DataFrame(rows)


PAPER_SETS = {"equal weights": {"joint": 1 / 3, "cc": 1 / 3, "mlo": 1 / 3},
              "loss": {"joint": 0.340, "cc": 0.325, "mlo": 0.335},
              "loss, swapped": {"joint": 0.340, "cc": 0.335, "mlo": 0.325},
              "AUC": {"joint": 0.246, "cc": 0.122, "mlo": 0.632},
              "AUC, swapped": {"joint": 0.246, "cc": 0.632, "mlo": 0.122}}


def test_ablation_settings_are_the_papers_sets_then_each_usable_estimate_swapped():
    sets = ablation_settings(weights_table({"w_joint": 0.6, "w_cc": 0.1, "w_mlo": 0.3}))
    assert sets == {**PAPER_SETS,
                    "loss (ours)": {"joint": 0.5, "cc": 0.2, "mlo": 0.3},
                    "loss (ours), swapped": {"joint": 0.5, "cc": 0.3, "mlo": 0.2},
                    "AUC (ours)": {"joint": 0.6, "cc": 0.1, "mlo": 0.3},
                    "AUC (ours), swapped": {"joint": 0.6, "cc": 0.3, "mlo": 0.1}}
    # an estimate that is undefined or at noise level adds no set
    table = weights_table({"w_joint": 0.6, "w_cc": 0.1, "w_mlo": 0.3})
    table.loc[3, "note"] = "at noise level: mlo's G +0.4 [-0.04, +0.87] reaches 0"
    assert sorted(ablation_settings(table)) == sorted(
        [*PAPER_SETS, "loss (ours)", "loss (ours), swapped"])


def test_only_usable_table4_estimates_train_and_otherwise_table2_says_why(tmp_path):
    table = weights_table(None)
    table.loc[0, ["w_joint", "w_cc", "w_mlo"]] = [3e-4, 0.9, 0.0997]  # full precision
    assert [s["blend_weights"] for s in blend_settings(table)] == [
        {"joint": 3e-4, "cc": 0.9, "mlo": 0.0997}]
    assert untestable(table) == ""
    table.loc[0, "note"] = "at noise level: joint's G +0.01 [-0.2, +0.2] reaches 0"
    assert blend_settings(table) == []
    why = untestable(table)
    assert "by loss over [0, 100], at noise level" in why
    assert "by auc over [90, 100], undefined: mlo has G" in why
    cfg = smoke(**blend_setting({"joint": 3e-4, "cc": 0.9, "mlo": 0.0997}))
    torch.manual_seed(cfg.seed)  # as train() does before it builds the model
    start = make_model(cfg, tmp_path).output.state_dict()
    run = train(cfg, tmp_path)
    trained = {k.removeprefix("output."): v for k, v in run.load("last.pt")["model"].items()
               if k.startswith("output.")}
    assert run.status()["state"] == "done"
    assert states_differ(trained, start)  # a tiny w_joint still trains the joint head


def test_a_zero_joint_weight_is_rejected_by_name():
    with pytest.raises(ValueError, match="w_joint > 0"):
        RunConfig(model="joint_blend", lr=1e-4, epochs=1,
                  blend_weights={"joint": 0.0, "cc": 1.0, "mlo": 0.0})


def test_checkpoint_curves_record_the_training_split_and_validation_predictions(tmp_path):
    plain = train(smoke("uni_cc"), tmp_path)
    assert "train_eval_loss" not in plain.metrics()
    assert plain.dynamics("val_predictions").empty
    run = train(smoke("uni_cc", checkpoint_curves=True), tmp_path)
    m = run.metrics()
    assert {"train_eval_loss", "train_eval_auc_malignant"} <= set(m.columns)
    assert m.train_eval_loss.notna().all()
    preds = run.dynamics("val_predictions")
    assert sorted(preds.epoch.unique()) == list(m.epoch)
    # The untrained model is evaluated alike: where Gradient Blending's windows start.
    start = run.initial()
    assert list(start.epoch) == [-1] and np.isfinite(start.train_eval_loss).all()
    assert list(run.checkpoints().epoch) == [-1, *m.epoch]
    assert sorted(run.val_predictions().epoch.unique()) == [-1, *m.epoch]
    assert plain.initial().empty
    # Same seed, same training: only the extra evaluation differs.
    assert np.allclose(m.val_loss, plain.metrics().val_loss)


def test_output_only_fine_tuning_rejects_the_blended_model(pretrained):
    store, uni, _ = pretrained
    cfg = smoke("joint_blend", blend_weights={"joint": 0.4, "cc": 0.3, "mlo": 0.3},
                init_from={v: uni[v].ref for v in VIEWS}, finetune="output")
    with pytest.raises(ValueError, match="extra heads"):
        make_model(cfg, store)


class _CurveRun:
    """What blending_terms reads of a run: its checkpoints and validation predictions."""

    def __init__(self, curve, preds):
        self.curve, self.preds = curve, preds

    def checkpoints(self):
        return self.curve

    def val_predictions(self):
        return self.preds


def test_blending_weights_and_terms_from_the_runs_checkpoints():
    from mvlib.study.gradient_blending import blending_weights, terms_table

    curves = two_ends()
    for k, c in curves.items():  # AUC columns that generalise and overfit a little
        c["val_auc_malignant"] = np.linspace(0.5, 0.8, 5)
        c["train_eval_auc_malignant"] = np.linspace(0.5, 0.9, 5) + (k == "cc") * 0.01
    preds = constant_predictions(n=60, malignant=20)  # checkpoints -1 (untrained) .. 3
    runs = {k: _CurveRun(c, preds) for k, c in curves.items()}
    w = blending_weights(runs)
    assert list(zip(w.validation, w.measure, w.window, strict=True)) == [
        ("whole", "loss", "[0, 100]"), ("whole", "loss", "[90, 100]"),
        ("whole", "auc", "[0, 100]"), ("whole", "auc", "[90, 100]"),
        ("10%", "loss", "[0, 100]"), ("10%", "auc", "[0, 100]")]
    first = w.iloc[0]
    for k in ("joint", "cc", "mlo"):  # full precision: rounded only where displayed
        assert first[f"w_{k}"] == pytest.approx(BY_HAND[k], rel=1e-12)
    assert first.note == "" and (first["from"], first["to"]) == (0, 4)
    # the validation breasts behind each estimate: all 60 (20 malignant), or the fixed 10%
    for validation, size in (("whole", [60, 20]), ("10%", [6, 2])):
        assert (w[w.validation == validation][["breasts", "malignant"]].to_numpy() == size).all()
    terms = terms_table(runs)
    assert terms.index.names == ["validation", "measure", "window", "model"]
    assert len(terms) == 3 * len(w)  # every estimate, defined or not
    late_loss = terms.sort_index().loc[("whole", "loss", "[90, 100]")]
    assert (late_loss["from"] == 3).all() and (late_loss["to"] == 4).all()


def test_checkpoint_curves_keep_predictions_of_validated_epochs_only(tmp_path):
    run = train(smoke("uni_cc", checkpoint_curves=True, epochs=3, val_every=2), tmp_path)
    m = run.metrics()
    assert m.val_loss.notna().tolist() == [False, True, True]  # every 2nd and the last
    assert sorted(run.dynamics("val_predictions").epoch.unique()) == [1, 2]
    assert list(run.checkpoints().epoch) == [-1, 0, 1, 2]


def test_an_auc_gain_on_fewer_than_two_malignant_breasts_has_no_interval():
    curves = two_ends(ends={k: ((0.5, 0.8), (0.5, 0.9)) for k in ENDS}, measure="auc")
    preds = {k: constant_predictions(n=20, malignant=1) for k in curves}
    terms = blending.window_terms(curves, "auc", (0, 1), preds)
    assert np.isinf(terms["G hi"]).all()
    assert "cc's G +0.3 has no interval (fewer than 2 validation breasts of a class)" in \
        blending.at_noise(terms)


def test_an_estimate_that_cannot_be_computed_is_an_undefined_row_not_a_crash():
    from mvlib.study.gradient_blending import blending_weights, terms_table

    curves = two_ends()
    for c in curves.values():
        c["val_auc_malignant"] = np.nan  # a validation split without a malignant breast
        c["train_eval_auc_malignant"] = np.nan
    runs = {k: _CurveRun(c, constant_predictions(n=60, malignant=20))
            for k, c in curves.items()}
    w = blending_weights(runs)
    auc = w[w.measure == "auc"]
    assert auc.w_joint.isna().all() and auc.note.str.startswith("undefined: ").all()
    assert "not finite" in auc.note.iloc[0]
    assert (w[w.measure == "loss"].note.str.startswith(("", "undefined", "at noise"))).all()
    assert set(terms_table(runs).index.get_level_values("measure")) == {"loss"}
