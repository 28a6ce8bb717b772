"""This host's speed, measured, and the pace that emulates a slower target device.

Device profiles (``edgeinf.split.devices``) give ``cpu_gflops`` as a float64 Linpack-style
figure for the whole device. The host is measured the same way: a float64 numpy matmul
(all cores, best of a few runs), so ``pace = host GFLOPS / device GFLOPS`` compares like
with like. The full model's MACs over its measured time is recorded beside it, as a check
on how far a real model is from the matmul figure.
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
from functools import lru_cache
from typing import Tuple

import numpy as np

MATMUL_N, MATMUL_REPEAT = 1024, 5


def cpu_model() -> str:
    """The CPU's model name (lscpu, then /proc/cpuinfo, then the platform's word for it),
    with x86's family and model: VMs often show only "AMD EPYC", which hides a Zen 2 from a
    Zen 4 (and their AVX-512 or not)."""
    name, info = None, {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if not key.strip():
                    break  # first CPU only
                info.setdefault(key.strip().lower(), val.strip())
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    name = name or info.get("model name") or info.get("hardware") or info.get("model") \
        or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']} model {info['model']})"
    return name


def matmul_gflops(n: int = MATMUL_N, repeat: int = MATMUL_REPEAT) -> float:
    """float64 GFLOPS of an ``n x n`` numpy matmul here, the fastest of ``repeat`` runs."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a @ b  # BLAS threads start up
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2.0 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@lru_cache(maxsize=1)
def _measured() -> dict:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # NOTE: psutil is a core dependency; this only guards odd platforms
        physical = None
    return {"cpu": cpu_model(), "arch": platform.machine(), "logical_cores": os.cpu_count(),
            "physical_cores": physical, "gflops_fp64": round(matmul_gflops(), 2),
            "gflops_method": f"numpy float64 {MATMUL_N}x{MATMUL_N} matmul, all cores, best of {MATMUL_REPEAT} "
                             "(the fp64 metric of the device profiles' cpu.gflops)"}


def measure_host(refresh: bool = False) -> dict:
    """This host: CPU model, cores, and its measured float64 GFLOPS (cached per process)."""
    if refresh:
        _measured.cache_clear()
    return dict(_measured())


def pace_for(profile, device: str) -> Tuple[float, str]:
    """``(pace, label)``: how many times slower ``device`` runs than the host that made ``profile``.

    ``profile`` is a :class:`~edgeinf.profiling.Profile` (or its ``host`` dict); ``device`` a
    device profile name. A device faster than the host cannot be emulated: pace 1, and the
    label says so.
    """
    from ..split.devices import load_device

    host = profile if isinstance(profile, dict) else profile.host
    dev = load_device(device)
    # NOTE: anchored to the MODEL when its MACs are known: the device is taken to run this
    # model at its published GFLOPS, the host runs it at what was measured here. The matmul
    # ratio alone said a Pi 4 is 2x slower than a 2-vCPU EPYC; mediapipe models really run
    # about 10x slower there, which the model anchor reproduces (docs/controller.md)
    if host.get("model_gflops"):
        ratio = float(host["model_gflops"]) / dev.cpu_gflops
        where = (f"{host.get('cpu', 'this host')} runs this model at {host['model_gflops']:.1f} GFLOPS, "
                 f"device {dev.cpu_gflops:g} GFLOPS published")
    else:
        ratio = float(host["gflops_fp64"]) / dev.cpu_gflops
        where = (f"{host.get('cpu', 'this host')}, {host['gflops_fp64']:.1f} GFLOPS fp64 matmul measured, "
                 f"device {dev.cpu_gflops:g} GFLOPS published")
    if ratio < 1.0:
        return 1.0, f"{dev.name} would be {1 / ratio:.2f}x faster than this host ({where}): run at host speed"
    return ratio, f"EMULATED {dev.name}: device compute paced to {ratio:.2f}x this host ({where})"
