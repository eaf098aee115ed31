"""OGM-GE for Joint ResNet's sum fusion: on-the-fly gradient modulation with generalisation
enhancement (Peng, Wei, Deng, Wang & Hu, "Balanced Multimodal Learning via On-the-fly
Gradient Modulation", CVPR 2022; code: GeWu-Lab/OGM-GE_CVPR2022).

Each mini-batch, each view's share of the prediction is scored with the shared output layer
(W, b): z_v = W h_v + b / 2, so that z_cc + z_mlo is the model's logit. A view's score is
the sum, over the batch's breasts and both labels, of the probability it gives the correct
value; rho_cc = s_cc / s_mlo and rho_mlo = 1 / rho_cc. Between backward() and the optimiser
step, the dominant view (rho > 1) has the gradients of its column's convolution kernels
multiplied by k = 1 - tanh(alpha * rho) (the other view keeps k = 1), and GE adds to every
convolution kernel's gradient of both columns Gaussian noise with the standard deviation of
that tensor's unmodulated gradient (the reference's `grad * k + N(0, std(grad))`).
Batch-norm parameters, biases, the FC-512 layers (unless `fc`) and the output layer are not
modulated, as in the reference, which modulates 4-d (convolution) tensors only.
Modulation runs from epoch 0 to the middle epoch inclusive (the reference: epochs 0 to 50 of
100, `modulation_starts <= epoch <= modulation_ends`, 51 epochs), scaled to the run's epochs.
At rho = 1 the reference modulates its second modality (its `else` branch); CC plays its
first (rho_cc = s_cc / s_mlo is its ratio_v), so MLO is modulated then.

The reference trains with SGD, momentum 0.9 and weight decay 1e-4, its rate x0.1 after 70
of 100 epochs (main.py 246-247; its `--optimizer` flag is parsed but never read), and k acts
on that plain gradient step. Under Adam a slowly varying k is largely normalised away per
parameter, so Table 7 trains OGM-GE with `RunConfig.optimizer = "sgd"` (mvlib.engine.train); the
modulation itself does not depend on the optimiser.

OGM-GE keeps no state across epochs: its noise generator is re-seeded every epoch from the
run's seed, so a run resumed after an epoch draws the same noise as one never interrupted.
"""

from __future__ import annotations

import math

import torch

VIEWS = ("cc", "mlo")
ALPHA_RANGE = (0.05, 1.0)  # searched log-uniformly, like the paper's regularizers


def active(epoch: int, epochs: int) -> bool:
    """Modulation runs from epoch 0 to epochs / 2 inclusive (the reference: 0-50 of 100)."""
    return 2 * epoch <= epochs


@torch.no_grad()
def view_scores(output: torch.nn.Linear, h: dict[str, torch.Tensor],
                labels: torch.Tensor) -> dict[str, float]:
    """Per view: the summed probability of the correct label value over the batch and both
    labels, with the view's logit z_v = W h_v + b / 2."""
    w, b = output.weight.float(), output.bias.float()
    scores = {}
    for v in VIEWS:
        p = torch.sigmoid(h[v].detach().float() @ w.T + b / 2)
        scores[v] = float(torch.where(labels.bool(), p, 1 - p).sum())
    return scores


def coefficients(scores: dict[str, float], alpha: float) -> dict[str, float]:
    """k per view: 1 - tanh(alpha * rho) for the dominant view, 1 for the other; at equal
    scores MLO takes the reference's `else` branch (k = 1 - tanh(alpha))."""
    rho = scores["cc"] / scores["mlo"]
    k = {"cc": 1.0, "mlo": 1.0}
    if rho > 1:
        k["cc"] = 1 - math.tanh(alpha * rho)
    else:
        k["mlo"] = 1 - math.tanh(alpha / rho)
    return k


def modulated_tensors(model: torch.nn.Module, fc: bool = False
                      ) -> dict[str, list[torch.nn.Parameter]]:
    """Per view, the tensors OGM-GE modulates: the column's convolution kernels, and with
    `fc` the FC-512 weight too (the same rule: a trainable tensor of the view's encoder)."""
    out = {}
    for v in VIEWS:
        encoder = getattr(model, v)
        tensors = [p for p in encoder.column.parameters() if p.dim() == 4]
        if fc:
            tensors.append(encoder.fc.weight)
        out[v] = [p for p in tensors if p.requires_grad]
    return out


class OGMGE:
    """The modulation of one run: `modulate` between backward() and the optimiser step."""

    def __init__(self, model: torch.nn.Module, alpha: float, epochs: int, fc: bool = False):
        if not alpha > 0:
            raise ValueError(f"OGM-GE's alpha must be > 0, got {alpha}")
        self.alpha, self.epochs = alpha, epochs
        self.tensors = modulated_tensors(model, fc)
        self.output = model.output
        self.generator: torch.Generator | None = None
        self.epoch = 0

    def start_epoch(self, epoch: int, seed: int) -> None:
        """Re-seed the noise for `epoch` (`seed`: drawn from the run's seed and the epoch)."""
        self.epoch = epoch
        device = self.output.weight.device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    @torch.no_grad()
    def modulate(self, h: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
        """Scale the dominant view's kernel gradients by k and add GE noise to both views'
        (epochs 0 to the middle one inclusive only). Returns the step's record: scores, rho
        and k."""
        scores = view_scores(self.output, h, labels)
        k = coefficients(scores, self.alpha)
        on = active(self.epoch, self.epochs)
        if on:
            for v, tensors in self.tensors.items():
                for p in tensors:
                    if p.grad is None:
                        continue
                    std = p.grad.std() + 1e-8  # the unmodulated gradient's; stays on device
                    noise = torch.randn(p.grad.shape, generator=self.generator,
                                        device=p.grad.device, dtype=p.grad.dtype)
                    p.grad.mul_(k[v]).add_(noise.mul_(std))
        return {"score_cc": scores["cc"], "score_mlo": scores["mlo"],
                "rho_cc": scores["cc"] / scores["mlo"], "k_cc": k["cc"], "k_mlo": k["mlo"],
                "modulated": on}
