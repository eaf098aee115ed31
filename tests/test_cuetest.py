"""The counterfactual cue test: the marker switched on and off, everything else identical."""

import numpy as np
import pytest
import torch

from mvlib.engine import view_parts
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.instruments import cuetest
from mvlib.models.heads import build_model
from mvlib.synth.config import SynthConfig
from mvlib.synth.counterfactual import marker_counterfactual

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return prepare("synthetic", "smoke", progress=False)


def _run(tmp_path, model, seed=0) -> RunDir:
    run = RunDir(RunConfig(model="joint", lr=1e-4, seed=seed, epochs=2, profile="smoke",
                           threads=1), tmp_path)
    run.create()
    run.save("best.pt", model.state_dict())
    return run


def test_the_counterfactual_reproduces_the_stored_split(data):
    cf = marker_counterfactual(SynthConfig.from_dict(data.meta["config"]), "test")
    idx = data.indices("test")
    assert list(cf["rows"].breast_id) == list(idx)
    stored = np.asarray(data.mlo[idx])
    cue = cf["rows"].mlo_cue.to_numpy().astype(bool)
    assert 0 < cue.sum() < len(cue)
    np.testing.assert_array_equal(cf["mlo_with"][cue], stored[cue])
    np.testing.assert_array_equal(cf["mlo_without"][~cue], stored[~cue])
    np.testing.assert_array_equal(cf["cc"], np.asarray(data.cc[idx]))
    # the marker is the only difference: image channel, bottom-right corner, every breast
    diff = cf["mlo_with"].astype(np.float32) - cf["mlo_without"].astype(np.float32)
    assert (diff >= 0).all() and (diff[:, 1:] == 0).all()
    h, w = diff.shape[2:]
    assert (diff[:, 0].reshape(len(diff), -1).max(axis=1) > 0.3).all()
    assert (diff[:, 0, : int(0.75 * h)] == 0).all() and (diff[:, 0, :, : int(0.75 * w)] == 0).all()


def test_cue_test_of_a_run(tmp_path, data):
    torch.manual_seed(6)
    model = build_model("joint").eval()
    run = _run(tmp_path, model)
    test = cuetest.cue_test(run)
    assert list(test.columns) == list(cuetest.COLUMNS)
    assert len(list(run.path.glob("cue_test-test-synthetic-*.csv"))) == 1
    # the version matching the stored image gives the model's own logit on it
    z, rows = view_parts.malignant_logits(model, data, "test", 3, CPU)
    cue = test.mlo_cue.to_numpy().astype(bool)
    np.testing.assert_allclose(test.z_on[cue], z[cue], atol=1e-5)
    np.testing.assert_allclose(test.z_off[~cue], z[~cue], atol=1e-5)
    assert not np.allclose(test.z_on, test.z_off)
    s = cuetest.cue_summary(test)
    assert s["logit change"] == pytest.approx(float((test.z_on - test.z_off).mean()))
    assert s["AUC change lo"] <= s["AUC change"] <= s["AUC change hi"]


def test_a_model_blind_to_mlo_does_not_move_with_the_marker(tmp_path):
    torch.manual_seed(7)
    model = build_model("joint")
    with torch.no_grad():
        model.mlo.fc.weight.zero_()
        model.mlo.fc.bias.zero_()
    s = cuetest.cue_summary(cuetest.cue_test(_run(tmp_path, model, seed=1)))
    assert s["logit change"] == 0 and s["AUC change"] == 0


def test_the_cue_test_needs_the_generator(tmp_path):
    run = RunDir(RunConfig(model="joint", lr=1e-4, seed=0, epochs=2, profile="smoke",
                           dataset="rsna", data_root=str(tmp_path)), tmp_path)
    with pytest.raises(ValueError, match="synthetic"):
        cuetest.cue_test(run)
