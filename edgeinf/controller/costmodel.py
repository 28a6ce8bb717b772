"""Cost model: predicted latency, accuracy and device energy of each candidate plan.

    latency = device compute x slowdown + encode x slowdown       (on the device)
            + RTT + bytes / bandwidth                              (the link)
            + server queue + server compute x server factor        (decode + tail or full)

``PlanCost`` holds what was measured once per plan (profiles: target-device ms, bytes,
server ms, calibrated accuracy); ``predict`` combines it with the live estimates. The
expectation over the bandwidth's uncertainty is used for mean latency (``z=0``), a
pessimistic quantile for deadline checks. Energy (mJ) = device power x time: active while
computing, radio while sending, idle while waiting, figures from ``devices/*.toml``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..plan import Plan
from .estimators import LinkEstimate


@dataclass(frozen=True)
class PlanCost:
    """Measured, plan-specific costs (target-device ms, i.e. already paced/scaled)."""

    plan: Plan
    device_ms: float  # head (split), whole model (local), or 0 (offload: frame already there)
    encode_ms: float = 0.0  # quantize / JPEG-encode on the device
    up_bytes: int = 0
    server_ms: float = 0.0  # decode + tail (split) or decode + full model (offload), on the server
    accuracy: float = 1.0  # agreement with the unsplit full-precision model, 0..1
    down_bytes: int = 0

    def to_dict(self) -> dict:
        return {"plan": self.plan.label(), "device_ms": round(self.device_ms, 3), "encode_ms": round(self.encode_ms, 3),
                "up_bytes": self.up_bytes, "server_ms": round(self.server_ms, 3), "accuracy": round(self.accuracy, 4)}


@dataclass(frozen=True)
class Power:
    """Device power draw in watts (from a device profile)."""

    active_w: float = 6.4  # Raspberry Pi 4 under a CPU-bound load (published figure)
    idle_w: float = 2.7
    radio_w: float = 1.5  # extra while transmitting (Wi-Fi/LTE module)


@dataclass(frozen=True)
class Prediction:
    plan: Plan
    latency_ms: float  # expected
    pessimistic_ms: float  # a high quantile, for deadlines
    accuracy: float
    energy_mj: float
    link_ms: float = 0.0  # share of the latency spent on the link (for "why")


@dataclass(frozen=True)
class Estimates:
    """Everything live the cost model reads, as one value (what ``decide`` sees)."""

    link: LinkEstimate
    slowdown: float = 1.0
    server_queue_ms: float = 0.0
    server_factor: float = 1.0


def predict(cost: PlanCost, est: Estimates, power: Optional[Power] = None, z: float = 1.28) -> Prediction:
    """Predict one plan's latency (expected and at quantile ``z`` of bandwidth) and energy."""
    power = power or Power()
    dev = (cost.device_ms + cost.encode_ms) * est.slowdown
    if not cost.plan.remote:
        return Prediction(cost.plan, dev, dev, cost.accuracy, dev * power.active_w)
    server = est.server_queue_ms + cost.server_ms * est.server_factor
    link = est.link.transfer_ms(cost.up_bytes + cost.down_bytes)
    link_p = est.link.transfer_ms(cost.up_bytes + cost.down_bytes, z=z)
    lat, pess = dev + link + server, dev + link_p + server
    if math.isinf(link):
        return Prediction(cost.plan, math.inf, math.inf, cost.accuracy, math.inf, math.inf)
    send_ms = max(link - est.link.rtt_ms, 0.0)
    energy = dev * power.active_w + send_ms * (power.idle_w + power.radio_w) + (lat - dev - send_ms) * power.idle_w
    return Prediction(cost.plan, lat, pess, cost.accuracy, energy, link)


def power_of(device) -> Power:
    """Power figures of a loaded device profile; missing fields keep the Pi-4 defaults."""
    if device is None:
        return Power()
    get = (lambda k: device.get(k)) if isinstance(device, dict) else (lambda k: getattr(device, k, None))
    vals = {}
    for field_, keys in {"active_w": ("power_active_w", "active_w", "power_load_w", "tdp_w"),
                         "idle_w": ("power_idle_w", "idle_w"), "radio_w": ("power_radio_w", "radio_w")}.items():
        for k in keys:
            v = get(k)
            if isinstance(v, (int, float)) and v > 0:
                vals[field_] = float(v)
                break
    return Power(**vals)
