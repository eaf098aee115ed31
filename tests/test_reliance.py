"""View reliance: predictions with one view's part replaced by its training mean."""

import numpy as np
import pytest
import torch

from mvlib.data.loader import eval_loader
from mvlib.engine import view_parts
from mvlib.engine.evaluate import predict
from mvlib.experiment.prepare import prepare
from mvlib.instruments import reliance
from mvlib.models.heads import build_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return prepare("synthetic", "smoke", progress=False)


@pytest.mark.parametrize("name", ["joint", "shared", "split", "joint_blend"])
def test_the_full_prediction_is_the_models_own(data, name):
    torch.manual_seed(0)
    model = build_model(name)
    pred = view_parts.reliance_predictions(model, data, "test", 3, CPU)
    ref = predict(model, eval_loader(data, "test"), CPU)
    assert list(pred.breast_id) == list(ref.breast_id)
    np.testing.assert_allclose(pred.p_full, ref.p_malignant, rtol=0, atol=1e-6)
    for view in ("cc_only", "mlo_only"):
        assert not np.allclose(pred[f"p_{view}"], pred.p_full)


def test_the_replaced_view_is_its_training_mean_and_any_constant_ranks_alike(data):
    torch.manual_seed(1)
    model = build_model("joint").eval()
    pred = view_parts.reliance_predictions(model, data, "test", 3, CPU)
    parts, _ = view_parts.view_parts(model, data, "test", 3, CPU)
    train_parts, _ = view_parts.view_parts(model, data, "train", 3, CPU)
    with torch.no_grad():
        mean = model.fuse_parts({"cc": parts["cc"],
                                 "mlo": train_parts["mlo"].mean(0).expand_as(parts["mlo"])})
        zero = model.fuse_parts({"cc": parts["cc"], "mlo": torch.zeros_like(parts["mlo"])})
    np.testing.assert_allclose(pred.p_cc_only, torch.sigmoid(mean[:, 0]).numpy(), atol=1e-6)
    # Linear in h_cc + h_mlo: another constant shifts every logit alike, the order stays.
    shift = (zero - mean)[:, 0].numpy()
    np.testing.assert_allclose(shift, shift[0], atol=1e-5)


def test_a_model_that_ignores_mlo_loses_nothing_without_it(data):
    torch.manual_seed(2)
    model = build_model("joint")
    with torch.no_grad():  # h_mlo = relu(0) = 0 for every breast: MLO carries nothing
        model.mlo.fc.weight.zero_()
        model.mlo.fc.bias.zero_()
    pred = view_parts.reliance_predictions(model, data, "test", 3, CPU)
    np.testing.assert_allclose(pred.p_cc_only, pred.p_full, atol=1e-7)
    s = reliance.reliance_summary(pred)
    assert s["u(mlo|cc)"] == pytest.approx(0, abs=1e-12)
    assert s["auc_mlo_only"] == pytest.approx(0.5)  # a constant score
    assert s["d_util"] == pytest.approx(-s["u(cc|mlo)"])
    assert s["auc_full_lo"] <= s["auc_full"] <= s["auc_full_hi"]


def test_utilisation_rates_by_hand():
    u = reliance.utilisation({"full": 0.9, "cc_only": 0.81, "mlo_only": 0.6})
    assert u["u(mlo|cc)"] == pytest.approx(0.1)
    assert u["u(cc|mlo)"] == pytest.approx(1 / 3)
    assert u["d_util"] == pytest.approx(0.1 - 1 / 3)


def test_a_split_too_small_for_an_auc_gives_nan_not_a_crash():
    import pandas as pd

    pred = pd.DataFrame({"malignant": [1, 0, 0], "p_full": [0.9, 0.2, 0.1],
                         "p_cc_only": [0.8, 0.3, 0.2], "p_mlo_only": [0.5, 0.5, 0.4]})
    s = reliance.reliance_summary(pred)
    assert np.isnan(s["auc_full"]) and np.isnan(s["d_util"])


def fake_predictions(rng, y, cc, mlo):
    """Test and training predictions of one seed whose full score sums a CC part and an MLO
    part that separate the classes by `cc` and `mlo` standard deviations (0: no part)."""
    import pandas as pd

    parts = []
    for split in ("test", "train"):
        u_cc = rng.normal(cc * y, 1.0) if cc else np.zeros(len(y))
        u_mlo = rng.normal(mlo * y, 1.0) if mlo else np.zeros(len(y))
        parts.append(pd.DataFrame({"breast_id": np.arange(len(y)), "malignant": y,
                                   "p_full": u_cc + u_mlo, "p_cc_only": u_cc,
                                   "p_mlo_only": u_mlo, "z_cc": u_cc, "z_mlo": u_mlo,
                                   "split": split}))
    return pd.concat(parts, ignore_index=True)


class _Done:
    done = True

    def __init__(self, pred, seed=0):
        self.pred = pred
        self.cfg = type("Cfg", (), {"seed": seed})()

    def status(self):
        return {"state": "done", "test_auc": float(reliance.auc_ci(
            self.pred.malignant[self.pred.split == "test"],
            self.pred.p_full[self.pred.split == "test"])[0])}


def test_table6_and_claims_from_the_runs_predictions(monkeypatch):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50, int), np.zeros(150, int)]
    groups = {"uni-view CC": (1.5, 0.0), "Joint ResNet": (0.3, 1.5),
              "+ Modality Dropout": (1.5, 0.3), "Shared ResNet": (1.0, 1.0)}
    runs = {g: [_Done(fake_predictions(rng, y, *w), seed) for seed in range(4)]
            for g, w in groups.items()}
    monkeypatch.setattr(reliance, "run_reliance", lambda run: run.pred)
    t = reliance.table6(runs)
    assert t.loc["uni-view CC", "u(mlo|cc)"] == pytest.approx(0.0)
    assert t.loc["Joint ResNet", "d_util"] > 0 > t.loc["+ Modality Dropout", "d_util"]
    # the dependence share: a CC-only model has none on MLO, Joint ResNet (MLO 5x CC) most
    assert t.loc["uni-view CC", "s_mlo (train)"] == 0.0
    assert t.loc["Joint ResNet", "s_mlo (test)"] > 0.5 > t.loc["+ Modality Dropout",
                                                                 "s_mlo (test)"]
    for col in ("full", "cc_only", "d_util", "mlo_only (train)", "s_mlo (train)",
                "s_mlo (test)", "dp_mlo (test)", "dp_cc (test)"):
        assert (t[f"{col} lo"] <= t[col]).all() and (t[col] <= t[f"{col} hi"]).all(), col
    shown = reliance.table6_display(t)
    assert "MLO's share of the logit's variation, training split" in shown
    claims = reliance.reliance_claims(runs)
    assert claims.loc["Joint ResNet under-uses CC: its CC part scores below uni-view CC",
                      "verdict"] == "holds"
    md = claims.loc["+ Modality Dropout reduces Joint ResNet's reliance on MLO (lower MLO's "
                    "share of the logit's variation, training split)"]
    assert md.verdict == "holds" and md.hi < 0 and md.reading == "s_mlo (train)"
    by_util = reliance.reliance_claims(runs, reading="d_util (test)")
    assert (by_util.reading.iloc[1:] == "d_util (test)").all()
    assert by_util.loc["+ Modality Dropout reduces Joint ResNet's reliance on MLO (lower "
                       "d_util, test split)", "verdict"] == "holds"
    with pytest.raises(ValueError, match="unknown reading"):
        reliance.reliance_claims(runs, reading="s_mlo")
    per_run = reliance.dependence_generalisation(runs)
    assert len(per_run) == 16 and per_run["s_mlo (train)"].between(0, 1).all()
    corr = reliance.generalisation_correlation(per_run, n_boot=500)
    assert list(corr.index) == [*groups, reliance.POOLED]
    pooled = corr.loc[reliance.POOLED]  # the uni-view CC runs left out: 0 by construction
    assert pooled.n == 12 and pooled.lo <= pooled.rho <= pooled.hi
    # A model at chance tests nothing: claims about it are not testable, whatever they read.
    runs["Shared ResNet"] = [_Done(fake_predictions(rng, y, 0.0, 0.0), s) for s in range(4)]
    chance = reliance.reliance_claims(runs).loc[
        "Shared ResNet reduces Joint ResNet's reliance on MLO (lower MLO's share of the "
        "logit's variation, training split)"]
    assert chance.verdict == "not testable at this budget" and "includes 0.5" in chance.why


def test_a_difference_of_readings_of_the_same_runs_is_zero_and_straddles_it():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(30, int), np.zeros(60, int)]
    preds = [fake_predictions(rng, y, 0.5, 0.5) for _ in range(3)]
    test = [p[p.split == "test"].reset_index(drop=True) for p in preds]
    r = reliance._difference(test, test, "d_util", "d_util", 0.95)
    assert r["diff"] == pytest.approx(0, abs=1e-12) and r["lo"] < 0 < r["hi"]
    mixed = reliance._difference(test, test, "cc_only", "full", 0.95)
    full = np.mean([reliance.reliance_summary(p)["auc_full"] for p in test])
    cc = np.mean([reliance.reliance_summary(p)["auc_cc_only"] for p in test])
    assert mixed["diff"] == pytest.approx(cc - full)


@pytest.mark.parametrize("name", ["joint", "shared", "split", "joint_blend"])
def test_reliance_during_training_ranks_as_the_training_mean_does(data, name):
    """predict(reliance=True) replaces a view by the split's own mean (one forward pass); the
    AUCs equal those with the training mean, and the full prediction is the model's own."""
    torch.manual_seed(3)
    model = build_model(name)
    during = predict(model, eval_loader(data, "test"), CPU, reliance=True)
    plain = predict(model, eval_loader(data, "test"), CPU)
    np.testing.assert_allclose(during.p_malignant, plain.p_malignant, rtol=0, atol=1e-6)
    after = view_parts.reliance_predictions(model, data, "test", 3, CPU)
    for view in ("cc_only", "mlo_only"):
        assert not np.allclose(during[f"p_{view}"], during.p_malignant)
        assert reliance.auc_ci(during.malignant, during[f"p_{view}"])[0] == pytest.approx(
            reliance.auc_ci(after.malignant, after[f"p_{view}"])[0], abs=1e-9)


def test_uni_view_models_record_no_reliance(data):
    pred = predict(build_model("uni_cc"), eval_loader(data, "test"), CPU, reliance=True)
    assert "p_cc_only" not in pred and "p_mlo_only" not in pred


def test_training_curve_from_a_runs_metrics(tmp_path):
    from mvlib.experiment.runs import RunConfig, RunDir
    run = RunDir(RunConfig(model="joint", lr=1e-4, seed=0, epochs=2, profile="smoke"), tmp_path)
    run.create()
    run.write_metrics([{"epoch": 0, "val_auc_malignant": 0.8, "val_auc_cc_only": 0.6,
                        "val_auc_mlo_only": 0.7},
                       {"epoch": 1, "val_auc_malignant": 0.9, "val_auc_cc_only": 0.9,
                        "val_auc_mlo_only": 0.5}])
    c = reliance.training_curve(run)
    assert list(c.epoch) == [0, 1]
    np.testing.assert_allclose(c["u(mlo|cc)"], [0.2 / 0.8, 0.0])
    np.testing.assert_allclose(c["d_util"], [0.2 / 0.8 - 0.1 / 0.8, 0.0 - 0.4 / 0.9])
    run.write_metrics([{"epoch": 0, "val_auc_malignant": 0.8}])  # a uni-view run's metrics
    assert reliance.training_curve(run).empty


@pytest.mark.parametrize("name", ["joint", "shared", "split", "joint_blend"])
def test_logit_parts_are_each_views_share_of_the_malignant_logit(data, name):
    """Fusing models: z_cc + z_mlo is the model's malignant logit (W h_v + b/2 each); Split
    ResNet: its uni-view models' logits, which it fuses by averaging probabilities."""
    torch.manual_seed(4)
    model = build_model(name).eval()
    pred = view_parts.reliance_predictions(model, data, "test", 3, CPU)
    parts, _ = view_parts.view_parts(model, data, "test", 3, CPU)
    logit = model.fuse_parts(parts)[:, 0].detach().numpy()
    if name == "split":
        np.testing.assert_allclose(pred.z_cc, parts["cc"][:, 0].numpy(), atol=1e-6)
        p = (torch.sigmoid(torch.tensor(pred.z_cc.to_numpy()))
             + torch.sigmoid(torch.tensor(pred.z_mlo.to_numpy()))) / 2
        np.testing.assert_allclose(pred.p_full, p.numpy(), atol=1e-6)
    else:
        np.testing.assert_allclose(pred.z_cc + pred.z_mlo, logit, rtol=0, atol=1e-5)
    assert pred.z_cc.std() > 0 and pred.z_mlo.std() > 0


def test_a_model_blind_to_mlo_has_no_mlo_share(data):
    torch.manual_seed(2)
    model = build_model("joint")
    with torch.no_grad():
        model.mlo.fc.weight.zero_()
        model.mlo.fc.bias.zero_()
    pred = view_parts.reliance_predictions(model, data, "test", 3, CPU)
    q = reliance.dependence.point(pred)
    assert q["s_mlo"] == 0.0 and q["dp_mlo"] == pytest.approx(0, abs=1e-7) and q["dp_cc"] > 0


def test_run_reliance_recomputes_a_cached_file_without_the_logit_parts(tmp_path, data):
    """An older reliance.csv (no z columns) is not misread: it is recomputed from the run's
    best checkpoint, the same predictions plus the parts; uni-view models get a constant."""
    import pandas as pd

    from mvlib.experiment.runs import RunConfig, RunDir
    for name in ("joint", "uni_cc"):
        torch.manual_seed(5)
        model = build_model(name)
        run = RunDir(RunConfig(model=name, lr=1e-4, seed=0, epochs=2, profile="smoke",
                               threads=1), tmp_path)
        run.create()
        run.save("best.pt", model.state_dict())
        old = view_parts._predictions(model.eval(), data, "test", 3, CPU, (
            view_parts.view_parts(model, data, "train", 3, CPU) if name == "joint" else
            view_parts.malignant_logits(model, data, "train", 3, CPU)))
        old.drop(columns=["z_cc", "z_mlo"]).assign(split="test").to_csv(
            run.path / "reliance.csv", index=False)
        rel = view_parts.run_reliance(run)
        assert set(view_parts.COLUMNS) <= set(rel) and set(rel.split) == {"test", "train"}
        test = rel[rel.split == "test"].reset_index(drop=True)
        np.testing.assert_allclose(test.p_full, old.p_full, atol=1e-6)
        np.testing.assert_allclose(test.z_cc, old.z_cc, atol=1e-5)
        if name == "uni_cc":
            assert (test.z_mlo == 0).all() and test.p_mlo_only.nunique() == 1
            assert reliance.dependence.point(test)["s_mlo"] == 0.0
        again = view_parts.run_reliance(run)  # now read from the cache
        pd.testing.assert_frame_equal(again, rel, check_dtype=False, rtol=1e-6)
