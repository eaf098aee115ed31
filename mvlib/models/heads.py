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


class OutputLayer(nn.Linear):
    """A linear output layer computed in fp32 even under autocast: bf16 logits (8 bits of
    mantissa) tie the scores that AUCs rank (4,000 inputs gave 1,294 distinct values), and
    every checkpoint choice and test AUC rests on those ranks."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        with torch.autocast(h.device.type, enabled=False):
            return super().forward(h.to(self.weight.dtype))  # fp32, fp64 in a reference


class ViewEncoder(nn.Module):
    """Column -> global average pooling -> FC 256->512 -> ReLU: a view's representation h."""

    def __init__(self, column: nn.Module):
        super().__init__()
        self.column = column
        self.fc = nn.Linear(FEATURES, HIDDEN)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The column's pooled 256-d features (what Gradient Blending's extra heads read)."""
        return self.column(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(self.features(x)))


class ModalityDropout(nn.Module):
    """Modality Dropout (Neverova et al. 2015, as the paper adapts it).

    During training each view's representation h_v is multiplied by its own per-example
    Bernoulli mask (drop rate p_v); at evaluation nothing is dropped. The two masks are
    independent, so an example can lose both views: its fused representation is then zero
    and only the output layer's bias predicts it (its loss still trains that bias). The
    kept view is NOT rescaled by 1/(1 - p_v): the paper samples rates up to 1, where the
    rescale would blow a kept representation up by orders of magnitude.
    """

    def __init__(self, cc: float = 0.0, mlo: float = 0.0):
        super().__init__()
        for p in (cc, mlo):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"modality dropout rates must be in [0, 1), got {p}")
        self.rates = {"cc": float(cc), "mlo": float(mlo)}

    def forward(self, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.training or not any(self.rates.values()):
            return h
        out = {}
        for view, rep in h.items():
            keep = torch.rand(rep.shape[0], 1, device=rep.device) >= self.rates[view]
            out[view] = rep * keep.to(rep.dtype)
        return out


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
        self.output = OutputLayer(HIDDEN, TASKS)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.output(self.encoder(self.noise(x[self.view])))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        other = "mlo" if self.view == "cc" else "cc"
        return {self.view: list(self.encoder.parameters()), other: [],
                "shared": list(self.output.parameters())}


class JointResNet(MultiViewModel):
    """A column and FC per view; h = h_cc + h_mlo; the output layer reads h (Figure 2).

    `view_dropout` ({'cc': p, 'mlo': p}) applies Modality Dropout before the sum.
    """

    def __init__(self, channels: int = 3, view_dropout: dict[str, float] | None = None):
        super().__init__()
        self.cc = ViewEncoder(resnet22(channels))
        self.mlo = ViewEncoder(resnet22(channels))
        self.output = OutputLayer(HIDDEN, TASKS)
        self.dropout = ModalityDropout(**(view_dropout or {}))
        self.frozen = False

    def representations(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"cc": self.cc(self.noise(x["cc"])), "mlo": self.mlo(self.noise(x["mlo"]))}

    def fuse(self, h: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.dropout(h)
        return h["cc"] + h["mlo"]

    def init_views(self, states: dict[str, dict[str, torch.Tensor]]) -> None:
        """Pretraining: copy each uni-view model's column and FC (its `encoder`) into this
        model's column and FC of the same view; the output layer keeps its fresh init."""
        for view, state in states.items():
            encoder = {k.removeprefix("encoder."): v for k, v in state.items()
                       if k.startswith("encoder.")}
            if not encoder:
                raise ValueError(f"the {view} state has no 'encoder.' weights: not a uni-view "
                                 "model's state")
            getattr(self, view).load_state_dict(encoder)

    def freeze_views(self) -> None:
        """Train the output layer only (Pretraining's fine-tuning): the view parameters stop
        taking gradients and their BatchNorm layers keep their running statistics."""
        self.frozen = True
        for group in ("cc", "mlo"):
            for p in self.param_groups()[group]:
                p.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> JointResNet:
        super().train(mode)
        if self.frozen:
            for module in self.children():
                if module is not self.output and module is not self.noise \
                        and module is not self.dropout:
                    module.eval()
        return self

    def view_parts(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What each view contributes before fusion: its representation h (view reliance
        replaces one view's by a constant; mvlib.instruments.reliance)."""
        return self.representations(x)

    def fuse_parts(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.output(self.fuse(parts))

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fuse_parts(self.view_parts(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"cc": list(self.cc.parameters()), "mlo": list(self.mlo.parameters()),
                "shared": list(self.output.parameters())}


class SharedResNet(JointResNet):
    """One column applied to both views, then the per-view FCs as in Joint ResNet.

    The shared column belongs to theta_shared; theta_CC and theta_MLO are the view FCs.
    """

    def __init__(self, channels: int = 3, view_dropout: dict[str, float] | None = None):
        nn.Module.__init__(self)
        self.noise = InputNoise()
        self.column = resnet22(channels)
        self.fc_cc, self.fc_mlo = nn.Linear(FEATURES, HIDDEN), nn.Linear(FEATURES, HIDDEN)
        self.output = OutputLayer(HIDDEN, TASKS)
        self.dropout = ModalityDropout(**(view_dropout or {}))
        self.frozen = False

    def representations(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feats = {v: self.column(self.noise(x[v])).mean(dim=(2, 3)) for v in ("cc", "mlo")}
        return {"cc": torch.relu(self.fc_cc(feats["cc"])),
                "mlo": torch.relu(self.fc_mlo(feats["mlo"]))}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"cc": list(self.fc_cc.parameters()), "mlo": list(self.fc_mlo.parameters()),
                "shared": [*self.column.parameters(), *self.output.parameters()]}


class BlendedJointResNet(JointResNet):
    """Joint ResNet with Gradient Blending's extra heads (Wang, Tran & Feiszli, CVPR 2020):
    per view, FC 256->512 + ReLU + output layer on the column's pooled features. `heads`
    gives the three logits the blended loss weighs; `forward` is the joint prediction.
    The extra heads belong to their view's parameter group."""

    def __init__(self, channels: int = 3, view_dropout: dict[str, float] | None = None):
        super().__init__(channels, view_dropout)
        self.extra = nn.ModuleDict({
            v: nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), OutputLayer(HIDDEN, TASKS))
            for v in ("cc", "mlo")})

    def heads(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The three logits: the joint head's and each view's extra head's."""
        feats = {"cc": self.cc.features(self.noise(x["cc"])),
                 "mlo": self.mlo.features(self.noise(x["mlo"]))}
        h = {"cc": torch.relu(self.cc.fc(feats["cc"])),
             "mlo": torch.relu(self.mlo.fc(feats["mlo"]))}
        return {"joint": self.output(self.fuse(h)),
                **{v: self.extra[v](feats[v]) for v in ("cc", "mlo")}}

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.heads(x)["joint"]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"cc": [*self.cc.parameters(), *self.extra["cc"].parameters()],
                "mlo": [*self.mlo.parameters(), *self.extra["mlo"].parameters()],
                "shared": list(self.output.parameters())}


class SplitResNet(MultiViewModel):
    """Two uni-view models trained together on the loss of their averaged predictions.

    forward returns the logit of the mean of the two models' probabilities, so the usual
    binary cross-entropy on it is the loss on the averaged prediction.
    """

    def __init__(self, channels: int = 3):
        super().__init__()
        self.cc, self.mlo = UniView("cc", channels), UniView("mlo", channels)

    def view_parts(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each uni-view model's logits (what view reliance replaces by a constant)."""
        return {"cc": self.cc(x), "mlo": self.mlo(x)}

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fuse_parts(self.view_parts(x))

    def fuse_parts(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        # log(mean(sigmoid)) and log(1 - mean(sigmoid)) computed stably in log space.
        a, b = parts["cc"], parts["mlo"]
        log_p = torch.logaddexp(nn.functional.logsigmoid(a), nn.functional.logsigmoid(b))
        log_q = torch.logaddexp(nn.functional.logsigmoid(-a), nn.functional.logsigmoid(-b))
        return log_p - log_q

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"cc": list(self.cc.parameters()), "mlo": list(self.mlo.parameters()),
                "shared": []}


MODELS = {
    "uni_cc": lambda c: UniView("cc", c), "uni_mlo": lambda c: UniView("mlo", c),
    "joint": JointResNet, "shared": SharedResNet, "split": SplitResNet,
    "joint_blend": BlendedJointResNet,
}
FUSING = ("joint", "shared", "joint_blend")  # the models Modality Dropout applies to


def build_model(name: str, channels: int = 3,
                view_dropout: dict[str, float] | None = None) -> MultiViewModel:
    """One of MODELS by name, for 1 (image) or 3 (image + heatmaps) input channels;
    `view_dropout` (Modality Dropout rates per view) for the models that fuse views."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if view_dropout:
        if name not in FUSING:
            raise ValueError(f"Modality Dropout needs a fusing model {FUSING}, not {name!r}")
        return MODELS[name](channels, view_dropout)
    return MODELS[name](channels)


def blended_loss(heads: dict[str, torch.Tensor], labels: torch.Tensor,
                 weights: dict[str, float]) -> torch.Tensor:
    """Gradient Blending's loss w_joint L_joint + w_cc L_cc + w_mlo L_mlo (Wang et al., CVPR
    2020, eq. 4), on the logits of `BlendedJointResNet.heads`."""
    return sum(weights[k] * loss_fn(heads[k].float(), labels) for k in ("joint", "cc", "mlo"))


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over the two tasks of the mean binary cross-entropy."""
    return nn.functional.binary_cross_entropy_with_logits(
        logits, labels.float(), reduction="none").mean(0).sum()
