import torch

from mvlib.models.resnet22 import PreActBlock, resnet22


def test_parameter_count_matches_the_reference_column():
    assert sum(p.numel() for p in resnet22(3).parameters()) == 2_801_104
    # One input channel removes 2 x 7 x 7 x 16 weights of the stem.
    assert sum(p.numel() for p in resnet22(1).parameters()) == 2_801_104 - 2 * 49 * 16


def test_feature_map_shape_and_downsampling():
    col = resnet22(3).eval()
    assert col(torch.zeros(2, 3, 128, 96)).shape == (2, 256, 2, 2)
    # 7x7/2 stem (no padding) -> 3x3/2 pool -> four stride-2 stages.
    assert col(torch.zeros(1, 3, 256, 192)).shape == (1, 256, 4, 3)


def test_every_stage_opens_with_a_projection_block():
    col = resnet22(3)
    blocks = list(col.blocks)
    assert len(blocks) == 10
    assert [b.shortcut is not None for b in blocks] == [True, False] * 5
    assert [b.conv1.stride[0] for b in blocks[::2]] == [1, 2, 2, 2, 2]


def test_projection_reads_the_activated_input():
    block = PreActBlock(4, 4, 1, project=True).eval()
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv2.weight.zero_()
        block.shortcut.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
    x = torch.randn(1, 4, 5, 5)
    # conv path is zero, so the output is the shortcut of BN-ReLU(x): never negative.
    out = block(x)
    assert torch.allclose(out, torch.relu(block.bn1(x)))
