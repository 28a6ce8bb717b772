"""Setting up a live evaluation: package, emulated device, worker process, link proxy.

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
from typing import Dict, Iterator, List, Optional, Tuple

from .. import config
from ..errors import ConfigError, nearest
from .costmodel import Power, power_of

log = logging.getLogger("edgeinf")

#: How many times slower than THIS machine each emulated device runs (used when the device
#: profile in devices/*.toml gives no relative speed). A Raspberry Pi 4 (4x Cortex-A72,
#: 1.5 GHz) runs these models roughly 10x slower than the 2-vCPU EPYC this was measured on.
PACE = {"native": 1.0, "raspberry-pi-4": 10.0, "raspberry-pi-5": 5.0, "jetson-nano": 6.0}
DATA = Path(__file__).resolve().parent.parent / "data" / "traces"
DEFAULT_TRACE = DATA / "TMobile-LTE-short.up"
#: (model, local variants): the Pareto cuts are taken from the package
MODELS = {"hand_landmark_full": ["hand_landmark_lite"], "palm_detection_full": ["palm_detection_lite"],
          "pose_detection": []}


def device(name: str) -> Tuple[float, Power, str]:
    """(pace, power, label) of an emulated device; ``native`` is this machine at real speed."""
    prof = None
    try:
        from ..split.devices import load_device  # written by the split engine, may be absent
        prof = load_device(name) if name != "native" else None
    except (ImportError, ConfigError, FileNotFoundError, KeyError):
        prof = None
    pace = None
    for key in ("pace", "relative_slowdown", "slowdown"):
        v = getattr(prof, key, None) if prof is not None else None
        if isinstance(v, (int, float)) and v >= 1:
            pace = float(v)
    if pace is None:
        if name not in PACE:
            raise ConfigError(f"unknown device {name!r}; did you mean {nearest(name, PACE)}? known: {sorted(PACE)}")
        pace = PACE[name]
    label = "real speed (this machine)" if pace == 1.0 else f"EMULATED {name} (compute paced {pace:g}x)"
    return pace, power_of(prof), label


def anchored_pace(name: str, pkg, fallback: float) -> Tuple[float, str]:
    """Pace so the emulated device takes the time its published speed implies.

    Target = the model's FLOPs (from the package's per-cut MAC counts) / the device
    profile's ``cpu.gflops``; pace = target / this host's fastest full-model time. Anchoring
    to an absolute target keeps the emulated device the same on a fast or a slow (or
    loaded) host; a fixed factor would not. Falls back to ``fallback`` where the profile or
    the MAC counts are missing.
    """
    if name == "native":
        return 1.0, "real speed (this machine)"
    try:
        from ..split.devices import load_device

        gflops = load_device(name).cpu_gflops
        cut = next(iter(pkg.cuts.values()))
        flops = cut.extra["macs"]["head_flops"] + cut.extra["macs"]["tail_flops"]
    except (ImportError, ConfigError, FileNotFoundError, KeyError, StopIteration, AttributeError):
        return fallback, f"EMULATED {name} (compute paced {fallback:g}x, default factor)"
    sess = pkg.session("full", threads=1)
    feeds = sess.random_inputs()
    sess.run(feeds)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        sess.run(feeds)
        times.append(time.perf_counter() - t)
    host_ms = min(times) * 1e3
    target_ms = flops / (gflops * 1e9) * 1e3
    pace = max(1.0, target_ms / host_ms)
    return pace, (f"EMULATED {name} ({flops / 1e6:.0f} MFLOP at {gflops:g} GFLOPS = {target_ms:.0f} ms; "
                  f"paced {pace:.1f}x)")


def package(model: str) -> Path:
    """The model's split package in the cache, built on first use (Pareto cuts)."""
    if model not in MODELS:
        raise ConfigError(f"--model must be one of {sorted(MODELS)}; got {model!r}")
    root = config.cache_dir() / "packages" / model
    if not (root / "edgeinf.json").is_file():
        from ..split import build_package

        log.info("building package %s -> %s", model, root)
        build_package(model, root, at=None)
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


def variants(model: str) -> Dict[str, object]:
    from .. import load, zoo

    return {v: load(zoo.path(v), threads=1) for v in MODELS.get(model, [])}


def small_cuts(pkg, limit_bytes: int = 130_000) -> List[str]:
    """Cuts worth offering: crossing at most ``limit_bytes`` raw (the rest never pays)."""
    return [c.id for c in sorted(pkg.cuts.values(), key=lambda c: c.bytes) if c.bytes <= limit_bytes]
