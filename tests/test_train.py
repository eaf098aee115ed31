"""The training protocol end to end on a tiny synthetic set: metrics, best checkpoint,
TTA test predictions, resume after an interruption or a kill, divergence, determinism."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

import mvlib.engine.train as train_mod
from mvlib.core.paths import REPO
from mvlib.data.loader import eval_loader
from mvlib.engine.evaluate import ensemble, predict, scores, summarise
from mvlib.engine.train import train
from mvlib.executors.sweep import InProcess, Subprocesses, sweep
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.instruments.reliance import training_curve
from mvlib.models.heads import build_model

KNOBS = {"patients": {"train": 24, "val": 16, "test": 16}}


def cfg(**kw):
    base = dict(model="uni_cc", lr=3e-4, epochs=3, profile="smoke", tta_windows=3,
                knobs=KNOBS, experiment="t")
    return RunConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def done_run(store):
    return train(cfg(), store)


def _comparable(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics.drop(columns=["seconds"])


def test_a_run_records_every_epoch_and_its_test_predictions(done_run):
    status = done_run.status()
    assert status["state"] == done_run.state == "done" and done_run.done and done_run.finished
    m = done_run.metrics()
    assert list(m.epoch) == [0, 1, 2]
    for col in ("train_loss", "train_auc_malignant", "val_loss", "val_auc_malignant",
                "val_auc_benign", "seconds"):
        assert m[col].notna().all(), col
    pred = done_run.predictions()
    data = prepare("synthetic", "smoke", progress=False, **KNOBS)
    assert sorted(pred.breast_id) == sorted(data.indices("test"))
    # view reliance, written by the run itself (the worker), before it is marked done
    rel = pd.read_csv(done_run.path / "reliance.csv")
    assert set(rel.split) == {"test", "train"}
    assert sorted(rel[rel.split == "test"].breast_id) == sorted(data.indices("test"))
    assert status["test_auc"] == pytest.approx(scores(pred)["auc_malignant"])
    assert json.loads((done_run.path / "config.json").read_text()) == cfg().to_dict()


def test_best_checkpoint_is_the_epoch_with_the_best_validation_auc(done_run):
    m = done_run.metrics()
    status = done_run.status()
    assert status["best_epoch"] == int(m.val_auc_malignant.idxmax())
    model = build_model("uni_cc")
    model.load_state_dict(done_run.load("best.pt"))
    data = prepare("synthetic", "smoke", progress=False, **KNOBS)
    val = predict(model, eval_loader(data, "val"), torch.device("cpu"))
    assert scores(val)["auc_malignant"] == pytest.approx(m.val_auc_malignant.max(), abs=1e-9)


def test_a_finished_run_is_not_run_again(done_run, store, monkeypatch):
    monkeypatch.setattr(train_mod, "build_model", lambda *a: pytest.fail("retrained"))
    assert train(cfg(), store).path == done_run.path


def test_same_config_and_seed_give_the_same_metrics(done_run, tmp_path):
    again = train(cfg(), tmp_path)
    pd.testing.assert_frame_equal(_comparable(again.metrics()), _comparable(done_run.metrics()))
    pd.testing.assert_frame_equal(again.predictions(), done_run.predictions())
    other = train(cfg(seed=1), tmp_path)
    assert not np.allclose(other.metrics().train_loss, done_run.metrics().train_loss)


def test_the_callers_thread_count_changes_nothing(tmp_path):
    """Float reductions depend on the thread count and training amplifies the difference
    (on this tiny set, validation AUCs differed by 0.05-0.14 after 2 epochs): the count is
    the config's, whatever the caller (an executor, a notebook) had set."""
    before, runs = torch.get_num_threads(), {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            runs[n] = train(cfg(epochs=2), tmp_path / str(n))
            assert torch.get_num_threads() == n  # the caller's count is restored
    finally:
        torch.set_num_threads(before)
    pd.testing.assert_frame_equal(_comparable(runs[1].metrics()), _comparable(runs[2].metrics()))


def test_resume_after_an_interruption_gives_the_same_run(done_run, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_predict = train_mod.predict

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # validation of epoch 2
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(train_mod, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(), tmp_path)
    run = RunDir(cfg(), tmp_path)
    assert run.status()["state"] == "running" and len(run.metrics()) == 2
    monkeypatch.setattr(train_mod, "predict", real_predict)
    resumed = train(cfg(), tmp_path)
    pd.testing.assert_frame_equal(_comparable(resumed.metrics()),
                                  _comparable(done_run.metrics()))
    pd.testing.assert_frame_equal(resumed.predictions(), done_run.predictions())


def test_resume_after_a_kill(done_run, tmp_path):
    run = RunDir(cfg(), tmp_path)
    run.create()
    cmd = [sys.executable, "-m", "mvlib", "train", str(run.path / "config.json"),
           "--store", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run.path / "metrics.csv").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before_kill = len(run.metrics())
    assert 1 <= finished_before_kill < 3, "the kill should land mid-run"
    resumed = train(cfg(), tmp_path)
    pd.testing.assert_frame_equal(_comparable(resumed.metrics()),
                                  _comparable(done_run.metrics()))


def test_a_diverged_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    real_loss = train_mod.loss_fn
    calls = {"n": 0}

    def exploding(logits, labels):
        calls["n"] += 1
        loss = real_loss(logits, labels)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(train_mod, "loss_fn", exploding)
    bad, good = cfg(lr=1e-3), cfg(lr=1e-4)
    runs = sweep([bad, good], InProcess(), tmp_path)
    assert runs[0].status()["state"] == "diverged"
    assert "non-finite" in runs[0].status()["reason"]
    assert runs[1].status()["state"] == "done"
    assert runs[0].finished  # a sweep does not retry it
    calls["n"] = 10**6
    assert sweep([bad], InProcess(), tmp_path)[0].status()["state"] == "diverged"


def test_subprocess_executor_runs_the_cli_and_reports_crashes(done_run, tmp_path,
                                                             monkeypatch):
    progress = tmp_path / "progress.json"  # what `make reproduce` shows of a sweep
    monkeypatch.setenv("MVLIB_PROGRESS", str(progress))
    runs = sweep([cfg(epochs=1), cfg(epochs=1, seed=3)], Subprocesses(workers=2), tmp_path)
    assert [r.status()["state"] for r in runs] == ["done", "done"]
    assert json.loads(progress.read_text()) == {"done": 2, "total": 2}
    broken = cfg(epochs=1, model="joint", init_from={"cc": "nowhere/no-run"})  # raises in train
    with pytest.raises(RuntimeError, match="crashed"):
        sweep([broken], Subprocesses(workers=1), tmp_path)


def test_runs_sharing_a_device_match_one_at_a_time_and_a_crash_stops_none(tmp_path):
    """Two runs at a time on one GPU slot (here the CPU: CUDA_VISIBLE_DEVICES names a GPU
    this machine lacks) give the metrics of the same runs one after another in process."""
    good = [cfg(epochs=2, seed=5), cfg(epochs=2, seed=6)]
    broken = cfg(epochs=1, model="joint", init_from={"cc": "nowhere/no-run"})  # raises in train
    with pytest.raises(RuntimeError, match=r"1 run\(s\) crashed"):
        sweep([broken, *good], Subprocesses(gpus=1, runs_per_gpu=2), tmp_path / "shared")
    alone = sweep(good, InProcess(), tmp_path / "alone")
    for a, b in zip(sweep(good, InProcess(), tmp_path / "shared"), alone, strict=True):
        assert a.done and b.done
        pd.testing.assert_frame_equal(_comparable(a.metrics()), _comparable(b.metrics()))
        pd.testing.assert_frame_equal(a.predictions(), b.predictions())
    with pytest.raises(ValueError, match="at least 1"):
        Subprocesses(gpus=1, runs_per_gpu=0)


def test_the_default_executor_follows_the_profile_and_the_gpus(monkeypatch):
    from mvlib.executors import slurm
    from mvlib.executors.sweep import default_executor
    from mvlib.experiment import profiles

    laptop, smoke = profiles.get("laptop"), profiles.get("smoke")
    assert isinstance(default_executor(smoke), InProcess)  # one worker
    assert default_executor(laptop).workers == 2
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    several = default_executor(laptop)
    assert (several.workers, several.gpus) == (4, 4)  # one run per GPU
    on_slurm = default_executor(profiles.get("laptop", executor="slurm"))
    assert isinstance(on_slurm, slurm.Slurm) and on_slurm.options.time_min == 30
    assert on_slurm.runs_per_job == 1
    monkeypatch.setenv("MVLIB_RUNS_PER_GPU", "3")  # several runs share each GPU
    shared = default_executor(laptop)
    assert (shared.workers, shared.gpus, shared.runs_per_gpu) == (12, 4, 3)
    assert default_executor(profiles.get("laptop", executor="slurm")).runs_per_job == 3
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert default_executor(smoke).workers == 3  # one GPU, three runs on it
    for bad, why in (("0", "at least 1"), ("two", "not a whole number")):
        monkeypatch.setenv("MVLIB_RUNS_PER_GPU", bad)
        with pytest.raises(ValueError, match=why):
            default_executor(laptop)
    monkeypatch.delenv("MVLIB_RUNS_PER_GPU")
    monkeypatch.setenv("MVLIB_EXECUTOR", "cloud")
    with pytest.raises(ValueError, match="unknown executor 'cloud'"):
        profiles.get("laptop")


def test_group_learning_rates_make_three_adam_groups():
    model = build_model("joint")
    opt = train_mod.make_optimizer(model, cfg(model="joint",
                                              group_lr={"cc": 1e-5, "mlo": 1e-4, "shared": 1e-3}))
    assert sorted((g["name"], g["lr"]) for g in opt.param_groups) == [
        ("cc", 1e-5), ("mlo", 1e-4), ("shared", 1e-3)]


def test_tta_averages_windows_and_ensembles_average_models(done_run):
    data = prepare("synthetic", "smoke", progress=False, **KNOBS)
    model = build_model("uni_cc")
    model.load_state_dict(done_run.load("best.pt"))
    loader = eval_loader(data, "test")
    cpu = torch.device("cpu")
    a = predict(model, loader, cpu, n_windows=4, seed=7)
    b = predict(model, loader, cpu, n_windows=4, seed=7)
    pd.testing.assert_frame_equal(a, b)
    single = [predict(model, loader, cpu, n_windows=1, seed=s) for s in range(3)]
    assert not np.allclose(single[0].p_malignant, single[1].p_malignant)
    whole = predict(model, loader, cpu)
    assert not np.allclose(a.p_malignant, whole.p_malignant)
    ens = ensemble(single)
    expected = np.mean([s.p_malignant for s in single], axis=0)
    assert np.allclose(ens.p_malignant, expected)
    summary = summarise(single)
    aucs = [scores(s)["auc_malignant"] for s in single]
    assert summary["auc_mean"] == pytest.approx(np.mean(aucs))
    assert summary["auc_std"] == pytest.approx(np.std(aucs, ddof=1))


def test_each_epoch_trains_on_exactly_the_samplers_draw(tmp_path, monkeypatch):
    seen = []
    real = train_mod.to_model_input

    def recording(batch, *args, **kwargs):
        seen.append(batch["index"].tolist())
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(train_mod, "to_model_input", recording)
    c = cfg(epochs=2)
    train(c, tmp_path)
    data = prepare("synthetic", "smoke", progress=False, **KNOBS)
    loader = train_mod.train_loader(data, c.seed, c.batch_size, c.channels)
    expected = [loader.sampler.epoch_indices(e).tolist() for e in range(2)]
    per_epoch = len(expected[0])
    flat = [i for batch in seen for i in batch]
    assert flat == expected[0] + expected[1]
    assert all(len(b) <= c.batch_size for b in seen) and per_epoch == len(loader.sampler)
    # Exams: every biopsied exam with both its breasts (the synthetic exam is the patient).
    train_ids = data.indices("train")
    m = data.manifest.loc[train_ids]
    positive = m.groupby("patient_id")[["malignant", "benign"]].max().any(axis=1)
    wanted = m.index[m.patient_id.map(positive)]
    assert set(wanted) <= set(expected[0])
    drawn_patients = data.manifest.loc[expected[0]].patient_id
    assert drawn_patients.value_counts().eq(2).all()  # both breasts of every drawn exam
    biopsied = int(data.labels()[train_ids].any(axis=1).sum())
    assert biopsied < per_epoch  # biopsy-free breasts of biopsied exams came along
    # The breast-level option: every biopsied breast and as many biopsy-free ones.
    seen.clear()
    by_breast = train(cfg(epochs=1, sampling="breast"), tmp_path)
    assert by_breast.path != train(cfg(epochs=1), tmp_path).path
    n_breast = biopsied + min(biopsied, len(train_ids) - biopsied)
    drawn = [i for batch in seen for i in batch][:n_breast]  # the breast-level run's epoch
    assert len(drawn) == n_breast and data.labels()[drawn].any(axis=1).sum() == biopsied


def test_gradient_norms_every_iteration_and_online_lca_do_not_change_training(done_run,
                                                                             tmp_path):
    g = done_run.dynamics("grad_norms")
    m = done_run.metrics()
    data = prepare("synthetic", "smoke", progress=False, **KNOBS)
    loader = train_mod.train_loader(data, 0, 4, 3)
    assert len(g) == len(m) * len(loader)  # one row per iteration
    assert (g[["cc", "shared"]] > 0).all().all() and (g.mlo == 0).all()  # uni-view CC model
    with_lca = train(cfg(lca_every=3), tmp_path)
    assert not (with_lca.path / "reliance.csv").exists()  # LCA runs are not scored for it
    pd.testing.assert_frame_equal(_comparable(with_lca.metrics()), _comparable(m))
    pd.testing.assert_frame_equal(with_lca.dynamics("grad_norms"), g)
    w = with_lca.dynamics("lca")
    per_epoch = -(-len(loader) // 3)
    assert len(w) == len(m) * per_epoch  # windows of 3 iterations, plus the epoch's rest
    assert np.allclose(w.cc + w.mlo + w.shared, w.allocated, atol=1e-6)
    assert np.allclose(w.actual - w.allocated, w.error, atol=1e-6)
    assert ((w.error.abs() <= 1e-3) | (w.splits == 32)).all()


def test_an_lca_window_measures_the_loss_on_its_shrunken_epochs_own_sample(tmp_path,
                                                                           monkeypatch):
    measured, trained = {}, {}
    real_loss, real_input = train_mod.epoch_loss, train_mod.to_model_input
    epoch = {"now": -1}

    def recording_loss(data, indices, *args, **kwargs):
        epoch["now"] += 1
        measured[epoch["now"]] = sorted(np.asarray(indices).tolist())
        return real_loss(data, indices, *args, **kwargs)

    def recording_input(batch, *args, augment, **kwargs):
        if augment:  # training batches (the LCA loss reads whole crops)
            trained.setdefault(epoch["now"], []).extend(batch["index"].tolist())
        return real_input(batch, *args, augment=augment, **kwargs)

    monkeypatch.setattr(train_mod, "epoch_loss", recording_loss)
    monkeypatch.setattr(train_mod, "to_model_input", recording_input)
    knobs = {"patients": {"train": 80, "val": 16, "test": 16}}
    c = cfg(model="joint", lr=1e-4, epochs=4, knobs=knobs, epoch_fraction=0.25, lca_every=2,
            val_every=2, lca_max_splits=2)
    run = train(c, tmp_path)
    data = prepare("synthetic", "smoke", progress=False, **knobs)
    full = train_mod.train_loader(data, c.seed, c.batch_size, c.channels)
    shrunk = train_mod.train_loader(data, c.seed, c.batch_size, c.channels, fraction=0.25)
    assert sorted(measured) == [0, 1, 2, 3]
    for e in range(4):
        drawn = sorted(shrunk.sampler.epoch_indices(e).tolist())
        assert measured[e] == drawn == sorted(trained[e])  # the epoch's own breasts, all
    assert len(shrunk.sampler) < 0.4 * len(full.sampler)
    # The windows' allocations sum to the change of that loss, window by window.
    w = run.dynamics("lca")
    assert (w.groupby("epoch").size() == -(-len(shrunk) // 2)).all()
    # Validation every second epoch and after the last; the others leave it empty.
    m = run.metrics()
    assert m.val_auc_malignant.notna().tolist() == [False, True, False, True]
    # View reliance is recorded with each validation (mvlib.instruments.reliance.training_curve).
    assert m.val_auc_cc_only.notna().tolist() == [False, True, False, True]
    assert training_curve(run).epoch.tolist() == [1, 3]
    assert run.status()["best_epoch"] in (1, 3)
    # Epoch 3's windows add up to the change, over epoch 3, of the loss on epoch 3's own
    # sample: from the state after 3 epochs (a 3-epoch run of the same config) to the end.
    before = train(dataclasses.replace(c, epochs=3), tmp_path)
    loss = real_loss(data, shrunk.sampler.epoch_indices(3), c.channels, torch.device("cpu"))
    values = []
    for r in (before, run):
        model = build_model("joint")
        model.load_state_dict(r.load("last.pt")["model"])
        values.append(loss(model).item())
    assert w[w.epoch == 3].actual.sum() == pytest.approx(values[1] - values[0], abs=1e-5)
    assert abs(values[1] - values[0]) > 1e-4


def test_lca_max_splits_caps_the_simpson_refinement(tmp_path):
    full = train(cfg(lca_every=3, epochs=1), tmp_path).dynamics("lca")
    rk4 = train(cfg(lca_every=3, epochs=1, lca_max_splits=2), tmp_path).dynamics("lca")
    assert (rk4.splits == 2).all()
    assert np.allclose(rk4.actual, full.actual)  # the same windows of the same training
    same = full.splits == 2
    assert (~same).any()  # the tiny set's windows do need refinement
    assert np.allclose(rk4[same].allocated, full[same].allocated)
    assert (rk4[~same].error.abs() > 1e-3).all()  # refined only where RK4 missed the tolerance
    # Each window also records its RK4 level, before refinement: the capped run's result.
    for col in ("cc", "mlo", "shared", "error"):
        assert np.allclose(full[f"rk4_{col}"], rk4[col], atol=1e-7)
    for bad in (0, 3, 6):  # doubling from 2 reaches powers of two only
        with pytest.raises(ValueError, match="lca_max_splits"):
            cfg(lca_max_splits=bad)


@pytest.mark.parametrize("field, bad", [
    ("model", "joint_resnet"), ("channels", 2), ("lr", 0.0), ("lr", float("nan")),
    ("epochs", 0), ("tta_windows", 0), ("epoch_fraction", 0.0), ("epoch_fraction", 1.5),
    ("sampling", "patient"), ("val_every", 0), ("lca_every", -1),
    ("group_lr", {"cc": 1e-4, "mlo": 1e-5}),  # theta_shared missing
    ("view_dropout", {"cc": 1.0}), ("view_dropout", {"left": 0.5}),
    ("init_from", {"cc": ""}),
])
def test_a_bad_config_is_refused_naming_the_field(field, bad):
    with pytest.raises(ValueError, match=field):
        cfg(**{field: bad})


def test_numpy_numbers_are_accepted_and_booleans_refused():
    ok = cfg(lr=np.float32(1e-4), epochs=np.int64(2), threads=np.int64(1))
    assert ok.epochs == 2
    with pytest.raises(ValueError, match="epochs"):
        cfg(epochs=True)


def test_a_config_file_with_an_unknown_field_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**cfg().to_dict(), "learning_rate": 1e-3}))
    with pytest.raises(ValueError, match="learning_rate"):
        RunConfig.from_dict(json.loads(path.read_text()))
    out = subprocess.run([sys.executable, "-m", "mvlib", "train", str(path)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode != 0
    assert str(path) in out.stderr and "learning_rate" in out.stderr


def test_a_tied_validation_auc_keeps_the_earlier_epoch(monkeypatch, tmp_path):
    real = train_mod.scores
    monkeypatch.setattr(train_mod, "scores", lambda df: {**real(df), "auc_malignant": 0.75})
    run = train(cfg(epochs=3), tmp_path)
    assert list(run.metrics().val_auc_malignant) == [0.75] * 3
    assert run.status()["best_epoch"] == 0


def test_checkpoint_selection_falls_back_to_validation_loss_without_two_classes():
    from mvlib.engine.train import selection_score

    nan = float("nan")
    a = {"val_auc_malignant": 0.8, "val_loss": 1.0}
    b = {"val_auc_malignant": 0.7, "val_loss": 0.1}
    assert selection_score(a) > selection_score(b)  # AUC decides when it is defined
    single_class = [{"val_auc_malignant": nan, "val_loss": v} for v in (0.9, 0.4, 0.6)]
    best = max(range(3), key=lambda i: selection_score(single_class[i]))
    assert best == 1  # lowest validation loss
    assert selection_score(single_class[0]) > selection_score(None)  # the first epoch is kept
    no_loss = {"val_auc_malignant": nan, "val_loss": nan}
    assert selection_score(single_class[0]) > selection_score(no_loss)  # NaN loss ranks last


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("damage", ["truncated", "crafted"])
def test_a_damaged_last_checkpoint_is_named_set_aside_and_the_run_restarts(
        done_run, tmp_path, monkeypatch, damage):
    import shutil

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "copy"
    run = RunDir(cfg(), store)
    shutil.copytree(done_run.path, run.path)
    run.set_status(state="running")  # as if the run had been killed after a finished epoch
    last = run.path / "last.pt"
    if damage == "truncated":  # a full disk: torch alone says 'failed finding central directory'
        last.write_bytes(last.read_bytes()[:1000])
    else:  # a shared store: a pickle that would run code on load
        torch.save({"model": _RunsCode()}, last)
    with pytest.warns(UserWarning, match=r"last.pt: cannot read the checkpoint.*restarts"):
        again = train(cfg(), store)
    assert not (tmp_path / "pwned").exists()
    assert len(list(run.path.glob("last.pt.damaged-*"))) == 1
    pd.testing.assert_frame_equal(_comparable(again.metrics()), _comparable(done_run.metrics()))


@pytest.mark.parametrize("text", ["{not json", '{"model": "uni_cc", "no_such_field": 1}'])
def test_a_job_given_a_bad_config_file_names_it(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(SystemExit, match=r"config\.json: not a run config"):
        train_mod.train_file(path, tmp_path / "store")
    assert not (tmp_path / "store").exists()
