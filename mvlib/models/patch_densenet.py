"""The patch classifier of Wu et al. 2019a that makes the benign and malignant heatmaps: a
DenseNet-121 (torchvision's) on 256x256 patches with four classes, every convolution and
max-pool padded the way TensorFlow's "SAME" pads, as nyukat/breast_cancer_classifier's
`src/heatmaps/models.py` defines it (read, not copied: that code is AGPL).

The published weights (`models/sample_patch_model.p` of that repository) are a plain
state_dict of torchvision's densenet121(num_classes=4); the padding adds no parameters, so
they load as they are.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import densenet121

CLASSES = 4
# The reference producer reads class 0 as malignant and class 1 as benign (its heatmap_type).
MALIGNANT, BENIGN = 0, 1
WEIGHTS_URL = ("https://github.com/nyukat/breast_cancer_classifier/raw/master/models/"
               "sample_patch_model.p")


class WeightsError(ValueError):
    """The patch classifier's weights file is missing or unusable; names the file."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis as (before, after): the total is
    max(0, kernel - stride) when the size divides by the stride, else
    max(0, kernel - size % stride); the larger half goes after."""
    total = max(0, kernel - (stride if size % stride == 0 else size % stride))
    return total // 2, total - total // 2


def _pad_hook(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of `pad_same`: zero-pad the input to "SAME" (the reference pads with
    zeros before its max-pool too; that pool follows a ReLU, so zeros never win)."""
    x = args[0]
    (kh, kw), (sh, sw) = module.same_kernel, module.same_stride
    top, bottom = same_padding(x.shape[2], kh, sh)
    left, right = same_padding(x.shape[3], kw, sw)
    return (F.pad(x, (left, right, top, bottom)), *args[1:])


def pad_same(module: nn.Conv2d | nn.MaxPool2d) -> nn.Module:
    """Make a conv or max-pool pad its input as TensorFlow's "SAME" does (its own padding set
    to 0); its parameters and their names stay as they were."""
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    module.same_kernel, module.same_stride = pair(module.kernel_size), pair(module.stride)
    module.padding = (0, 0) if isinstance(module, nn.Conv2d) else 0
    module.register_forward_pre_hook(_pad_hook)
    return module


def patch_classifier() -> nn.Module:
    """DenseNet-121 with four classes and "SAME" padding on its convolutions and max-pools,
    returning logits: features, ReLU, global average pool, the linear classifier (as
    torchvision's DenseNet.forward). Randomly initialised; `load_weights` fills it."""
    model = densenet121(weights=None, num_classes=CLASSES)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            pad_same(module)
    return model


# torchvision's own fix for DenseNet checkpoints saved before its layer names lost a dot
# ("norm.1" -> "norm1"); the published file may be either.
_OLD_NAME = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|"
                       r"running_mean|running_var|num_batches_tracked))$")


def file_digest(path: str | Path) -> str:
    """sha256 of a file (names the weights in cache keys and data-set names)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_weights(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The patch classifier with the weights of `path` (a state_dict file), in eval mode.
    WeightsError names the file when it is missing, unreadable or for another model."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "patch-classifier weights not found; download "
                                 f"sample_patch_model.p from {WEIGHTS_URL} (Wu et al. 2019a)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, a pickle of arbitrary objects
        raise WeightsError(path, f"cannot read the weights ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise WeightsError(path, "expected a state_dict (parameter names -> tensors)")
    state = {_OLD_NAME.sub(r"\1\2", k): v for k, v in state.items()}
    model = patch_classifier()
    for k, v in model.state_dict().items():  # files from before BatchNorm counted its steps
        if k.endswith("num_batches_tracked"):
            state.setdefault(k, v)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1:3]
        raise WeightsError(path, "not the weights of a four-class DenseNet-121 patch "
                                 f"classifier ({'; '.join(s.strip() for s in first)})") from e
    return model.to(device).eval()
