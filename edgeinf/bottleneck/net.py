"""The slimmable bottleneck (torch, train-time only) and the exported head/tail per width.

At the cut (the teacher's ``CUT`` tensor, 16 x 112 x 112 for hand_landmark_full, after its
first block: 5% of its MACs) the device runs an encoder whose last convolution is
slimmable: width ``w`` keeps its first ``w`` filters, so one set of weights serves every
width and the crossing tensor is ``w x 28 x 28``. The server's decoder reads those ``w``
channels with the first ``w`` input channels of its first convolution plus a bias of that
width's own (the switchable part: what BatchNorm statistics per width are for the digits
net) and rebuilds the 16 x 112 x 112 features the teacher's tail expects. The teacher's own layers are frozen: the head is the
teacher up to the cut plus the encoder, the tail the decoder plus the teacher after it.

Layout: encoder ``conv3x3/2 (C->32), ReLU6, conv3x3/2 (32->W)`` (about 16 MMAC on the
device); decoder ``conv3x3 (w->64) + bias[w], ReLU6, conv3x3 (64->64), ReLU6, conv1x1
(64->128) + PixelShuffle(2), ReLU6, conv3x3 (32->32), ReLU6, conv1x1 (32->4C) +
PixelShuffle(2) -> C x 4H x 4W``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN = 64  # decoder channels at the crossing resolution (server side)
MID = 32  # channels at half the cut's resolution, both sides


class Bottleneck(nn.Module):
    """Encoder + decoder for every width in ``widths`` (channel counts of the crossing tensor).

    ``channels``: the teacher's channels at the cut; the crossing tensor is 4x smaller in
    height and width than the cut (two stride-2 convolutions on the device).
    """

    def __init__(self, channels: int, widths: Sequence[int]):
        super().__init__()
        self.widths = tuple(sorted(int(w) for w in widths))
        wmax = self.widths[-1]
        self.enc1 = nn.Conv2d(channels, MID, 3, stride=2, padding=1)
        self.enc2 = nn.Conv2d(MID, wmax, 3, stride=2, padding=1)
        self.dec1 = nn.Conv2d(wmax, HIDDEN, 3, padding=1, bias=False)
        self.dec_bias = nn.Parameter(torch.zeros(len(self.widths), HIDDEN))
        self.dec2 = nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1)
        self.up1 = nn.Conv2d(HIDDEN, MID * 4, 1)
        self.dec3 = nn.Conv2d(MID, MID, 3, padding=1)
        self.up2 = nn.Conv2d(MID, channels * 4, 1)

    def encode(self, f: torch.Tensor, w: int) -> torch.Tensor:
        h = F.relu6(self.enc1(f))
        return F.conv2d(h, self.enc2.weight[:w], self.enc2.bias[:w], stride=2, padding=1)

    def decode(self, z: torch.Tensor, w: int) -> torch.Tensor:
        b = self.dec_bias[self.widths.index(w)]
        h = F.relu6(F.conv2d(z, self.dec1.weight[:, :w], b, padding=1))
        h = F.relu6(self.dec2(h))
        h = F.relu6(F.pixel_shuffle(self.up1(h), 2))
        h = F.relu6(self.dec3(h))
        return F.pixel_shuffle(self.up2(h), 2)


def quant_noise(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Additive uniform noise of one ``bits``-bit step of a per-channel min/max affine code
    (what ``int8-pc``/``int4-pc`` do to the crossing tensor), so training sees the codec."""
    lo = z.amin(dim=(2, 3), keepdim=True)
    hi = z.amax(dim=(2, 3), keepdim=True)
    step = (hi - lo).detach() / (2 ** bits - 1)
    return z + (torch.rand_like(z) - 0.5) * step


class Head(nn.Module):
    """Export wrapper: NHWC image -> crossing tensor of width ``w`` (teacher head + encoder)."""

    def __init__(self, teacher, cut: str, bn: Bottleneck, w: int):
        super().__init__()
        self.teacher, self.cut, self.bn, self.w = teacher, cut, bn, w

    def forward(self, x):
        f = self.teacher.values(x.permute(0, 3, 1, 2), [self.cut])[self.cut]
        return self.bn.encode(f, self.w)


class Tail(nn.Module):
    """Export wrapper: crossing tensor -> the teacher's outputs, in its output order."""

    def __init__(self, teacher, cut: str, bn: Bottleneck, w: int):
        super().__init__()
        self.teacher, self.cut, self.bn, self.w = teacher, cut, bn, w

    def forward(self, z):
        out = self.teacher.run_from({self.cut: self.bn.decode(z, self.w)})
        return tuple(out[k] for k in self.teacher.graph.outputs)
