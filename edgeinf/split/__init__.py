"""Split engine: find the cuts of a model graph, extract head and tail, prove and profile them.

Public API::

    m = open_model("mobilenetv2", shapes={"input": "1x3x224x224"})
    m.cuts                     # list of CutInfo (id, name, tensors, position)
    head, tail = m.extract(m.cut("c012-ab34"))
    verify_cuts(m)             # head then tail == full model, per cut
    profile_model(m)           # head/tail timings, crossing bytes, MACs, device scaling
    build_package("mobilenetv2", "out/pkg", at="all")

Format readers live in ``onnx_graph`` and ``tflite_graph``; the cut algebra in ``graph``.
"""
from __future__ import annotations

from .build import build_package
from .graph import CutInfo, find_cuts
from .model import SplitModel, open_model
from .verify import verify_cuts


def profile_model(*args, **kwargs):
    """See :func:`edgeinf.split.profile.profile_model` (imported on use: it pulls in timing code)."""
    from .profile import profile_model as _profile

    return _profile(*args, **kwargs)


__all__ = ["open_model", "SplitModel", "CutInfo", "find_cuts", "verify_cuts", "build_package",
           "profile_model"]
