"""Calibrate a bottleneck package on the held-out photographs and profile every plan.

Per width and codec: mean crossing bytes (as the runtime sends them) and the agreement
(PCK, :func:`edgeinf.bottleneck.plans.pck`) of head -> codec -> tail with the unmodified
teacher (LiteRT) on the same frame; the frames' JPEG q90/q75 sizes beside them. Then
``profile_package`` measures every plan (local, offload under each codec, each width under
each codec) on the same held-out frames into ``profile.json``: that file is what the
controller reads, so the fidelity it weighs per width was measured on photographs the
bottleneck never saw.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import imagecodec
from ..package import MANIFEST, open_package
from ..profiling.crossing import TensorCodec
from . import data
from . import plans as P

DEVICE = "raspberry-pi-4"


def _jpeg_bytes(frames: np.ndarray, quality: int) -> float:
    return float(np.mean([len(imagecodec.encode(f[None], f"jpeg{quality}")) for f in frames]))


def calibrate(root: Path, progress: Optional[Callable[[str], None]] = None, profile: bool = True) -> dict:
    """Write the agreement table into the manifest's bottleneck section, then ``profile.json``."""
    from ..profiling import profile_package

    say = progress or (lambda s: None)
    pkg = open_package(root)
    frames = data.held_out()
    name = pkg.inputs[0].name
    full = pkg.session("full", threads=1)
    refs = [full.run({name: f[None]})["Identity"] for f in frames]
    sec = P.section(pkg)
    sec["held_out"] = {"n": int(len(frames)), "photos": "edgeinf.photos (6 bundled) + mirrors + 6 views each",
                       "jpeg90_bytes": round(_jpeg_bytes(frames, 90), 1),
                       "jpeg75_bytes": round(_jpeg_bytes(frames, 75), 1)}
    for entry in sec["widths"]:
        cut = pkg.cut(entry["cut"])
        head, tail = pkg.session("head", cut.id, threads=1), pkg.session("tail", cut.id, threads=1)
        zs = [head.run({name: f[None]}) for f in frames]
        entry["agreement"], entry["bytes"] = {}, {}
        for codec in sec["codecs"]:
            tc = TensorCodec(codec, cut.channel_axes())
            got, nbytes = [], []
            for z in zs:
                enc = tc.encode(z)
                nbytes.append(tc.nbytes(enc))
                got.append(tail.run(tc.decode(enc))["Identity"])
            entry["agreement"][codec] = round(P.pck(np.concatenate(refs), np.concatenate(got)), 4)
            entry["bytes"][codec] = round(float(np.mean(nbytes)), 1)
        say(f"{cut.id}: agreement {entry['agreement']} bytes {entry['bytes']}")
    manifest = dict(pkg.manifest)
    manifest[P.SECTION] = sec
    tmp = Path(root) / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    tmp.replace(Path(root) / MANIFEST)
    if profile:
        prof = profile_package(open_package(root), {name: frames[:, None]}, device=DEVICE, threads=1,
                               accuracy_floor=0.9)
        say(f"profile: {len(prof.plans)} plans on {len(frames)} held-out frames")
    return sec
