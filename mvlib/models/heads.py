"""The paper's models on top of ResNet-22 columns (Section 4 and 6.1).

Every model maps {'cc': (B,C,H,W), 'mlo': ...} to logits (B, 2) for two independent
binary classifiers, [malignant, benign]; the loss is the sum of the two cross-entropies.
Every model names its three parameter groups as the paper does: theta_CC (CC column and
its FC), theta_MLO (MLO column and its FC) and theta_shared (what both views use).
"""

from __future__ import annotations

import torch
from torch import nn

from mvlib.models.resnet22 import resnet22

FEATURES, HIDDEN, TASKS = 256, 512, 2  # column output, view representation, [malignant, benign]


class InputNoise(nn.Module):
    """Gaussian noise (std 0.01) on every input view during training only."""

    def __init__(self, std: float = 0.01):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        # randn_like on a channels_last tensor is ~10x slower on CPU: draw contiguous.
        return x + self.std * torch.randn(x.shape, dtype=x.dtype, device=x.device)


class ViewEncoder(nn.Module):
    """Column -> global average pooling -> FC 256->512 -> ReLU: a view's representation h."""

    def __init__(self, column: nn.Module):
        super().__init__()
        self.column = column
        self.fc = nn.Linear(FEATURES, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(self.column(x).mean(dim=(2, 3))))


class MultiViewModel(nn.Module):
    """Base: input noise, the output layer and the parameter-group interface."""

    views: tuple[str, ...] = ("cc", "mlo")

    def __init__(self):
        super().__init__()
        self.noise = InputNoise()

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        raise NotImplementedError

    def group_names(self) -> dict[str, list[str]]:
        """Parameter names per group; every parameter is in exactly one group."""
        ids = {id(p): n for n, p in self.named_parameters()}
        return {g: [ids[id(p)] for p in ps] for g, ps in self.param_groups().items()}


class UniView(MultiViewModel):
    """One view only: column + FC + output layer (the paper's uni-view models)."""

    def __init__(self, view: str, channels: int = 3):
        super().__init__()
        if view not in ("cc", "mlo"):
            raise ValueError(f"view must be 'cc' or 'mlo', got {view!r}")
        self.view = view
        self.views = (view,)
        self.encoder = ViewEncoder(resnet22(channels))
        self.output = nn.Linear(HIDDEN, TASKS)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.output(self.encoder(self.noise(x[self.view])))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        other = "mlo" if self.view == "cc" else "cc"
        return {self.view: list(self.encoder.parameters()), other: [],
                "shared": list(self.output.parameters())}


class JointResNet(MultiViewModel):
    """A column and FC per view; h = h_cc + h_mlo; the output layer reads h (Figure 2)."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.cc = ViewEncoder(resnet22(channels))
        self.mlo = ViewEncoder(resnet22(channels))
        self.output = nn.Linear(HIDDEN, TASKS)

    def representations(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"cc": self.cc(self.noise(x["cc"])), "mlo": self.mlo(self.noise(x["mlo"]))}

    def fuse(self, h: dict[str, torch.Tensor]) -> torch.Tensor:
        return h["cc"] + h["mlo"]

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.output(self.fuse(self.representations(x)))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"cc": list(self.cc.parameters()), "mlo": list(self.mlo.parameters()),
                "shared": list(self.output.parameters())}


class SharedResNet(JointResNet):
    """One column applied to both views, then the per-view FCs as in Joint ResNet.

    The shared column belongs to theta_shared; theta_CC and theta_MLO are the view FCs.
    """

    def __init__(self, channels: int = 3):
        nn.Module.__init__(self)
        self.noise = InputNoise()
        self.column = resnet22(channels)
        self.fc_cc, self.fc_mlo = nn.Linear(FEATURES, HIDDEN), nn.Linear(FEATURES, HIDDEN)
        self.output = nn.Linear(HIDDEN, TASKS)

    def representations(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feats = {v: self.column(self.noise(x[v])).mean(dim=(2, 3)) for v in ("cc", "mlo")}
        return {"cc": torch.relu(self.fc_cc(feats["cc"])),
                "mlo": torch.relu(self.fc_mlo(feats["mlo"]))}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"cc": list(self.fc_cc.parameters()), "mlo": list(self.fc_mlo.parameters()),
                "shared": [*self.column.parameters(), *self.output.parameters()]}


class SplitResNet(MultiViewModel):
    """Two uni-view models trained together on the loss of their averaged predictions.

    forward returns the logit of the mean of the two models' probabilities, so the usual
    binary cross-entropy on it is the loss on the averaged prediction.
    """

    def __init__(self, channels: int = 3):
        super().__init__()
        self.cc, self.mlo = UniView("cc", channels), UniView("mlo", channels)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        # log(mean(sigmoid)) and log(1 - mean(sigmoid)) computed stably in log space.
        a, b = self.cc(x), self.mlo(x)
        log_p = torch.logaddexp(nn.functional.logsigmoid(a), nn.functional.logsigmoid(b))
        log_q = torch.logaddexp(nn.functional.logsigmoid(-a), nn.functional.logsigmoid(-b))
        return log_p - log_q

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"cc": list(self.cc.parameters()), "mlo": list(self.mlo.parameters()),
                "shared": []}


MODELS = {
    "uni_cc": lambda c: UniView("cc", c), "uni_mlo": lambda c: UniView("mlo", c),
    "joint": JointResNet, "shared": SharedResNet, "split": SplitResNet,
}


def build_model(name: str, channels: int = 3) -> MultiViewModel:
    """One of MODELS by name, for 1 (image) or 3 (image + heatmaps) input channels."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](channels)


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over the two tasks of the mean binary cross-entropy."""
    return nn.functional.binary_cross_entropy_with_logits(
        logits, labels.float(), reduction="none").mean(0).sum()
