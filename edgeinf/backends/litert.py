"""LiteRT (TensorFlow Lite) backend: ``ai-edge-litert``, or ``tflite-runtime`` where that
is what a device has installed.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import numpy as np

from ..errors import BackendError
from ..types import TensorSpec
from .base import Model

log = logging.getLogger("edgeinf")


def interpreter_module():
    """Return ``(module, name)`` of the installed LiteRT interpreter package."""
    try:
        import ai_edge_litert.interpreter as mod
        return mod, "ai-edge-litert"
    except ImportError:
        pass
    try:
        import numpy

        import tflite_runtime.interpreter as mod
        if int(numpy.__version__.split(".")[0]) >= 2 and mod.__name__.startswith("tflite_runtime"):
            import tflite_runtime
            if getattr(tflite_runtime, "__version__", "0") < "2.15":
                # NOTE: tflite-runtime 2.14 is built against NumPy 1 and fails every call under
                # NumPy 2 with "_ARRAY_API not found"; say so rather than crash later.
                raise BackendError("tflite-runtime <= 2.14 does not work with NumPy 2: install "
                                   "ai-edge-litert (pip install ai-edge-litert) or numpy<2")
        return mod, "tflite-runtime"
    except ImportError:
        raise BackendError("no LiteRT interpreter installed: pip install ai-edge-litert "
                           "(or tflite-runtime on devices that only ship that)") from None


def _specs(details) -> List[TensorSpec]:
    out = []
    for d in details:
        sig = d.get("shape_signature")
        dims = sig if sig is not None and len(sig) else d["shape"]
        shape = tuple(int(x) if x >= 0 else None for x in dims)
        out.append(TensorSpec(d["name"], shape, np.dtype(d["dtype"])))
    return out


class LiteRTModel(Model):
    backend = "litert"
    thread_safe = False  # an Interpreter holds its tensors; one call at a time

    def _load(self) -> None:
        mod, self.engine = interpreter_module()
        resolver = self.options.get("op_resolver", "default")
        try:
            self._make(mod, resolver)
        except (RuntimeError, ValueError) as e:
            if resolver != "default" or "XNNPACK" not in str(e).upper():
                raise
            # NOTE: some extracted subgraphs (split heads) fail XNNPACK's graph setup;
            # the builtin kernels run them. Fall back once, and say so.
            log.warning("LiteRT: XNNPACK could not run %s (%s); using builtin kernels", self._where(), e)
            self._make(mod, "builtin")
        self._inputs = _specs(self.interp.get_input_details())
        self._outputs = _specs(self.interp.get_output_details())
        self._in_index = {d["name"]: d["index"] for d in self.interp.get_input_details()}
        self._out_index = {d["name"]: d["index"] for d in self.interp.get_output_details()}
        self._shapes = {d["name"]: tuple(d["shape"]) for d in self.interp.get_input_details()}

    def _make(self, mod, resolver: str) -> None:
        kw = {"num_threads": int(self.threads)} if self.threads else {}
        if resolver == "builtin":
            kw["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if isinstance(self.source, bytes):
            self.interp = mod.Interpreter(model_content=self.source, **kw)
        else:
            self.interp = mod.Interpreter(model_path=str(self.source), **kw)
        self.interp.allocate_tensors()
        self.op_resolver = resolver

    def _run(self, feeds: Dict[str, np.ndarray], outputs: Optional[List[str]]) -> Dict[str, np.ndarray]:
        resized = False
        for name, arr in feeds.items():
            if self._shapes[name] != arr.shape:
                self.interp.resize_tensor_input(self._in_index[name], list(arr.shape))
                self._shapes[name] = arr.shape
                resized = True
        if resized:
            self.interp.allocate_tensors()
        for name, arr in feeds.items():
            self.interp.set_tensor(self._in_index[name], arr)
        self.interp.invoke()
        names = outputs or [s.name for s in self._outputs]
        # get_tensor copies; the interpreter reuses its buffers on the next invoke
        return {n: self.interp.get_tensor(self._out_index[n]) for n in names}
