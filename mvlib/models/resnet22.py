"""The ResNet-22 column of Wu et al. 2019a (nyukat/breast_cancer_classifier): a 7x7/2 stem, a 3x3/2
max-pool, five stages of two pre-activation basic blocks (16..256 filters) and a final
BN-ReLU. It returns the feature map; global average pooling belongs to the heads."""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (16, 32, 64, 128, 256)
STRIDES = (1, 2, 2, 2, 2)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus shortcut. With `project`, the shortcut is a 1x1
    conv of the activated input (first block of every stage); otherwise the raw input."""

    def __init__(self, c_in: int, c_out: int, stride: int, project: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if project else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + skip


class ResNet22(nn.Module):
    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.first_conv = nn.Conv2d(in_channels, WIDTHS[0], 7, 2, padding=0, bias=False)
        self.first_pool = nn.MaxPool2d(3, 2, padding=0)
        blocks, c_in = [], WIDTHS[0]
        for width, stride in zip(WIDTHS, STRIDES, strict=True):
            blocks += [PreActBlock(c_in, width, stride, project=True),
                       PreActBlock(width, width, 1, project=False)]
            c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_pool(self.first_conv(x))
        return self.relu(self.final_bn(self.blocks(x)))


def resnet22(in_channels: int = 3) -> ResNet22:
    """One view's column: (B, C, H, W) -> (B, 256, H', W') feature map."""
    return ResNet22(in_channels)
