"""One Joint ResNet training step on a prepared data set's first batch (windows and
augmentation as training draws them), shared by the real-data path tests."""

from __future__ import annotations

import torch

from mvlib.data.loader import to_model_input, train_loader
from mvlib.data.store import BreastDataset
from mvlib.models.heads import JointResNet, loss_fn


def one_joint_step(data: BreastDataset, batch_size: int) -> tuple[dict, torch.Tensor, bool]:
    """The model input, the loss, and whether every parameter moved, after one Adam step."""
    batch = next(iter(train_loader(data, seed=0, batch_size=batch_size, channels=3,
                                   unit="breast")))
    x = to_model_input(batch, torch.device("cpu"), augment=True,
                       generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = JointResNet()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    loss = loss_fn(model(x), batch["labels"])
    opt.zero_grad()
    loss.backward()
    opt.step()
    moved = all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    return x, loss, moved
