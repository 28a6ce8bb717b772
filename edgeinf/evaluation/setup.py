"""Setting up a live evaluation: package, worker process, inputs.

Shared by ``edgeinf bench controller`` and ``edgeinf demo`` (see
:mod:`edgeinf.controller.evaluate`). Everything here starts real things: the worker is a
separate ``edgeinf worker`` process on loopback, the edge reaches it only through the
trace-driven :class:`edgeinf.netem.LinkProxy`.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from .. import config
from ..errors import ConfigError

log = logging.getLogger("edgeinf")

DATA = Path(__file__).resolve().parent.parent / "data" / "traces"
DEFAULT_TRACE = DATA / "TMobile-LTE-short.up"
#: zoo models with a cached package: {model: its smaller local variant (a branch), or None}
MODELS = {"hand_landmark_full": "hand_landmark_lite", "palm_detection_full": "palm_detection_lite",
          "pose_detection": None}
#: hand_landmark_full with the slimmable bottleneck widths as split plans (edgeinf.bottleneck)
BOTTLENECK = "bottleneck"


def package(model: str, shapes=None) -> Path:
    """The split package (Pareto cuts) of a zoo name or a model file, built once in the cache.

    A model file's package is keyed by the file's SHA-256 and the input shapes, so editing
    the model builds a new one instead of serving a stale profile.
    """
    import hashlib

    from ..package import sha256_file

    path = Path(model)
    if path.suffix.lower() in (".onnx", ".tflite") or path.exists():
        if not path.is_file():
            raise ConfigError(f"--model {model}: no such file")
        key = hashlib.sha256((sha256_file(path) + repr(sorted((shapes or {}).items()))).encode()).hexdigest()[:16]
        root = config.cache_dir() / "packages" / f"{path.stem}-{key}"
        src = path
    elif model == BOTTLENECK:  # trained once (minutes), profiled on held-out photos, cached
        from ..bottleneck import build

        return build.ensure(progress=log.info)
    else:
        if model not in MODELS:
            raise ConfigError(f"--model must be a .onnx/.tflite file or one of {sorted([*MODELS, BOTTLENECK])}; "
                              f"got {model!r}")
        root, src = config.cache_dir() / "packages" / model, model
    if not (root / "edgeinf.json").is_file():
        from ..split import build_package

        log.info("building package %s -> %s", model, root)
        build_package(src, root, at=None, shapes=shapes)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def worker(pkg_dir: Path, port: Optional[int] = None, timeout_s: float = 30.0) -> Iterator[int]:
    """A plain ``edgeinf worker`` subprocess serving ``pkg_dir`` on 127.0.0.1; yields its port."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "edgeinf", "worker", "--bind", f"tcp://127.0.0.1:{port}",
           "--package", str(pkg_dir), "--workers", "1", "--threads", "1", "--no-verify"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise ConfigError(f"worker exited ({proc.returncode}): {proc.stderr.read().decode()[-800:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise ConfigError(f"worker did not listen on port {port} within {timeout_s} s")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def sample_set(pkg, n: int = 8) -> Tuple[List[dict], str]:
    """``n`` input dicts for ``pkg`` (the shapes it was split for) and what they are: the
    bundled photographs for image-like inputs, seeded values drawn from the specs for the rest."""
    from ..profiling.samples import generated, shapes_of, unstack

    stacked, kinds = generated(pkg.inputs, n, shapes_of(pkg))
    words = {"photos": "photographs", "random": "values drawn from the spec"}
    return unstack(stacked), ", ".join(f"{name}: {words.get(k, k)}" for name, k in kinds.items())
