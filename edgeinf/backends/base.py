"""The backend contract: one model API whatever the engine.

Public methods validate and add context; subclasses implement ``_load``, ``_run``
(and set ``_inputs``/``_outputs``). A session is created once in ``__init__`` and reused
by every call.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import numpy as np

from ..errors import BackendError, InputError, ModelError
from ..types import TensorSpec, shape_str

log = logging.getLogger("edgeinf")

Source = Union[str, Path, bytes]


class Model:
    """A loaded model: input/output specs and a reusable engine session."""

    backend: str = "?"
    #: True where the engine session may be called from several threads at once.
    thread_safe: bool = False

    def __init__(self, source: Source, threads: Optional[int] = None, **options):
        self.source = source if isinstance(source, bytes) else Path(source)
        self.path = None if isinstance(source, bytes) else Path(source)
        self.threads = threads
        self.options = options
        self._inputs: List[TensorSpec] = []
        self._outputs: List[TensorSpec] = []
        self._lock = threading.Lock()
        try:
            self._load()
        except (BackendError, ModelError):
            raise
        except Exception as e:  # engine errors come in many types; give them context once
            raise BackendError(f"{self.backend} could not load {self._where()}: {e}") from e

    # -- public API ----------------------------------------------------------------------
    @property
    def inputs(self) -> List[TensorSpec]:
        return list(self._inputs)

    @property
    def outputs(self) -> List[TensorSpec]:
        return list(self._outputs)

    def __call__(self, *arrays: np.ndarray, **named: np.ndarray) -> Dict[str, np.ndarray]:
        """Run with positional inputs (in input order) and/or inputs by name, or with one
        ``{input name: array}`` mapping, as ``run`` and ``AdaptiveRuntime.run`` take."""
        if len(arrays) == 1 and isinstance(arrays[0], Mapping):
            # NOTE: taken as the first input, a dict failed as "missing: [the second input]"
            return self.run({**arrays[0], **named})
        if len(arrays) > len(self._inputs):
            raise InputError(
                f"{self._where()} takes {len(self._inputs)} input(s) "
                f"({', '.join(s.describe() for s in self._inputs)}), got {len(arrays)} positional"
            )
        feeds = {spec.name: a for spec, a in zip(self._inputs, arrays)}
        feeds.update(named)
        return self.run(feeds)

    def run(self, feeds: Mapping[str, np.ndarray],
            outputs: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
        """Run the model on ``{input name: array}``; return ``{output name: array}``."""
        checked = self._check_feeds(feeds)
        if outputs is not None:
            known = {s.name for s in self._outputs}
            bad = [o for o in outputs if o not in known]
            if bad:
                raise InputError(f"unknown output(s) {bad} for {self._where()}; outputs are {sorted(known)}")
        try:
            if self.thread_safe:
                result = self._run(checked, outputs)
            else:
                with self._lock:
                    result = self._run(checked, outputs)
        except (InputError, BackendError):
            raise
        except Exception as e:
            shapes = ", ".join(f"{k}: {shape_str(v.shape)} {v.dtype}" for k, v in checked.items())
            raise BackendError(f"{self.backend} failed running {self._where()} on ({shapes}): {e}") from e
        return result

    def describe(self) -> dict:
        return {
            "backend": self.backend,
            "path": str(self.path) if self.path else "<bytes>",
            "inputs": [s.to_dict() for s in self._inputs],
            "outputs": [s.to_dict() for s in self._outputs],
        }

    def random_inputs(self, seed: int = 0, fill: int = 1) -> Dict[str, np.ndarray]:
        """Inputs of the right shape and dtype (symbolic dims set to ``fill``)."""
        rng = np.random.default_rng(seed)
        feeds = {}
        for s in self._inputs:
            shape, dt = s.concrete_shape(fill), np.dtype(s.dtype)
            if dt.kind == "f":
                feeds[s.name] = rng.standard_normal(shape).astype(dt)
            elif dt.kind in "iu":
                info = np.iinfo(dt)
                feeds[s.name] = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dt)
            elif dt.kind == "b":
                feeds[s.name] = rng.integers(0, 2, shape).astype(bool)
            else:
                raise InputError(f"cannot make random input for {s.describe()}")
        return feeds

    # -- validation ----------------------------------------------------------------------
    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        expected = {s.name: s for s in self._inputs}
        unknown = [k for k in feeds if k not in expected]
        missing = [k for k in expected if k not in feeds]
        if unknown or missing:
            specs = "; ".join(s.describe() for s in self._inputs)
            raise InputError(
                f"{self._where()} expects inputs [{specs}]"
                + (f"; unknown: {unknown}" if unknown else "")
                + (f"; missing: {missing}" if missing else "")
            )
        out = {}
        for name, arr in feeds.items():
            spec = expected[name]
            a = np.asarray(arr)
            if a.dtype != np.dtype(spec.dtype):
                raise InputError(f"input {spec.describe()} was given dtype {a.dtype}; "
                                 f"convert with .astype(np.{np.dtype(spec.dtype).name})")
            if not spec.matches(a.shape):
                raise InputError(f"input {spec.describe()} was given shape {shape_str(a.shape)}")
            out[name] = a
        return out

    def _where(self) -> str:
        return str(self.path) if self.path else "in-memory model"

    # -- subclass hooks ------------------------------------------------------------------
    def _load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, feeds: Dict[str, np.ndarray], outputs: Optional[List[str]]) -> Dict[str, np.ndarray]:
        raise NotImplementedError  # pragma: no cover
