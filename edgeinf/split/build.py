"""Write model packages holding chosen cuts (see ``docs/package.md``).

:func:`build_package` is the one entry point the CLI, the transport and the controller
use; every cut it writes has been verified (head then tail equals the full model) first.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from ..errors import SplitError
from .model import SplitModel, open_model

log = logging.getLogger("edgeinf")


def build_package(model: Union[str, Path, SplitModel], out_dir: Union[str, Path],
                  at: Union[None, str, Sequence[str]] = None, shapes: Optional[Mapping] = None,
                  profile: bool = False, max_tensors: int = 2, name: Optional[str] = None,
                  device: Optional[str] = None, repeat: int = 10) -> Path:
    """Split ``model`` at the chosen cuts and write a package directory.

    Parameters
    ----------
    model : str, Path or SplitModel
        Model file, zoo name, or an already opened :class:`SplitModel`.
    out_dir : str or Path
        Package directory (created; existing files of the same names are replaced).
    at : None, "all", str or list of str
        Cut ids (a list or one comma-separated string), ``"all"``, or None for the
        Pareto-optimal cuts (no other cut has both a smaller head and fewer crossing bytes).
    shapes : mapping, optional
        ``{input: "1x3x224x224"}`` fixing dynamic input dims.
    profile : bool
        Also time every chosen cut here and store the profile in the manifest.
    max_tensors : int
        Largest cut (in crossing tensors) considered.
    device : str, optional
        Device profile (``devices/*.toml``) to scale timings to, with ``profile=True``.

    Returns
    -------
    Path
        The package directory; open it with :func:`edgeinf.package.open_package`.

    Raises
    ------
    SplitError
        An unknown cut id (the message names the nearest ones) or a cut that fails to verify.
    """
    from ..package import PackageWriter
    from .flops import cut_macs
    from .verify import verify_cuts

    m = model if isinstance(model, SplitModel) else open_model(model, shapes, max_tensors)
    cuts = m.select(at)
    if not cuts:
        raise SplitError(f"{m.name}: no cuts to write (notes: {'; '.join(m.notes) or 'none'})")
    checks = {r["id"]: r for r in verify_cuts(m, cuts)}
    bad = [r for r in checks.values() if not r["ok"]]
    if bad:
        raise SplitError(f"{m.name}: cut(s) failed verification, not packaged: "
                         + "; ".join(f"{r['id']} ({r['error'] or 'max rel err %.3g' % r['max_rel_err']})"
                                     for r in bad))
    prof = None
    if profile:
        from .profile import profile_model
        prof = profile_model(m, cuts, device=device, repeat=repeat)
    w = PackageWriter(out_dir, name=name or m.name)
    from ..backends import load

    full = load(m.data if m.format == "tflite" else m.path)
    w.set_model(f"model{m.ext}", m.data, full.inputs, full.outputs)
    macs = cut_macs(m)
    for cut in cuts:
        head, tail = m.extract(cut)
        r = checks[cut.id]
        extra = {"position": cut.position, "macs": macs.get(cut.id),
                 "verify": {k: r[k] for k in ("max_abs_err", "max_rel_err", "ok")},
                 "channel_axis": _channel_axes(m.format, m.crossing_specs(cut))}
        if prof is not None:
            extra["profile"] = next(c for c in prof["cuts"] if c["id"] == cut.id)
        w.add_cut(cut.id, cut.name, m.crossing_specs(cut), m.crossing_bytes(cut), head, tail,
                  ext=m.ext, **extra)
    w.manifest["split"] = {"format": m.format, "max_tensors": m.max_tensors,
                           "input_shapes": {k: list(v) if v else None for k, v in m.input_shapes.items()},
                           "notes": m.notes}
    if prof is not None:
        w.manifest["profile"] = {k: v for k, v in prof.items() if k != "cuts"}
    return w.save()


def _channel_axes(fmt: str, specs) -> dict:
    """Channel axis per crossing tensor, for ``-pc`` codecs: TFLite activations are NHWC
    (last axis), ONNX conv activations NC... (axis 1); other ONNX ranks get the codec default."""
    if fmt == "tflite":
        return {s.name: -1 for s in specs if len(s.shape) >= 1}
    return {s.name: 1 for s in specs if len(s.shape) in (3, 4, 5)}
