"""A source that ships no heatmaps prepared with them (mvlib.data.real.prepare_real with
`patch_weights`, random weights): three channels in the store, each heatmap the producer's
map of the cropped image, the classifier's outputs cached per image and reused by a second
data set at another size; and the same on the real NYU sample images, through to one
training step."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from train_step import one_joint_step

from mvlib.data import heatmaps as hm
from mvlib.data.adapters import examples
from mvlib.data.crop import prepare_view
from mvlib.data.dicom import read_image, read_png
from mvlib.data.real import prepare_real
from mvlib.models import patch_densenet as pd121

SMOKE_SIZES = {"cc": (64, 48), "mlo": (72, 42)}
SHAPE = (420, 480)  # the breast's box stays over the classifier's 256-px patch


def test_a_source_without_heatmaps_gets_the_producers(tmp_path, patch_weights):
    root = examples.write_vindr(tmp_path / "vindr", studies=4, shape=SHAPE)
    plain = prepare_real("vindr", root, SMOKE_SIZES, tmp_path / "store", progress=False)
    data = prepare_real("vindr", root, SMOKE_SIZES, tmp_path / "store", progress=False,
                        patch_weights=patch_weights)
    assert plain.cc.shape[1] == 1 and data.cc.shape[1:] == (3, 64, 48)
    assert data.root != plain.root and data.meta["config"]["heatmaps"]["weights_sha256"] == \
        pd121.file_digest(patch_weights)
    manifest = data.manifest
    entries = sorted((tmp_path / "store" / "heatmaps").rglob("*.npz"))
    assert len(entries) == 2 * len(manifest)  # one per image used
    model = pd121.load_weights(patch_weights)
    for i in (0, len(manifest) - 1):  # each heatmap is the producer's map of the cropped image
        image = read_image(root / manifest.loc[i, "cc_path"])
        want = prepare_view(image, SMOKE_SIZES["cc"], produce=lambda c: hm.heatmaps(c, model))
        np.testing.assert_allclose(data.cc[i][0], plain.cc[i][0], atol=0)
        np.testing.assert_allclose(data.cc[i][1:], want[1:], atol=1e-3)  # float16 storage
        assert data.cc[i][1:].std() > 0
    other = prepare_real("vindr", root, {"cc": (80, 60), "mlo": (90, 52)}, tmp_path / "store",
                         progress=False, patch_weights=patch_weights)
    assert other.cc.shape[1:] == (3, 80, 60)
    assert sorted((tmp_path / "store" / "heatmaps").rglob("*.npz")) == entries  # reused


def write_real_nyu(real_dir, root, scale: int = 4) -> None:
    """Exams 1 and 2 of the real NYU sample in NYU's layout, at 1/scale of their size,
    without heatmaps; the sample has CC views only, so each serves as its breast's MLO too."""
    exams = pd.read_pickle(real_dir / "exam_list_before_cropping.pkl")
    exam_list, labels = [], []
    present = [e for e in exams if all((real_dir / f"{s}.png").exists()
                                       for s in e.get("L-CC", []) + e.get("R-CC", []))
               and e.get("L-CC") and e.get("R-CC")]
    for i, exam in enumerate(present):
        entry = {"horizontal_flip": exam["horizontal_flip"]}
        for side in ("L", "R"):
            stem = exam[f"{side}-CC"][0]
            examples.write_png(root / "images" / f"{stem}.png",
                               read_png(real_dir / f"{stem}.png")[::scale, ::scale])
            entry[f"{side}-CC"] = entry[f"{side}-MLO"] = [stem]
        exam_list.append(entry)
        labels.append({"exam_index": i, "left_benign": i % 2, "left_malignant": 0,
                       "right_benign": 0, "right_malignant": 1 - i % 2, "split": "train"})
    with open(root / "exam_list_before_cropping.pkl", "wb") as f:
        pickle.dump(exam_list, f)
    pd.DataFrame(labels).to_csv(root / "labels.csv", index=False)


def test_real_mammograms_get_heatmaps_and_train(real_dir, tmp_path, patch_weights):
    write_real_nyu(real_dir, tmp_path / "nyu")
    data = prepare_real("nyu", tmp_path / "nyu", SMOKE_SIZES, tmp_path / "store",
                        progress=False, workers=1, patch_weights=patch_weights)
    assert data.cc.shape == (4, 3, 64, 48) and data.mlo.shape == (4, 3, 72, 42)
    entries = list((tmp_path / "store" / "heatmaps").rglob("*.npz"))
    assert len(entries) == 4  # the MLO copies reuse their CC's entries
    heat = np.stack([data.cc[i][1:] for i in range(4)])
    assert 0 <= heat.min() and heat.max() <= 1 and heat.std() > 0
    _, loss, moved = one_joint_step(data, batch_size=4)
    assert torch.isfinite(loss) and moved


def test_the_command_line_names_missing_weights_and_where_to_get_them(tmp_path, monkeypatch,
                                                                      capsys):
    from mvlib.__main__ import main

    monkeypatch.setenv("MVLIB_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("MVLIB_DEBUG", raising=False)
    root = examples.write_vindr(tmp_path / "vindr", studies=3)
    missing = tmp_path / "sample_patch_model.p"
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "--dataset", "vindr", "--data-root", str(root), "--profile", "smoke",
              "--option", f"patch_weights={missing}"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: patch-classifier weights not found")
    assert pd121.WEIGHTS_URL in err and "Traceback" not in err
