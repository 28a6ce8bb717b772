"""Train a multi-exit, slimmable CNN and export it as per-width, per-stage ONNX graphs.

Training needs torch (``pip install torch==2.13.0`` then ``"edgeinf[train]"``); nothing at
run time imports this module.

Network (channels at width 1.0; every width shares these weights, slimmable-style)::

    x 1x32x32 -> stage1: conv 16 @32, pool, conv 32 @16, pool  -> h1 32x8x8  -> exit1
              -> stage2: conv 64, conv 64 @8                   -> h2 64x8x8  -> exit2
              -> stage3: conv 128, conv 128 @8, pool           -> h3 128x4x4 -> exit3
    exit head: 2x2 average pool, flatten, linear -> 10 logits

Training follows the slimmable-network recipe: every step runs every width (the sandwich
rule with all three widths), each width has its own BatchNorm statistics (switchable
BN), the full width learns from labels, and the narrower widths and the early exits also
learn from the full width's final exit (in-place distillation), which is what makes a
confident early exit agree with the full model.
"""
from __future__ import annotations

import io
from typing import Callable, List, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

#: (out channels, pool after) per conv, per stage, at width 1.0
STAGES = [[(16, True), (32, True)], [(64, False), (64, False)], [(128, False), (128, True)]]
WIDTHS = (0.25, 0.5, 1.0)
CLASSES = 10


def channels(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class SlimConv(nn.Module):
    """3x3 conv whose first ``channels(cout, w)`` filters serve width ``w``; one BN per width."""

    def __init__(self, cin: int, cout: int, pool: bool, widths: Sequence[float]):
        super().__init__()
        self.cout, self.pool, self.widths = cout, pool, widths
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels(cout, w)) for w in widths)

    def forward(self, x, wi: int):
        co = channels(self.cout, self.widths[wi])
        y = F.conv2d(x, self.conv.weight[:co, :x.shape[1]], padding=1)
        y = F.relu(self.bns[wi](y))
        return F.max_pool2d(y, 2) if self.pool else y


class SlimHead(nn.Module):
    """Exit head: 2x2 average pool, then a linear layer over the width's channels."""

    def __init__(self, cin: int):
        super().__init__()
        self.fc = nn.Linear(cin * 4, CLASSES)

    def forward(self, h):
        p = F.adaptive_avg_pool2d(h, 2).flatten(1)  # channel-major: c0(4 cells), c1...
        return F.linear(p, self.fc.weight[:, :p.shape[1]], self.fc.bias)


class MultiExitNet(nn.Module):
    def __init__(self, widths: Sequence[float] = WIDTHS):
        super().__init__()
        self.widths = tuple(widths)
        self.stages, self.heads = nn.ModuleList(), nn.ModuleList()
        cin = 1
        for stage in STAGES:
            convs = nn.ModuleList()
            for cout, pool in stage:
                convs.append(SlimConv(cin, cout, pool, self.widths))
                cin = cout
            self.stages.append(convs)
            self.heads.append(SlimHead(cin))

    def forward(self, x, wi: int) -> List[torch.Tensor]:
        """Logits of every exit at width index ``wi``."""
        out = []
        for convs, head in zip(self.stages, self.heads):
            for conv in convs:
                x = conv(x, wi)
            out.append(head(x))
        return out


def train_step(net, opt, x, y, kd_weight: float = 0.5, temp: float = 2.0) -> float:
    """One sandwich step over every width; returns the full width's final-exit loss."""
    opt.zero_grad()
    full = len(net.widths) - 1
    logits = net(x, full)
    teacher = F.softmax(logits[-1].detach() / temp, 1)
    loss = F.cross_entropy(logits[-1], y)
    for k, lg in enumerate(logits[:-1]):
        loss = loss + _mixed(lg, y, teacher, kd_weight, temp)
    for wi in range(full):
        for lg in net(x, wi):
            loss = loss + _mixed(lg, y, teacher, kd_weight, temp)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _mixed(logits, y, teacher, kd_weight: float, temp: float):
    kd = F.kl_div(F.log_softmax(logits / temp, 1), teacher, reduction="batchmean") * temp * temp
    return (1 - kd_weight) * F.cross_entropy(logits, y) + kd_weight * kd


def fit(net, batches: Callable[[int], tuple], epochs: int, lr: float = 3e-3, log=None) -> None:
    """Adam with a cosine schedule; ``batches(epoch)`` yields ``(x, y)`` float/long tensors."""
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for epoch in range(epochs):
        net.train()
        losses = [train_step(net, opt, x, y) for x, y in batches(epoch)]
        sched.step()
        if log:
            log(f"epoch {epoch + 1}/{epochs} loss {np.mean(losses):.3f}")
    net.eval()


# -- export -------------------------------------------------------------------------------
def _folded(conv: SlimConv, wi: int, cin: int) -> nn.Module:
    """A plain conv at width ``wi`` with its BatchNorm folded in (eval statistics)."""
    co = channels(conv.cout, conv.widths[wi])
    bn = conv.bns[wi]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    c = nn.Conv2d(cin, co, 3, padding=1)
    c.weight.data = conv.conv.weight[:co, :cin] * scale[:, None, None, None]
    c.bias.data = bn.bias - bn.running_mean * scale
    layers = [c, nn.ReLU()] + ([nn.MaxPool2d(2)] if conv.pool else [])
    return nn.Sequential(*layers)


class _Segment(nn.Module):
    """Stage ``k`` at one width: ``h_{k-1} -> (h_k, logits_k)``; the last one only logits."""

    def __init__(self, body: nn.Module, head: nn.Module, last: bool):
        super().__init__()
        self.body, self.head, self.last = body, head, last

    def forward(self, h):
        h = self.body(h)
        logits = self.head(h)
        return logits if self.last else (h, logits)


def _plain_head(head: SlimHead, cin: int, hw: int) -> nn.Module:
    fc = nn.Linear(cin * 4, CLASSES)
    fc.weight.data = head.fc.weight[:, :cin * 4].clone()
    fc.bias.data = head.fc.bias.clone()
    # NOTE: a fixed AvgPool2d instead of adaptive pooling: same result on these static sizes,
    # and it exports to one plain ONNX AveragePool.
    return nn.Sequential(nn.AvgPool2d(hw // 2), nn.Flatten(), fc)


def export_width(net: MultiExitNet, wi: int) -> dict:
    """ONNX bytes of every stage segment and of the whole model at width index ``wi``.

    Returns ``{"stages": [bytes, ...], "full": bytes, "cuts": [(channels, h, w), ...]}``;
    stage 1 takes ``x``, stage k > 1 takes ``h<k-1>``; stage k outputs ``h<k>`` and ``logits``.
    """
    segments, cuts, cin, hw = [], [], 1, 32
    with torch.no_grad():
        for k, (convs, head) in enumerate(zip(net.stages, net.heads)):
            body = []
            for conv in convs:
                body.append(_folded(conv, wi, cin))
                cin = channels(conv.cout, net.widths[wi])
                hw = hw // 2 if conv.pool else hw
            last = k == len(net.stages) - 1
            segments.append(_Segment(nn.Sequential(*body), _plain_head(head, cin, hw), last).eval())
            cuts.append((cin, hw, hw))
        full = nn.Sequential(*[s.body for s in segments], segments[-1].head).eval()
        shapes = [(1, 32, 32)] + cuts[:-1]
        # cut k is named h<k> on both sides: stage k outputs it, stage k+1 takes it
        stages = [_onnx(s, shapes[k], "x" if k == 0 else f"h{k}", None if k == len(segments) - 1 else f"h{k + 1}")
                  for k, s in enumerate(segments)]
        return {"stages": stages, "full": _onnx(full, (1, 32, 32), "x", None), "cuts": cuts}


def _onnx(module: nn.Module, shape, input_name: str, cut_name) -> bytes:
    outputs = ["logits"] if cut_name is None else [cut_name, "logits"]
    buf = io.BytesIO()
    # NOTE: dynamo=False: the dynamo exporter needs onnxscript, which the train extra does
    # not install; the TorchScript exporter handles these plain conv/pool/linear graphs.
    torch.onnx.export(module, (torch.zeros((1,) + tuple(shape)),), buf, input_names=[input_name],
                      output_names=outputs, dynamic_axes={n: {0: "batch"} for n in [input_name] + outputs},
                      opset_version=17, dynamo=False)
    return buf.getvalue()
