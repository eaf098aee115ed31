"""The whole real-data path at the paper's size, on a few breasts: full-size synthetic
breasts written as an NYU-format download (16-bit PNGs, HDF5 heatmaps), prepared into the
store, loaded with the paper's random windows and augmentation, one Joint ResNet training
step on the CPU."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import threadpoolctl
import torch
import zarr
from train_step import one_joint_step

from mvlib.core import paper
from mvlib.data.adapters.examples import write_heatmap, write_png
from mvlib.data.real import prepare_real
from mvlib.synth.config import SynthConfig
from mvlib.synth.generate import generate_chunk

SIZES = {"cc": paper.CC_SIZE, "mlo": paper.MLO_SIZE}


def write_full_size_nyu(root, patients: int = 1) -> pd.DataFrame:
    """`patients` exams of full-size synthetic breasts in NYU's layout; raw images follow the
    usual display (right breasts face left)."""
    cfg = SynthConfig(patients={"train": patients, "val": 0, "test": 0},
                      cc_size=paper.CC_SIZE, mlo_size=paper.MLO_SIZE)
    with threadpoolctl.threadpool_limits(1, "blas"):
        batch = generate_chunk(cfg, 0)
    exams, labels = [], []
    for i in range(patients):
        exam = {"horizontal_flip": "NO"}
        label = {"exam_index": i, "patient_id": f"p{i}", "split": "train"}
        for b, side in ((2 * i, "L"), (2 * i + 1, "R")):
            row = batch.rows.iloc[b]
            label[f"{'left' if side == 'L' else 'right'}_malignant"] = int(row.malignant)
            label[f"{'left' if side == 'L' else 'right'}_benign"] = int(row.benign)
            for view in ("cc", "mlo"):
                stem = f"{i}_{side}_{view.upper()}"
                arr = batch.views[view][b]
                arr = arr[..., ::-1] if side == "R" else arr
                write_png(root / "images" / f"{stem}.png", arr[0])
                for k, kind in ((1, "benign"), (2, "malignant")):
                    write_heatmap(root / "heatmaps" / f"heatmap_{kind}" / f"{stem}.hdf5", arr[k])
                exam[f"{side}-{view.upper()}"] = [stem]
        exams.append(exam)
        labels.append(label)
    with open(root / "exam_list_before_cropping.pkl", "wb") as f:
        pickle.dump(exams, f)
    pd.DataFrame(labels).to_csv(root / "labels.csv", index=False)
    return batch.rows


def test_the_real_data_path_at_the_papers_size(tmp_path):
    rows = write_full_size_nyu(tmp_path / "nyu")
    data = prepare_real("nyu", tmp_path / "nyu", SIZES, tmp_path / "store", progress=False,
                        workers=1, split_fractions=(1.0, 0.0, 0.0))
    assert data.cc.shape == (2, 3, *paper.CC_SIZE) and data.mlo.shape == (2, 3, *paper.MLO_SIZE)
    assert zarr.open_array(str(data.root / "cc.zarr"), mode="r").dtype == np.uint16
    assert data.labels()[:, 0].tolist() == rows.malignant.tolist()
    x, loss, moved = one_joint_step(data, batch_size=2)
    assert x["cc"].shape == (2, 3, *paper.CC_SIZE) and x["mlo"].shape == (2, 3, *paper.MLO_SIZE)
    assert torch.isfinite(loss) and moved
