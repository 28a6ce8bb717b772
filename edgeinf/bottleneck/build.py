"""Build the bottleneck package: convert and check the teacher, train, export, calibrate, profile.

``ensure()`` returns ``$EDGEINF_CACHE/packages/hand_landmark_full-bottleneck``, building it
when missing or stale (another :data:`VERSION`, seed or teacher file). Trained weights are
cached apart (``.npz``, no pickles) under :data:`TRAIN_VERSION`, so export, calibration or
profile changes never retrain. The package:

- ``model.tflite``: the unmodified teacher (local plans and offload run the real model);
- one cut per width, ``bn-w{w}``: ``head.onnx`` (NHWC frame -> ``z``, ``w x 28 x 28``) and
  ``tail.onnx`` (``z`` -> the teacher's four outputs, same names);
- the ``bottleneck`` manifest section: teacher name and SHA-256, the conversion check, the
  training log, and per width the agreement (PCK) with the teacher under every codec on
  the held-out photographs;
- ``profile.json`` (``edgeinf profile``'s format) measured on the held-out photographs, so the
  controller's fidelity per width is a held-out figure.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import config
from ..errors import ConfigError, ModelError
from . import data
from . import plans as P

log = logging.getLogger("edgeinf")

NAME = "hand_landmark_full-bottleneck"
TEACHER = "hand_landmark_full"
# 16 x 112 x 112 after the teacher's first block (conv/2, depthwise, 1x1 project): 5% of its
# MACs. A cut at its first 56 x 56 block put 29% of the model on the device (head 14-20 ms on
# the emulated Pi 4 against 56 ms for the whole model), more than a split can win back.
CUT = "model_1/model/batch_normalization_2/FusedBatchNormV3;model_1/model/conv2d_1/Conv2D1"
WIDTHS = (1, 2, 4, 8)
VERSION = 2  # package layout, export, calibration (2: exported graphs simplified, Pad fused into Conv)
TRAIN_VERSION = 2  # network and cut: a bump retrains (the recipe is hashed into the file name)
CODECS = ("int4-pc+lz4", "int8-pc+lz4", "fp16+lz4", "raw")  # calibrated, fewest bytes first
INPUT = "z"


def package_dir() -> Path:
    return config.cache_dir() / "packages" / NAME


def _work_dir() -> Path:
    d = config.cache_dir() / "bottleneck"
    d.mkdir(parents=True, exist_ok=True)
    return d


def current(seed: int = 0) -> bool:
    """True when the cached package is this version and seed, for the zoo's teacher file."""
    from .. import zoo
    from ..package import open_package, sha256_file

    root = package_dir()
    if not (root / "edgeinf.json").is_file() or not (root / "profile.json").is_file():
        return False
    try:
        sec = P.section(open_package(root, verify=False))
    except Exception:  # noqa: BLE001 - any unreadable package is simply rebuilt
        return False
    teacher = zoo.location(TEACHER)
    return (sec.get("version") == VERSION and sec.get("seed") == seed and teacher.is_file()
            and sec.get("teacher", {}).get("sha256") == sha256_file(teacher))


def ensure(seed: int = 0, force: bool = False, progress: Optional[Callable[[str], None]] = None) -> Path:
    """The package directory, built first if missing or stale."""
    root = package_dir()
    if not force and current(seed):
        return root
    tmp = root.with_name(f"{NAME}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp, seed=seed, progress=progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)
    tmp.replace(root)  # a half-built package never looks cached
    return root


def teacher_onnx(progress=None) -> tuple:
    """(tflite path, its SHA-256, converted ONNX path, conversion check) for the teacher."""
    from .. import zoo
    from ..package import sha256_file
    from . import teacher

    tfl = zoo.path(TEACHER)
    sha = sha256_file(tfl)
    onx = _work_dir() / f"{TEACHER}-{sha[:12]}.onnx"
    if not onx.is_file():
        teacher.to_onnx(tfl, onx)
    chk = teacher.check(tfl, onx, data.held_out(views=0))
    if max(chk["onnx_vs_tflite"], chk["torch_vs_onnx"]) > teacher.MAX_REL_ERR:
        raise ModelError(f"teacher conversion is not faithful on the photographs: {chk} "
                         f"(limit {teacher.MAX_REL_ERR})")
    (progress or log.info)(f"teacher {TEACHER}: conversion check {chk}")
    return tfl, sha, onx, chk


def _weights(tmod, sha: str, seed: int, recipe, progress):
    """The trained bottleneck (cached .npz by TRAIN_VERSION, recipe, seed and teacher) and its log."""
    import hashlib
    from dataclasses import asdict

    import torch

    from . import train
    from .net import Bottleneck

    rkey = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode()).hexdigest()[:8]
    path = _work_dir() / f"weights-v{TRAIN_VERSION}-{rkey}-s{seed}-{sha[:12]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            bn = Bottleneck(int(z["enc1.weight"].shape[1]), WIDTHS)
            bn.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files if k != "log"})
            return bn.eval(), json.loads(str(z["log"]))
    bn, tlog = train.train(tmod, CUT, WIDTHS, seed=seed, recipe=recipe, progress=progress)
    tmp = path.with_suffix(".part.npz")
    np.savez(tmp, **{k: v.detach().numpy() for k, v in bn.state_dict().items()}, log=np.array(json.dumps(tlog)))
    tmp.replace(path)
    return bn, tlog


def _export(module, example, path: Path, in_name: str, out_names) -> None:
    """torch -> ONNX, then constants folded and each teacher ``Pad`` fused into its ``Conv``
    (:mod:`edgeinf.bottleneck.simplify`: a tail 11.5 -> 9.3 ms on one thread, the same outputs)."""
    import torch

    from .simplify import simplify

    with torch.no_grad():
        torch.onnx.export(module, (example,), str(path), input_names=[in_name], output_names=list(out_names),
                          opset_version=17, dynamo=False)
    simplify(path)


def build(out: Path, seed: int = 0, progress: Optional[Callable[[str], None]] = None, recipe=None) -> Path:
    """Everything ``ensure`` does, into ``out``; returns ``out``. ``recipe``: a
    :class:`edgeinf.bottleneck.train.Recipe` (default: the one CI trains)."""
    try:
        import torch
    except ImportError:
        raise ConfigError('building the bottleneck package needs torch: pip install torch==2.13.0 '
                          'then pip install "edgeinf[train]"') from None
    from ..backends import load
    from ..package import PackageWriter
    from ..types import TensorSpec
    from . import teacher
    from .net import Head, Tail

    say = progress or log.info
    t0 = time.perf_counter()
    tfl, sha, onx, chk = teacher_onnx(say)
    tmod = teacher.load_torch(onx)
    from .train import Recipe

    bn, tlog = _weights(tmod, sha, seed, recipe or Recipe(), say)
    full = load(tfl, threads=1)
    outs = [s.name for s in full.outputs]
    if outs != tmod.graph.outputs:
        raise ModelError(f"converted teacher outputs {tmod.graph.outputs} are not the model's {outs}")
    w = PackageWriter(out, name=NAME)
    w.set_model("model.tflite", tfl, full.inputs, full.outputs)
    spec_in = full.inputs[0]
    x0 = torch.from_numpy(data.held_out(views=0)[:1])
    stage = out / ".export"
    stage.mkdir(parents=True, exist_ok=True)
    sec = {"version": VERSION, "seed": seed, "cut_of_teacher": CUT, "codecs": list(CODECS),
           "teacher": {"name": TEACHER, "sha256": sha, "onnx": onx.name, "conversion": chk},
           "training": tlog, "metric": f"pck@{P.PCK_ALPHA}", "widths": []}
    for wd in WIDTHS:
        head, tail = Head(tmod, CUT, bn, wd).eval(), Tail(tmod, CUT, bn, wd).eval()
        with torch.no_grad():
            z0 = head(x0)
        _export(head, x0, stage / "head.onnx", spec_in.name, [INPUT])
        _export(tail, z0, stage / "tail.onnx", INPUT, outs)
        cid = f"bn-w{wd}"
        spec = TensorSpec(INPUT, tuple(z0.shape), "float32")
        w.add_cut(cid, f"bottleneck w{wd} at {CUT}", [spec], int(z0.numel() * 4), stage / "head.onnx",
                  stage / "tail.onnx", ext=".onnx", channel_axis={INPUT: 1},
                  bottleneck={"width": wd, "teacher_sha256": sha})
        sec["widths"].append({"cut": cid, "width": wd, "bytes_raw": int(z0.numel() * 4)})
    shutil.rmtree(stage, ignore_errors=True)
    w.manifest[P.SECTION] = sec
    w.save()
    from .calibrate import calibrate

    calibrate(out, progress=say)
    say(f"bottleneck package built in {time.perf_counter() - t0:.0f} s")
    return out
