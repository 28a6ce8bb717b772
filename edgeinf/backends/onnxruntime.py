"""ONNX Runtime backend (CPU execution provider)."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..types import TensorSpec
from .base import Model

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
    "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


def _spec(arg) -> TensorSpec:
    dt = _ORT_TYPES.get(arg.type)
    if dt is None:
        from ..errors import BackendError
        raise BackendError(f"tensor {arg.name!r} has type {arg.type}, which edgeinf does not handle")
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(arg.name, shape, np.dtype(dt))


class OnnxModel(Model):
    backend = "onnxruntime"
    thread_safe = True  # InferenceSession.run is documented thread-safe

    def _load(self) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # engine warnings go through our logger, not stderr
        src = self.source if isinstance(self.source, bytes) else str(self.source)
        self.session = ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])
        self._inputs = [_spec(a) for a in self.session.get_inputs()]
        self._outputs = [_spec(a) for a in self.session.get_outputs()]

    def _run(self, feeds: Dict[str, np.ndarray], outputs: Optional[List[str]]) -> Dict[str, np.ndarray]:
        names = outputs or [s.name for s in self._outputs]
        values = self.session.run(names, feeds)
        return dict(zip(names, values))
