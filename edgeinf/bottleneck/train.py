"""Label-free, two-stage training of the slimmable bottleneck (BottleFit's recipe), CPU only.

1. **Head distillation**: the teacher's features at the cut are computed once per frame;
   encoder and decoder learn to rebuild them (MSE, each channel scaled by its variance) at
   the widest width and one other per step, with the codec's quantization noise on the
   crossing tensor.
2. **Fine-tuning against the teacher's outputs**: the decoded features go through the
   frozen teacher tail; the loss compares its outputs with the teacher's own on the same
   frame (landmarks in pixels, world landmarks in centimetres, presence and handedness as
   soft binary targets), plus a tenth of the stage-1 feature loss to stay anchored. Each
   step trains the widest width and one other drawn at random (the sandwich rule, cut to
   two widths because a tail pass is what costs).

No labels anywhere: the teacher is the only target. Seeded (torch, numpy); returns the
bottleneck and a log of losses and seconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, asdict
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .net import Bottleneck, quant_noise


@dataclass(frozen=True)
class Recipe:
    frames: int = 720  # augmented training frames (features cached once)
    stage1_steps: int = 400
    stage2_steps: int = 300
    batch1: int = 16
    batch2: int = 6
    lr1: float = 3e-3
    lr2: float = 5e-4
    threads: int = 2


def _teacher_pass(teacher, cut: str, frames: np.ndarray, bs: int = 16):
    """(features at the cut as float16, {output: teacher output}) for NHWC ``frames``."""
    feats, outs = [], {k: [] for k in teacher.graph.outputs}
    with torch.no_grad():
        for i in range(0, len(frames), bs):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + bs].transpose(0, 3, 1, 2)))
            f = teacher.values(x, [cut])[cut]
            o = teacher.run_from({cut: f})
            feats.append(f.half())
            for k in outs:
                outs[k].append(o[k])
    return torch.cat(feats), {k: torch.cat(v) for k, v in outs.items()}


def _noisy(z: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    r = float(torch.rand((), generator=g))
    return quant_noise(z, 4) if r < 0.4 else quant_noise(z, 8) if r < 0.8 else z


def _sandwich(widths, g: torch.Generator) -> tuple:
    """The widest width and one other drawn at random: every step trains the shared filters
    at full width and the narrower ones in turn."""
    return widths[-1], widths[int(torch.randint(len(widths) - 1, (), generator=g))]


def output_loss(got: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor]) -> torch.Tensor:
    """The stage-2 loss (names are hand_landmark's: Identity landmarks px, _1 presence,
    _2 handedness, _3 world landmarks m)."""
    lm = F.smooth_l1_loss(got["Identity"], ref["Identity"], beta=2.0)
    world = F.mse_loss(got["Identity_3"] * 100, ref["Identity_3"] * 100)
    bce = sum(F.binary_cross_entropy(got[k].clamp(1e-6, 1 - 1e-6), ref[k]) for k in ("Identity_1", "Identity_2"))
    return lm + world + bce


def train(teacher, cut: str, widths, seed: int = 0, recipe: Recipe = Recipe(),
          progress: Optional[Callable[[str], None]] = None) -> tuple:
    """Train a :class:`Bottleneck` at ``cut`` of ``teacher``; (bottleneck, log dict)."""
    say = progress or (lambda s: None)
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    feats, refs = [], {}
    for i in range(0, recipe.frames, 240):  # frames in chunks: only features are kept
        f, o = _teacher_pass(teacher, cut, data.train_frames(min(240, recipe.frames - i), seed * 1000 + i))
        feats.append(f)
        for k, v in o.items():
            refs.setdefault(k, []).append(v)
    feats = torch.cat(feats)
    refs = {k: torch.cat(v) for k, v in refs.items()}
    scale = feats.float().std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    log = {"seed": seed, "recipe": asdict(recipe), "teacher_pass_s": round(time.perf_counter() - t0, 1)}
    say(f"teacher pass over {recipe.frames} frames: {log['teacher_pass_s']} s")

    bn = Bottleneck(feats.shape[1], widths)
    log["stage1"] = _stage1(bn, feats, scale, recipe, g, say)
    log["stage2"] = _stage2(bn, teacher, cut, feats, refs, scale, recipe, g, say)
    log["seconds"] = round(time.perf_counter() - t0, 1)
    return bn.eval(), log


def _stage1(bn: Bottleneck, feats, scale, recipe: Recipe, g, say) -> dict:
    t0 = time.perf_counter()
    steps = recipe.stage1_steps
    opt = torch.optim.Adam(bn.parameters(), lr=recipe.lr1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for step in range(steps):
        idx = torch.randint(len(feats), (recipe.batch1,), generator=g)
        f = feats[idx].float()
        loss = sum(F.mse_loss(bn.decode(_noisy(bn.encode(f, w), g), w) / scale, f / scale)
                   for w in _sandwich(bn.widths, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()) / 2)
        if step % 50 == 0 or step == steps - 1:
            say(f"stage 1 step {step + 1}/{steps}: feature loss {np.mean(losses[-50:]):.4f}")
    return {"steps": steps, "final_loss": round(float(np.mean(losses[-20:])), 5),
            "seconds": round(time.perf_counter() - t0, 1)}


def _stage2(bn: Bottleneck, teacher, cut, feats, refs, scale, recipe: Recipe, g, say) -> dict:
    t0 = time.perf_counter()
    opt = torch.optim.Adam(bn.parameters(), lr=recipe.lr2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.stage2_steps)
    losses = []
    for step in range(recipe.stage2_steps):
        idx = torch.randint(len(feats), (recipe.batch2,), generator=g)
        f = feats[idx].float()
        loss = 0.0
        for w in _sandwich(bn.widths, g):
            r = bn.decode(_noisy(bn.encode(f, w), g), w)
            got = teacher.run_from({cut: r})
            loss = loss + output_loss(got, {k: v[idx] for k, v in refs.items()}) \
                + 0.1 * F.mse_loss(r / scale, f / scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()) / 2)
        if step % 20 == 0 or step == recipe.stage2_steps - 1:
            say(f"stage 2 step {step + 1}/{recipe.stage2_steps}: output loss {np.mean(losses[-20:]):.4f}")
    return {"steps": recipe.stage2_steps, "final_loss": round(float(np.mean(losses[-20:])), 5),
            "seconds": round(time.perf_counter() - t0, 1)}
