"""Build (train, export, calibrate) the ``digits-dynamic`` package, cached by version and seed.

``ensure()`` returns the cached package directory, building it first when it is missing
or was built by another :data:`VERSION` or seed; tests, the benchmark and
``splits/train_dynamic.py`` all go through it. Building needs torch (the ``train`` extra).
"""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import config
from ..errors import ConfigError
from ..package import MANIFEST, PackageWriter, open_package
from ..types import TensorSpec

log = logging.getLogger("edgeinf")

#: bump whenever data, export or calibration changes: cached packages of another version rebuild
VERSION = 2
#: bump whenever the network or its training changes: cached weights of another version retrain
TRAIN_VERSION = 1
NAME = "digits-dynamic"
EPOCHS = 30
# renderings per source digit; 10 makes 3,590 calibration and 3,600 test samples, enough
# that thresholds fitted on one split hold on the other to a few tenths of a point
COPIES = {"train": 2, "calib": 10, "test": 10}
#: exit profiles: allowed top-1 drop (points) against the same width's full model
PROFILES = {"drop0.5": 0.5, "drop1": 1.0, "drop3": 3.0}
#: noise margin of the fit, in standard errors of the paired accuracy difference
Z = 1.5


SECONDS = "__training_seconds__"  # key of the training time inside the cached weights


def package_dir() -> Path:
    return config.cache_dir() / "packages" / NAME


def _stamp(root: Path) -> Optional[dict]:
    try:
        return json.loads((root / MANIFEST).read_text())["variants"]["training"]
    except (OSError, ValueError, KeyError):
        return None


def current(seed: int = 0) -> bool:
    """Whether the cached package exists and was built by this VERSION with ``seed``."""
    stamp = _stamp(package_dir())
    return bool(stamp) and stamp.get("version") == VERSION and stamp.get("seed") == seed


def ensure(seed: int = 0, force: bool = False, confidence: Optional[Callable] = None,
           progress: Optional[Callable[[str], None]] = None) -> Path:
    """The package directory, built first if missing or stale (another version or seed)."""
    root = package_dir()
    if not force and current(seed):
        return root
    tmp = root.with_name(f"{NAME}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp, seed=seed, confidence=confidence, progress=progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)
    tmp.replace(root)  # a half-built package never looks cached
    return root


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _train(seed: int, epochs: int, progress):
    try:
        import torch
    except ImportError:
        raise ConfigError('building the dynamic package needs torch: pip install torch==2.13.0 '
                          'then pip install "edgeinf[train]"') from None
    from . import digits, train

    torch.manual_seed(seed)
    imgs, labels = digits.sources()
    tr = digits.split_indices(len(imgs), seed)["train"]
    src, y = np.repeat(imgs[tr], COPIES["train"], 0), np.repeat(labels[tr], COPIES["train"], 0)

    def batches(epoch):  # fresh renderings every epoch: augmentation, never the held-out digits
        x, _ = digits.render(src, seed=[seed, 99, epoch], pool=imgs[tr])
        p = np.random.default_rng([seed, epoch]).permutation(len(x))
        xt, yt = torch.from_numpy(digits.to_input(x[p])), torch.from_numpy(y[p])
        return [(xt[i:i + 64], yt[i:i + 64]) for i in range(0, len(xt), 64)]

    net = train.MultiExitNet()
    # NOTE: trained weights are cached (plain .npz, no pickles) by version, seed and epochs,
    # so a change to export or calibration alone does not retrain
    cached = package_dir().with_name(f"{NAME}-weights-v{TRAIN_VERSION}-s{seed}-e{epochs}.npz")
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files if k != SECONDS})
            seconds = float(z[SECONDS])
        net.eval()
        return net, train, seconds
    t0 = time.perf_counter()
    train.fit(net, batches, epochs, log=progress)
    seconds = time.perf_counter() - t0
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part.npz")
    np.savez(tmp, **{k: v.detach().numpy() for k, v in net.state_dict().items()}, **{SECONDS: np.float64(seconds)})
    tmp.replace(cached)
    return net, train, seconds


def build(out: Path, seed: int = 0, epochs: int = EPOCHS, confidence: Optional[Callable] = None,
          progress: Optional[Callable[[str], None]] = None) -> Path:
    """Train, export every width, store held-out data, then calibrate exits; returns ``out``."""
    from . import digits, macs

    net, train, train_s = _train(seed, epochs, progress)
    w = PackageWriter(out, NAME)
    widths = []
    for wi, mult in enumerate(net.widths):
        g = train.export_width(net, wi)
        wid = f"w{mult}"
        full = f"variants/{wid}/full.onnx"
        if mult == max(net.widths):  # the package's "model" is the full-width network
            w.set_model(full, g["full"], [TensorSpec("x", ("batch", 1, 32, 32), np.float32)],
                        [TensorSpec("logits", ("batch", train.CLASSES), np.float32)])
        w.add_file(full, g["full"])
        stages = []
        for k, data in enumerate(g["stages"]):
            ref = w.add_file(f"variants/{wid}/stage{k + 1}.onnx", data)
            last = k == len(g["stages"]) - 1
            cut = None if last else TensorSpec(f"h{k + 1}", ("batch",) + g["cuts"][k], np.float32).to_dict()
            stages.append({"file": ref.file, "input": "x" if k == 0 else f"h{k}", "cut": cut,
                           "macs": macs.count(data)})
        widths.append({"id": wid, "mult": mult, "full": {"file": full, "macs": macs.count(g["full"])},
                       "stages": stages})
    data = {}
    for split in ("calib", "test"):
        x, y, _ = digits.make_split(split, seed, copies=COPIES[split])
        data[split] = {"x": w.add_file(f"data/{split}_x.npy", _npy(x)).file,
                       "y": w.add_file(f"data/{split}_y.npy", _npy(y.astype(np.int64))).file}
    w.manifest["variants"] = {
        "version": 1, "classes": train.CLASSES, "confidence": "max_prob",
        "input": {"name": "x", "shape": ["batch", 1, 32, 32], "dtype": "float32"},
        "exits": [f"exit{k + 1}" for k in range(len(train.STAGES))], "widths": widths, "data": data,
        "training": {"version": VERSION, "seed": seed, "epochs": epochs, "seconds": round(train_s, 1),
                     "widths": list(net.widths), "data": "sklearn load_digits, 32x32 + rotation, "
                     "noise, clutter (edgeinf.dynamic.digits); splits by source digit 60/20/20"}}
    w.save()
    _calibrate(w, confidence)
    return out


def _calibrate(w: PackageWriter, confidence: Optional[Callable]) -> None:
    """Per width: accuracy of every exit and thresholds of every profile, fitted on the
    calibration split and checked on the test split; written back into the manifest."""
    from . import calibrate
    from .runtime import DynamicModel
    from .variants import load_split

    pkg = open_package(w.root)
    model = DynamicModel(pkg, confidence=confidence)
    split = {s: load_split(pkg, s) for s in ("calib", "test")}
    for entry in w.manifest["variants"]["widths"]:
        width = model.variants.width(entry["id"])
        rec = {}
        for s, (x, y) in split.items():
            logits = model.exit_logits(x, width.id)
            rec[s] = (model.confidences(logits), np.stack([lg.argmax(1) == y for lg in logits]))
        entry["accuracy"] = {s: [round(float(c.mean()), 4) for c in rec[s][1]] for s in rec}
        cost = width.exit_cost()
        entry["profiles"] = {}
        for name, drop in PROFILES.items():
            thr = calibrate.fit(*rec["calib"], cost, drop / 100, z=Z)
            entry["profiles"][name] = {"thresholds": [float(t) if np.isfinite(t) else None for t in thr],
                                       "target_drop": drop, "fit_z": Z,
                                       **{s: _stats(calibrate.evaluate(*rec[s], cost, thr), entry, s)
                                          for s in rec}}
    w.save()


def _stats(r: dict, entry: dict, split: str) -> dict:
    return {"accuracy": round(r["accuracy"], 4), "macs": round(r["cost"]),
            "drop_points": round(100 * (entry["accuracy"][split][-1] - r["accuracy"]), 2),
            "mac_saving": round(1 - r["cost"] / entry["full"]["macs"], 4),
            "exit_rate": [round(float(e), 4) for e in r["exit_rate"]]}
