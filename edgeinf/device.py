"""Facts about the machine we run on: cores, clocks, memory, load, heat, board.

Everything degrades to ``None`` where the platform does not expose it (a container, a
laptop, macOS); nothing here raises on a plain x86 machine.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

import psutil

# Kernel throttle counters (x86 thermal framework) and Raspberry Pi firmware flags.
_X86_THROTTLE = "/sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count"
_RPI_THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled"


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def detect_board(root: str = "/") -> dict:
    """Identify Raspberry Pi (device tree) and Jetson (``nv_tegra_release``) boards.

    ``root`` lets tests point at a fake filesystem tree.
    """
    r = Path(root)
    model = _read(str(r / "proc/device-tree/model"))
    tegra = _read(str(r / "etc/nv_tegra_release"))
    if tegra is not None:
        first = tegra.splitlines()[0] if tegra else ""
        return {"kind": "jetson", "model": model or "NVIDIA Jetson", "release": first}
    if model and "raspberry pi" in model.lower():
        return {"kind": "raspberry-pi", "model": model}
    if model:
        return {"kind": "other-sbc", "model": model}
    return {"kind": "generic", "model": platform.processor() or platform.machine()}


def temperature() -> Optional[float]:
    fn = getattr(psutil, "sensors_temperatures", None)
    if fn is None:
        return None
    try:
        temps = fn()
    except (OSError, RuntimeError):
        return None
    # Prefer the CPU package sensors; fall back to the hottest reading.
    for key in ("cpu_thermal", "coretemp", "k10temp", "soc_thermal", "cpu-thermal"):
        if temps.get(key):
            return max(t.current for t in temps[key])
    readings = [t.current for ts in temps.values() for t in ts]
    return max(readings) if readings else None


def _throttling() -> Optional[dict]:
    rpi = _read(_RPI_THROTTLED)
    if rpi is not None:
        try:
            bits = int(rpi, 16)
        except ValueError:
            return None
        return {"source": "rpi-firmware", "raw": hex(bits), "throttled_now": bool(bits & 0x4),
                "under_voltage_now": bool(bits & 0x1), "throttled_since_boot": bool(bits & 0x40000)}
    x86 = _read(_X86_THROTTLE)
    if x86 is not None and x86.isdigit():
        return {"source": "thermal_throttle", "core_throttle_count": int(x86)}
    return None


def describe() -> dict:
    """Return a JSON-serialisable dict of device facts."""
    freq = None
    try:
        f = psutil.cpu_freq()
        if f is not None:
            freq = {"current_mhz": round(f.current, 1), "max_mhz": round(f.max, 1) or None}
    except (OSError, NotImplementedError, FileNotFoundError):
        freq = None
    vm = psutil.virtual_memory()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "board": detect_board(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "affinity": len(psutil.Process().cpu_affinity()) if hasattr(psutil.Process, "cpu_affinity") else None,
        "freq": freq,
        "memory_total_mb": vm.total // 2**20,
        "memory_available_mb": vm.available // 2**20,
        "cpu_percent": psutil.cpu_percent(interval=0.1),
        "loadavg": load,
        "temperature_c": temperature(),
        "throttling": _throttling(),
    }


_PROC = None


def load_sample() -> Optional[dict]:
    """CPU load from OTHER processes since the last call, the clock and heat; None at first call.

    The controller's device estimator reads this while running: our own inference is
    subtracted (it is what the estimator predicts), so only competing load raises the
    predicted device time. Percentages are of the whole machine (0..100).
    """
    global _PROC
    first = _PROC is None
    if first:
        _PROC = psutil.Process()
        _PROC.cpu_percent(None)
        psutil.cpu_percent(None)
        return None
    total = psutil.cpu_percent(None)
    cores = psutil.cpu_count(logical=True) or 1
    own = _PROC.cpu_percent(None) / cores
    out = {"cpu_percent": total, "other_cpu_percent": max(total - own, 0.0), "cores": cores,
           "freq_mhz": None, "max_freq_mhz": None}
    try:
        f = psutil.cpu_freq()
        if f is not None and f.max:
            out["freq_mhz"], out["max_freq_mhz"] = f.current, f.max
    except (OSError, NotImplementedError, FileNotFoundError):
        pass
    thr = _throttling()
    out["throttled"] = bool(thr and thr.get("throttled_now"))
    return out
