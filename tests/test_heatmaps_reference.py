"""Parity of our heatmap producer with the reference's, on random weights and a real
mammogram: nyukat/breast_cancer_classifier at commit 6176ebe (`src/heatmaps/models.py`,
`src/heatmaps/run_producer.py`), run from a checkout outside this repository (AGPL: read and
run, never copied). Set MVLIB_NYUKAT_REF to that checkout to run it; it skips otherwise.

Recorded on 2026-12-04 (torch 2.14.1, CPU, fp32): the half-resolution crop of the real
sample 1_L_CC (1296 x 632 px, 16 x 7 = 112 patches, both axes with shorter steps drawn), the
same random weights (BatchNorm statistics randomised too) in both models, the same stride
draws (seed 0): max |ours - reference| = 7.5e-08 (benign), 1.2e-07 (malignant); 46 s.
"""

from __future__ import annotations

import os
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mvlib.data import heatmaps as hm
from mvlib.data.crop import crop_view
from mvlib.data.dicom import read_png
from mvlib.models import patch_densenet as pd121

REF = os.environ.get("MVLIB_NYUKAT_REF")
pytestmark = pytest.mark.skipif(
    not REF, reason="MVLIB_NYUKAT_REF (a checkout of nyukat/breast_cancer_classifier) not set")


def reference_heatmaps(ref: Path, image: np.ndarray, state: dict, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(benign, malignant) as the reference's producer makes them from a cropped image that
    already faces its way, one image per run (random seeded once, as its main() does)."""
    for name in ("imageio", "h5py", "cv2"):  # its readers, augmentations: never called here
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.path.insert(0, str(ref))
    try:
        from src.data_loading import loading
        from src.heatmaps import models
        from src.heatmaps import run_producer as rp
    finally:
        sys.path.remove(str(ref))
    model = models.ModifiedDenseNet121(num_classes=4)
    model.densenet.load_state_dict(state)
    model._modify_densenet()
    model.eval()
    params = dict(patch_size=256, stride_fixed=70, more_patches=5, input_channels=3,
                  number_of_classes=4)
    random.seed(seed)
    x = image.astype(float)
    loading.standard_normalize_single_image(x)
    rows = rp.stride_list_generator(x.shape[0], 256, 5, 70)  # its "width" list comes first
    cols = rp.stride_list_generator(x.shape[1], 256, 5, 70)
    patches = rp.patch_batch_prepare(x, cols, rows, 256)
    probs = rp.get_all_prob(patches, 100, model, torch.device("cpu"), params)
    malignant, _ = rp.probabilities_to_heatmap(0, probs, x.shape, cols, rows, 256, 0)
    benign, _ = rp.probabilities_to_heatmap(0, probs, x.shape, cols, rows, 256, 1)
    return benign, malignant


def test_our_heatmaps_equal_the_references_on_random_weights(real_dir):
    image = read_png(real_dir / "1_L_CC.png")[::2, ::2]
    crop = np.ascontiguousarray(crop_view(image, flip=False)[0])  # a left view faces right
    torch.manual_seed(0)
    ours = pd121.patch_classifier().eval()
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    with torch.no_grad():  # BatchNorm's statistics too, or eval mode would hide them
        for k, v in state.items():
            if k.endswith(("running_mean", "running_var")):
                v.copy_(torch.rand_like(v) + (0.5 if k.endswith("var") else -0.5))
    ours.load_state_dict(state)
    mine = hm.heatmaps(crop, ours, seed=0)
    benign, malignant = reference_heatmaps(Path(REF), crop, state)
    gaps = np.abs(mine[0] - benign).max(), np.abs(mine[1] - malignant).max()
    print(f"crop {crop.shape}, max |ours - reference|: benign {gaps[0]:.2g}, "
          f"malignant {gaps[1]:.2g}")
    assert max(gaps) < 1e-5
    assert benign.std() > 1e-4  # the maps vary: the comparison is not of two constants
