"""Multiply-accumulate counts read from an ONNX graph (batch 1).

The per-node rule is :func:`edgeinf.split.flops.node_macs`, edgeinf's one MAC definition
(Conv, ConvTranspose, Gemm with ``transA``, MatMul); this module only reads shapes from an
exported graph without opening it for splitting. Counting the exported graph rather than
the training code means the number describes what runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ..split.flops import onnx_macs


def count(model: Union[str, Path, bytes, object]) -> int:
    """MACs of one batch-1 run of ``model`` (path, bytes or ModelProto)."""
    return onnx_macs(model)
