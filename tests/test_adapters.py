"""Real-data adapters: each source's on-disk layout -> prepare -> a data set that trains.

The fixtures are tiny downloads written in each source's exact layout
(mvlib.data.adapters.examples: CSV columns, folder names, DICOMs written with pydicom,
JPEG 2000 and MONOCHROME1 ones among them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from mvlib.__main__ import main
from mvlib.data import build
from mvlib.data.adapters import examples
from mvlib.data.adapters.common import normalise_splits, select_breasts, split_patients
from mvlib.data.loader import BreastArrays, to_model_input, train_loader
from mvlib.data.orientation import faces_right
from mvlib.data.real import load_report, prepare_real
from mvlib.data.store import BreastDataset, DatasetError
from mvlib.engine.train import train
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunConfig
from mvlib.models.heads import build_model, loss_fn

SMOKE = {"cc": (64, 48), "mlo": (72, 42)}
# What each example download holds (see examples.py), as the report must count it.
EXPECTED = {
    "nyu": dict(channels=3, kept=19, other={}, not_chosen=1, no_cc=0, no_mlo=1, unreadable=0),
    "rsna": dict(channels=1, kept=18, other={"ML": 1}, not_chosen=1, no_cc=0, no_mlo=1,
                 unreadable=1),
    "vindr": dict(channels=1, kept=20, other={"XCCL": 1}, not_chosen=0, no_cc=0, no_mlo=0,
                  unreadable=0),
    "cbis-ddsm": dict(channels=1, kept=19, other={}, not_chosen=4, no_cc=0, no_mlo=0,
                      unreadable=1),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MVLIB_STORE", str(path))
        yield path


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    base = tmp_path_factory.mktemp("downloads")
    return {name: write(base / name) for name, write in examples.WRITERS.items()}


@pytest.fixture(scope="module")
def prepared(store, downloads):
    with pytest.warns(UserWarning, match="skipped for unreadable files") as record:
        out = {name: prepare(name, "smoke", root, progress=False)
               for name, root in downloads.items()}
    assert len(record) == 2  # rsna's corrupt file, cbis-ddsm's missing one
    return out


def one_training_step(data, channels: int) -> float:
    torch.manual_seed(0)
    model = build_model("joint", channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = next(iter(train_loader(data, seed=0, batch_size=4, channels=channels)))
    x = to_model_input(batch, torch.device("cpu"), augment=True,
                       generator=torch.Generator().manual_seed(0))
    loss = loss_fn(model(x), batch["labels"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("source", list(EXPECTED))
def test_source_prepares_into_a_data_set_that_trains(prepared, source):
    data, want = prepared[source], EXPECTED[source]
    assert data.meta["source"] == source
    assert data.cc.shape == (want["kept"], want["channels"], *SMOKE["cc"])
    assert data.mlo.shape == (want["kept"], want["channels"], *SMOKE["mlo"])
    # the image channel stored as uint16 (16 bits of a mammogram, not float16's 11), read
    # back as float32; the heatmaps beside it as float16
    assert data.cc.dtype == np.float32 and data.meta["image_dtype"] == "uint16"
    assert zarr.open_array(str(data.root / "cc.zarr"), mode="r").dtype == np.uint16
    for view in (data.cc, data.mlo):
        images = np.asarray(view[:, 0], np.float32)
        assert images.min() >= 0 and images.max() <= 1
        assert all(faces_right(img) for img in images)  # left and right breasts alike
    counts = data.counts()
    assert set(counts.index) == {"train", "val", "test", "total"}
    assert counts.loc["train", "malignant"] + counts.loc["train", "benign"] > 0
    report = load_report(data)
    assert report.breasts_kept == want["kept"] == len(data.manifest)
    assert report.images_other_views == want["other"]
    assert report.images_not_chosen == want["not_chosen"]
    assert (report.breasts_without_cc, report.breasts_without_mlo) == (want["no_cc"],
                                                                        want["no_mlo"])
    assert report.breasts_unreadable == len(report.unreadable) == want["unreadable"]
    table = report.table()
    assert table.loc["breasts in the data set", "count"] == want["kept"]
    assert np.isfinite(one_training_step(data, want["channels"]))


def test_official_splits_are_kept(prepared, downloads):
    vindr = prepared["vindr"].manifest
    test_studies = {f"{s:04x}a1b2c3d4e5f6" for s in (7, 8, 9)}
    assert set(vindr.loc[vindr["split"] == "test", "patient_id"]) == test_studies
    assert "findings" in vindr.columns and vindr["findings"].sum() > 0
    cbis = prepared["cbis-ddsm"].manifest
    assert set(cbis.loc[cbis["split"] == "test", "patient_id"]) == {"P_00008", "P_00009",
                                                                    "P_00010"}
    # several images of a view: the first by path (Calc- before Mass-) is used
    both = cbis[(cbis["patient_id"] == "P_00001") & (cbis["laterality"] == "L")]
    assert both["cc_path"].iloc[0].startswith("CBIS-DDSM/Calc-Training_P_00001_LEFT_CC/")


def test_nyu_labels_flip_and_heatmaps(prepared):
    data = prepared["nyu"]
    assert data.channels == ["image", "benign_heatmap", "malignant_heatmap"]
    m = data.manifest
    assert set(m["horizontal_flip"]) == {"NO", "YES"}
    # the heatmaps went through the same crop and flip: they sit on the breast
    image, heat = np.asarray(data.cc[:, 0], np.float32), np.asarray(data.cc[:, 2], np.float32)
    assert np.corrcoef(image.ravel(), heat.ravel())[0, 1] > 0.99
    first = m[m["exam_id"] == 0].set_index("laterality")
    assert (first.loc["L", "malignant"], first.loc["R", "benign"]) == (1, 0)


def test_three_channels_on_an_image_only_data_set_names_it(prepared):
    data = prepared["rsna"]
    with pytest.raises(ValueError, match=f"{data.root}: has 1 channel"):
        BreastArrays(data, channels=3)


def test_prepare_again_reopens_without_rebuilding(prepared, downloads, monkeypatch):
    monkeypatch.setattr(build, "_stage", lambda *a, **k: pytest.fail("rebuilt"))
    with pytest.warns(UserWarning):
        again = prepare("rsna", "smoke", downloads["rsna"], progress=False)
    assert again.root == prepared["rsna"].root


def test_preparation_resumes_and_parallel_equals_serial(tmp_path, downloads, monkeypatch):
    root = downloads["vindr"]
    real_chunk, calls = build._prepare_chunk, []

    def failing(k, *args):
        calls.append(k)
        if k == 1 and calls.count(1) == 1:
            raise KeyboardInterrupt  # an interrupted preparation
        return real_chunk(k, *args)

    monkeypatch.setattr(build, "_prepare_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare_real("vindr", root, SMOKE, tmp_path / "a", progress=False, workers=1)
    serial = prepare_real("vindr", root, SMOKE, tmp_path / "a", progress=False, workers=1)
    assert calls == [0, 1, 1, 2]  # chunk 0 was not prepared again
    monkeypatch.setattr(build, "_prepare_chunk", real_chunk)
    parallel = prepare_real("vindr", root, SMOKE, tmp_path / "b", progress=False, workers=2)
    assert serial.root.name == parallel.root.name
    np.testing.assert_array_equal(serial.cc, parallel.cc)
    np.testing.assert_array_equal(serial.mlo, parallel.mlo)
    pd.testing.assert_frame_equal(serial.manifest, parallel.manifest)


def stored(data) -> dict:
    """A data set as its files hold it: every zarr array's stored values, and its tables."""
    arrays = {p.name: zarr.open_array(str(p), mode="r")[...] for p in data.root.glob("*.zarr")}
    return {**arrays, "manifest": (data.root / "manifest.csv").read_text(),
            "meta": json.loads((data.root / "meta.json").read_text())}


def assert_same_store(a, b) -> None:
    assert a.root.name == b.root.name
    x, y = stored(a), stored(b)
    assert sorted(x) == sorted(y) == ["cc.zarr", "manifest", "meta", "mlo.zarr"]
    for key in x:
        if key.endswith(".zarr"):
            assert x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key]), key
        else:
            assert x[key] == y[key], key


# A preparation in its own process whose jobs after the first chunk hang: it is killed there.
_HANGS_AFTER_CHUNK_0 = """
import sys, time
from mvlib.data import build
real = build._prepare_chunk
def hang(k, *args):
    if k > 0:
        time.sleep(600)
    return real(k, *args)
build._prepare_chunk = hang
from mvlib.data.real import prepare_real
prepare_real("vindr", sys.argv[1], {"cc": (64, 48), "mlo": (72, 42)}, sys.argv[2],
             progress=False, workers=1)
"""


def test_a_killed_preparation_resumes_to_the_same_store(tmp_path, downloads, monkeypatch):
    root = downloads["vindr"]
    proc = subprocess.Popen([sys.executable, "-c", _HANGS_AFTER_CHUNK_0, str(root),
                             str(tmp_path / "a")], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not list((tmp_path / "a").glob("data/*.staging/rows_00000.csv")):
            assert proc.poll() is None and time.time() < deadline, "the job did not start"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    staging = next((tmp_path / "a").glob("data/*.staging"))
    assert [build.chunk_done(staging, k) for k in range(3)] == [True, False, False]
    real_chunk, calls = build._prepare_chunk, []
    monkeypatch.setattr(build, "_prepare_chunk", lambda k, *a: calls.append(k) or real_chunk(k, *a))
    resumed = prepare_real("vindr", root, SMOKE, tmp_path / "a", progress=False, workers=1)
    assert calls == [1, 2]  # the killed job's finished chunk is kept
    monkeypatch.setattr(build, "_prepare_chunk", real_chunk)
    whole = prepare_real("vindr", root, SMOKE, tmp_path / "b", progress=False, workers=1)
    assert_same_store(resumed, whole)
    assert not staging.exists() and not list(resumed.root.glob("rows_*"))


def test_birads_mapping_is_a_parameter(tmp_path, downloads):
    data = prepare_real("vindr", downloads["vindr"], SMOKE, tmp_path, progress=False,
                        birads_labels={"malignant": [4, 5], "benign": [2]})
    m = data.manifest
    assert (m["malignant"] == m["birads"].isin([4, 5])).all()
    assert (m["benign"] == (m["birads"] == 2)).all()


def test_train_runs_on_a_real_source(tmp_path, store, downloads, prepared):
    # train() keeps the best epoch by validation AUC, so validation needs both classes:
    # these split fractions give the tiny download one malignant breast there.
    cfg = RunConfig(model="joint", lr=1e-4, epochs=1, channels=1, dataset="rsna",
                    data_root=str(downloads["rsna"]), profile="smoke", tta_windows=1,
                    knobs={"split_fractions": [0.4, 0.3, 0.3]})
    with pytest.warns(UserWarning):
        run = train(cfg, tmp_path)
    assert run.status()["state"] == "done"


def test_command_line_prepare(capsys, store, downloads, prepared):
    main(["prepare", "--dataset", "vindr", "--data-root", str(downloads["vindr"]),
          "--profile", "smoke"])
    out = capsys.readouterr().out
    assert str(prepared["vindr"].root) in out and "images of view XCCL (not used)" in out


# --- errors name the file and the problem ------------------------------------------------

def test_missing_data_root(tmp_path):
    with pytest.raises(ValueError, match="needs data_root"):
        prepare_real("rsna", None, SMOKE, tmp_path)
    with pytest.raises(DatasetError, match="nowhere: no such folder"):
        prepare_real("rsna", tmp_path / "nowhere", SMOKE, tmp_path)


def test_command_line_prints_a_data_error_as_one_line(tmp_path):
    # As a new user would try it: no traceback, the message, a non-zero exit.
    env = {**os.environ, "MVLIB_STORE": str(tmp_path)}
    env.pop("MVLIB_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "mvlib", "prepare", "--dataset", "rsna",
                           "--data-root", str(tmp_path / "nonexistent")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "nonexistent: no such folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 2  # the message, then how to see more


def test_missing_csv_and_columns_are_named(tmp_path):
    with pytest.raises(DatasetError, match="train.csv: not found"):
        prepare_real("rsna", tmp_path, SMOKE, tmp_path)
    pd.DataFrame({"patient_id": [1], "image_id": [2]}).to_csv(tmp_path / "train.csv")
    with pytest.raises(DatasetError, match=r"train.csv: missing columns \['laterality'"):
        prepare_real("rsna", tmp_path, SMOKE, tmp_path)


def test_unknown_option_lists_the_accepted_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown options \['birads'\].*birads_labels"):
        prepare_real("vindr", tmp_path, SMOKE, tmp_path, birads=[5])


def test_bad_birads_and_missing_nyu_labels(tmp_path, downloads):
    import shutil

    vindr = tmp_path / "vindr"
    shutil.copytree(downloads["vindr"], vindr)
    csv = vindr / "breast-level_annotations.csv"
    df = pd.read_csv(csv)
    df.loc[3, "breast_birads"] = "BI-RADS X"
    df.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"breast-level_annotations.csv row 5: .*'BI-RADS X'"):
        prepare_real("vindr", vindr, SMOKE, tmp_path)
    nyu = tmp_path / "nyu"
    shutil.copytree(downloads["nyu"], nyu)
    (nyu / "labels.csv").unlink()
    with pytest.raises(DatasetError, match="labels.csv: not found"):
        prepare_real("nyu", nyu, SMOKE, tmp_path)


def test_all_files_unreadable_is_an_error(tmp_path, downloads):
    import shutil

    rsna = tmp_path / "rsna"
    shutil.copytree(downloads["rsna"], rsna)
    for f in rsna.rglob("*.dcm"):
        f.write_bytes(b"broken")
    with pytest.raises(DatasetError, match="no breast could be prepared"):
        prepare_real("rsna", rsna, SMOKE, tmp_path / "store", progress=False)


# --- the pairing and split rules ----------------------------------------------------------

def _images(rows):
    cols = ["patient_id", "exam_id", "laterality", "view", "path", "malignant", "benign",
            "split"]
    return pd.DataFrame(rows, columns=cols)


def test_pairing_rules():
    images = _images([
        ("a", "a", "L", "CC", "a/2.dcm", 0, 0, ""), ("a", "a", "L", "CC", "a/1.dcm", 1, 0, ""),
        ("a", "a", "L", "MLO", "a/3.dcm", 0, 0, ""), ("a", "a", "L", "ML", "a/4.dcm", 0, 0, ""),
        ("a", "a", "R", "CC", "a/5.dcm", 0, 0, ""), ("a", "a", "R", "LM", "a/6.dcm", 0, 1, ""),
        ("b", "b", "l", "cc", "b/1.dcm", 0, 0, ""), ("b", "b", "L", "MLO", "b/2.dcm", 0, 0, ""),
        ("c", "c", "R", "MLO", "c/1.dcm", 0, 0, ""),
    ])
    breasts, report = select_breasts(images, split_fractions=(1.0, 0.0, 0.0))
    assert list(breasts["cc_path"]) == ["a/1.dcm", "b/1.dcm"]  # first by path
    assert list(breasts["malignant"]) == [1, 0]  # any of the breast's rows
    assert report.images_other_views == {"LM": 1, "ML": 1}
    assert (report.images_not_chosen, report.breasts_listed, report.breasts_paired) == (1, 4, 2)
    assert (report.breasts_without_cc, report.breasts_without_mlo) == (1, 1)
    with_ml, report = select_breasts(images, {"CC": "cc", "MLO": "mlo", "ML": "mlo"},
                                     split_fractions=(1.0, 0.0, 0.0))
    assert list(with_ml["mlo_path"]) == ["a/3.dcm", "b/2.dcm"]  # MLO still first by path


def test_bad_laterality_names_the_file():
    with pytest.raises(DatasetError, match="x.dcm: laterality must be L or R"):
        select_breasts(_images([("a", "a", "B", "CC", "x.dcm", 0, 0, "")]))


def test_split_by_patient_is_reproducible_and_proportional():
    patients = [f"p{i:03d}" for i in range(100)]
    a, _ = split_patients(patients[::-1], fractions=(0.7, 0.1, 0.2), seed=1)
    b, _ = split_patients(patients, fractions=(0.7, 0.1, 0.2), seed=1)
    assert a == b
    assert pd.Series(a).value_counts().to_dict() == {"train": 70, "test": 20, "val": 10}
    c, _ = split_patients(patients, fractions=(0.7, 0.1, 0.2), seed=2)
    assert c != a


def test_official_split_keeps_test_and_draws_val_from_train():
    official = pd.Series({f"p{i}": {"train"} for i in range(18)}
                         | {"t1": {"test"}, "both": {"train", "test"}})
    split, conflicts = split_patients(official.index, official, fractions=(0.8, 0.1, 0.1))
    assert conflicts == 1 and split["both"] == "test" and split["t1"] == "test"
    assert sum(s == "val" for s in split.values()) == 2  # 0.1 / 0.9 of 18
    assert sum(s == "test" for s in split.values()) == 2
    as_dict, _ = split_patients(official.index, official.to_dict(), fractions=(0.8, 0.1, 0.1))
    assert as_dict == split  # a plain dict of sets works as well


# --- official split values: known spellings map, anything else is an error ---------------

def _nyu_with_splits(tmp_path, downloads, splits: list[str]):
    """The example NYU exam list and labels (no images needed) with a split column."""
    import shutil

    root = tmp_path / "nyu"
    root.mkdir()
    shutil.copy(downloads["nyu"] / "exam_list_before_cropping.pkl", root)
    labels = pd.read_csv(downloads["nyu"] / "labels.csv", dtype=str)
    labels["split"] = splits + ["train"] * (len(labels) - len(splits))
    labels.to_csv(root / "labels.csv", index=False)
    return root


def test_split_spellings_are_normalised():
    values = pd.Series(["Test", " validation ", "TRAINING", "", None, "val", "testing", "Valid"])
    assert list(normalise_splits(values, "f.csv")) == [
        "test", "val", "train", "", "", "val", "test", "val"]
    with pytest.raises(DatasetError, match=r"f.csv: unknown split value\(s\) \[''\]"):
        normalise_splits(pd.Series(["train", ""]), "f.csv", allow_empty=False)


@pytest.mark.parametrize("bad", ["holdout", "tst", "train/test", "dev"])
def test_unknown_nyu_split_names_the_file_and_the_value(tmp_path, downloads, bad):
    from mvlib.data.adapters.nyu import list_images

    root = _nyu_with_splits(tmp_path, downloads, ["Test", bad, bad])
    with pytest.raises(DatasetError, match=rf"labels.csv: unknown split value\(s\) "
                                           rf"\['{bad}'\] in 2 row"):
        list_images(root)


def test_nyu_split_spellings_keep_test_and_val_patients_out_of_train(tmp_path, downloads):
    from mvlib.data.adapters.nyu import list_images

    # exams 0-5 are patients p0-p5; exam 3 has no official split (drawn train/val)
    root = _nyu_with_splits(tmp_path, downloads,
                            ["Test", " Validation ", "TRAINING", "", "testing", "VAL"])
    images = list_images(root)
    assert set(images["split"]) == {"test", "val", "train", ""}
    breasts, _ = select_breasts(images)
    split = breasts.groupby("patient_id")["split"].agg(set).to_dict()
    assert split["p0"] == split["p4"] == {"test"}
    assert split["p1"] == split["p5"] == {"val"}
    assert split["p3"] <= {"train", "val"}
    assert set(breasts["split"]) == {"train", "val", "test"}


def test_unknown_split_in_an_image_list_or_official_splits_is_an_error():
    images = _images([("a", "a", "L", "CC", "a/1.dcm", 0, 0, "holdout"),
                      ("a", "a", "L", "MLO", "a/2.dcm", 0, 0, "holdout")])
    with pytest.raises(DatasetError, match=r"image list: unknown split value\(s\) \['holdout'\]"):
        select_breasts(images)
    images["split"] = "Testing"
    breasts, _ = select_breasts(images)
    assert list(breasts["split"]) == ["test"]
    official = pd.Series({"a": {"train"}, "b": {"Test"}})
    with pytest.raises(DatasetError, match=r"unknown value\(s\) \['Test'\]"):
        split_patients(official.index, official)


def test_vindr_split_spellings(tmp_path, downloads):
    import shutil

    from mvlib.data.adapters.vindr import list_images

    root = tmp_path / "vindr"
    shutil.copytree(downloads["vindr"], root)
    csv = root / "breast-level_annotations.csv"
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    want = list_images(root)["split"]
    df["split"] = df["split"].str.upper()  # "TRAINING", "TEST"
    df.to_csv(csv, index=False)
    pd.testing.assert_series_equal(list_images(root)["split"], want)
    for bad in ("holdout", ""):
        df.loc[2, "split"] = bad
        df.to_csv(csv, index=False)
        with pytest.raises(DatasetError, match=rf"breast-level_annotations.csv: unknown split "
                                               rf"value\(s\) \['{bad}'\]"):
            list_images(root)


def test_cbis_missing_columns_name_the_file(tmp_path, downloads):
    import shutil

    from mvlib.data.adapters.cbis_ddsm import list_images

    root = tmp_path / "cbis"
    shutil.copytree(downloads["cbis-ddsm"], root)
    csv = root / "calc_case_description_test_set.csv"
    pd.read_csv(csv).drop(columns=["pathology"]).to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"calc_case_description_test_set.csv: missing "
                                           r"columns \['pathology'\]"):
        list_images(root)


def test_cbis_column_names_are_normalised(downloads):
    from mvlib.data.adapters.cbis_ddsm import list_images

    images = list_images(downloads["cbis-ddsm"])
    assert images["density"].notna().all()  # "breast_density" and "breast density"
    assert not images["path"].str.contains(r"\s$").any()
    assert json.dumps(sorted(set(images["split"]))) == '["test", "train"]'


def test_command_line_options_parse_as_json_or_text():
    from mvlib.__main__ import _option

    assert _option('birads_labels={"malignant": [5], "benign": [4]}') == (
        "birads_labels", {"malignant": [5], "benign": [4]})
    assert _option("labels=my labels.csv") == ("labels", "my labels.csv")
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        _option("nonsense")


class _RunsCode:
    """What a crafted pickle does: loading it calls a function of the attacker's choice."""

    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_a_crafted_exam_list_is_refused_not_run(tmp_path, monkeypatch):
    import pickle

    import numpy as np

    from mvlib.data.adapters.nyu import read_exam_list

    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "exam_list_before_cropping.pkl"
    bad.write_bytes(pickle.dumps([{"horizontal_flip": "NO", "L-CC": [_RunsCode()]}]))
    with pytest.raises(DatasetError, match=r"exam_list_before_cropping.pkl: .*posix.system"):
        read_exam_list(bad)
    assert not (tmp_path / "pwned").exists()
    # plain data, numpy scalars and arrays included (the cropped lists' coordinates), loads
    good = tmp_path / "good.pkl"
    exams = [{"horizontal_flip": "YES", "L-CC": ["0_L_CC"], "R-MLO": [],
              "best_center": {"L-CC": [(np.int64(3), np.float32(2.5))]},
              "window": np.arange(4)}]
    good.write_bytes(pickle.dumps(exams))
    back = read_exam_list(good)
    assert back[0]["best_center"]["L-CC"][0] == (3, 2.5)
    np.testing.assert_array_equal(back[0]["window"], np.arange(4))


@pytest.mark.parametrize("name", ["nyu", "rsna"])
def test_a_real_set_read_from_its_store_gives_the_model_its_in_memory_inputs(prepared, name):
    # on disk a real image reaches the device as uint16 (and its heatmaps as float16) and is
    # converted there: the model's inputs are those of the set decoded into memory, exactly
    memory = prepared[name]
    disk = BreastDataset.open(memory.root, in_memory=False)
    assert memory.meta["image_dtype"] == "uint16" and memory.cc.dtype == np.float32
    for channels in (EXPECTED[name]["channels"], 1):
        want = train_loader(memory, seed=0, batch_size=3, channels=channels)
        got = train_loader(disk, seed=0, batch_size=3, channels=channels, threads=2)
        for a, b in zip(want, got, strict=True):
            assert b["cc"].dtype == torch.uint16 and b["mlo"].dtype == torch.uint16
            assert ("cc_heatmaps" in b) == (channels == 3)
            for augment in (False, True):
                x, y = (to_model_input(batch, torch.device("cpu"), augment,
                                       torch.Generator().manual_seed(1)) for batch in (a, b))
                for view in ("cc", "mlo"):
                    assert x[view].shape[1] == channels
                    torch.testing.assert_close(y[view], x[view], atol=0, rtol=0)
