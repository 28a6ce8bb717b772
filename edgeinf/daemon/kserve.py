"""KServe v2 (Open Inference Protocol) REST bodies: parse an infer request, build the response.

Pure functions over bytes, no HTTP stack. A request body is a JSON object, optionally
followed by raw tensor bytes (the *binary tensor data* extension)::

    POST /v2/models/{name}/infer
    Inference-Header-Content-Length: <J>          # only with binary tensors
    <J bytes: JSON header><binary tensor 0><binary tensor 1>...

    {"id": "7", "parameters": {"binary_data_output": true, "deadline_ms": 80},
     "inputs": [{"name": "input_1", "shape": [1, 224, 224, 3], "datatype": "FP32",
                 "parameters": {"binary_data_size": 602112}}],         # or "data": [...]
     "outputs": [{"name": "Identity", "parameters": {"binary_data": true}}]}

Binary tensors follow the JSON in the order of ``inputs`` that declare ``binary_data_size``,
row-major, little-endian, exactly ``prod(shape) * itemsize`` bytes each; every byte must be
claimed. JSON ``data`` is a flat or nested row-major list. The response has the same
layout; its ``parameters`` carry the plan taken and its timings (``edgeinf_*`` keys).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, nearest
from ..types import TensorSpec

DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
          "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
          "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
HEADER = "inference-header-content-length"


class RequestError(InputError):
    """A malformed or mismatched infer request: HTTP 400 with this message."""


@dataclass
class InferRequest:
    id: Optional[str]
    feeds: Dict[str, np.ndarray]
    outputs: List[Tuple[str, bool]]  # (name, as binary)
    parameters: dict = field(default_factory=dict)


def datatype_of(dtype) -> str:
    dt = np.dtype(dtype)
    for name, t in DTYPES.items():
        if np.dtype(t) == dt:
            return name
    return "BYTES"


def split_body(body: bytes, header_length: Optional[str]) -> Tuple[dict, memoryview]:
    """The JSON header and the binary region after it."""
    n = len(body)
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise RequestError(f"Inference-Header-Content-Length must be an integer; got {header_length!r}") from None
        if not 0 < n <= len(body):
            raise RequestError(f"Inference-Header-Content-Length {n} is outside the body of {len(body)} bytes")
    try:
        doc = json.loads(bytes(memoryview(body)[:n]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(f"the request is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise RequestError(f"the request must be a JSON object; got {type(doc).__name__}")
    return doc, memoryview(body)[n:]


def parse_infer(body: bytes, header_length: Optional[str], inputs: Sequence[TensorSpec],
                outputs: Sequence[TensorSpec]) -> InferRequest:
    """Validate a request against the model's specs; every error names the tensor and field."""
    doc, binary = split_body(body, header_length)
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError("parameters must be a JSON object")
    items = doc.get("inputs")
    if not isinstance(items, list) or not items:
        raise RequestError("the request needs a non-empty 'inputs' list")
    specs = {s.name: s for s in inputs}
    feeds: Dict[str, np.ndarray] = {}
    offset = 0
    for i, item in enumerate(items):
        arr, used = _tensor(item, i, specs, binary[offset:])
        offset += used
        feeds[item["name"]] = arr
    if offset != len(binary):
        raise RequestError(f"{len(binary) - offset} bytes of binary data after the JSON are claimed by no input")
    missing = [n for n in specs if n not in feeds]
    if missing:
        raise RequestError(f"missing input(s) {missing}; the model takes {_describe(inputs)}")
    rid = doc.get("id")
    return InferRequest(None if rid is None else str(rid)[:256], feeds,
                        _requested(doc.get("outputs"), bool(params.get("binary_data_output", False)), outputs), params)


def _tensor(item, i: int, specs: Mapping[str, TensorSpec], binary: memoryview) -> Tuple[np.ndarray, int]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise RequestError(f"inputs[{i}] must be an object with a 'name'")
    name = item["name"]
    spec = specs.get(name)
    if spec is None:
        raise RequestError(f"unknown input {name!r}; did you mean {nearest(name, specs)}? The model takes "
                           f"{_describe(specs.values())}")
    shape, dt = item.get("shape"), item.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise RequestError(f"input {name!r}: shape must be a list of non-negative integers; got {shape!r}")
    want = datatype_of(spec.dtype)
    if dt != want:
        raise RequestError(f"input {name!r}: datatype {dt!r}, the model takes {want}")
    if not spec.matches(tuple(shape)):
        raise RequestError(f"input {name!r}: shape {shape}, the model takes {list(spec.shape)}")
    dtype = np.dtype(DTYPES[dt])
    count = math.prod(shape)
    size = (item.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if size != count * dtype.itemsize:
            raise RequestError(f"input {name!r}: binary_data_size {size} != {count} x {dtype.itemsize} bytes for "
                               f"shape {shape} {dt}")
        if size > len(binary):
            raise RequestError(f"input {name!r}: binary_data_size {size} but only {len(binary)} bytes remain")
        arr = np.frombuffer(binary[:size], dtype=dtype.newbyteorder("<"), count=count).astype(dtype, copy=True)
        return arr.reshape(shape), size
    if "data" not in item:
        raise RequestError(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
    try:
        arr = np.asarray(item["data"], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise RequestError(f"input {name!r}: data is not a (nested) list of {dt} values: {e}") from None
    if arr.size != count:
        raise RequestError(f"input {name!r}: {arr.size} data values for shape {shape} ({count} values)")
    return arr.reshape(shape), 0


def _requested(items, binary_default: bool, outputs: Sequence[TensorSpec]) -> List[Tuple[str, bool]]:
    names = [s.name for s in outputs]
    if items is None:
        return [(n, binary_default) for n in names]
    if not isinstance(items, list):
        raise RequestError("outputs must be a list")
    out = []
    for i, o in enumerate(items):
        if not isinstance(o, dict) or o.get("name") not in names:
            got = o.get("name") if isinstance(o, dict) else o
            raise RequestError(f"outputs[{i}]: unknown output {got!r}; the model has {names}")
        out.append((o["name"], bool((o.get("parameters") or {}).get("binary_data", binary_default))))
    return out


def _describe(specs) -> str:
    return ", ".join(f"{s.name} {datatype_of(s.dtype)}{list(s.shape)}" for s in specs)


def build_response(model: str, req: InferRequest, outputs: Mapping[str, np.ndarray],
                   parameters: Mapping[str, object]) -> Tuple[bytes, Optional[int]]:
    """The response body, and the JSON header length when binary tensors follow it."""
    items, blobs = [], []
    for name, as_binary in req.outputs:
        arr = np.ascontiguousarray(outputs[name])
        entry = {"name": name, "datatype": datatype_of(arr.dtype), "shape": list(arr.shape)}
        if as_binary:
            raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = arr.reshape(-1).tolist()
        items.append(entry)
    doc = {"model_name": model, "model_version": "1", "outputs": items, "parameters": dict(parameters)}
    if req.id is not None:
        doc["id"] = req.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def result_parameters(res, missed: bool) -> Dict[str, object]:
    """The decision record as flat KServe parameters (values must be scalars)."""
    out: Dict[str, object] = {"edgeinf_plan": str(res.plan), "edgeinf_plan_kind": res.plan.kind,
                              "edgeinf_outcome": res.outcome, "edgeinf_reason": res.reason,
                              "edgeinf_latency_ms": round(res.latency_ms, 3),
                              "edgeinf_predicted_ms": round(res.predicted_ms, 3) if math.isfinite(res.predicted_ms) else -1.0,
                              "edgeinf_deadline_missed": bool(missed),
                              "edgeinf_decide_ms": round(res.decide_ms, 4)}
    for stage, ms in (res.run.timings.items() if res.run else ()):
        out[f"edgeinf_{stage}_ms"] = round(float(ms), 3)
    if res.run is not None:
        out["edgeinf_bytes_sent"] = int(res.run.bytes_sent)
    return out
