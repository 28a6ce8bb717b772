"""edgeinf: edge and split-computing inference.

One runtime API over ONNX Runtime, LiteRT and llama.cpp; native kernels for the hot loops.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import device  # noqa: E402
from .backends import Model, load  # noqa: E402
from .errors import (  # noqa: E402
    BackendError, ConfigError, EdgeInfError, InputError, ModelError,
)
from .package import open_package  # noqa: E402
from .plan import Plan  # noqa: E402
from .types import TensorSpec  # noqa: E402

__all__ = [
    "__version__", "load", "Model", "TensorSpec", "device",
    "EdgeInfError", "ConfigError", "BackendError", "InputError", "ModelError",
    "EdgeRuntime", "AdaptiveRuntime", "AdaptiveResult", "Plan", "open_package",
]


def __getattr__(name):
    # NOTE: imported on first use so `import edgeinf` does not pull in zmq
    if name == "EdgeRuntime":
        from .runtime import EdgeRuntime

        return EdgeRuntime
    if name in ("AdaptiveRuntime", "AdaptiveResult"):
        from . import adaptive

        return getattr(adaptive, name)
    raise AttributeError(f"module 'edgeinf' has no attribute {name!r}")
