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
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

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


# NOTE: a NamedTuple, not a frozen dataclass: ``decide`` makes one per candidate per request,
# and a frozen dataclass's __init__ (a setattr per field) took 1.9 us of the 7 us per candidate
class Prediction(NamedTuple):
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
    return predict_all((cost,), est, power, z)[0]


def predict_all(costs: Iterable[PlanCost], est: Estimates, power: Optional[Power] = None,
                z: float = 1.28) -> Tuple[Prediction, ...]:
    """:func:`predict` for every plan of ``costs``, in order (what ``decide`` runs per request).

    The link's terms are worked out once, not per plan; each plan's figures are the very
    floats ``LinkEstimate.transfer_ms`` gives (same expressions, same order)."""
    power = power or Power()
    link = est.link
    slow, queue, factor = est.slowdown, est.server_queue_ms, est.server_factor
    active, idle, radio = power.active_w, power.idle_w, power.radio_w
    inf = math.inf
    if link.up:
        s, rtt = link.log_bw_std, link.rtt_ms
        inv_mean = math.exp(-link.log_bw + 0.5 * min(s, 1.0) ** 2)
        inv_pess = math.exp(-link.log_bw + (z * s if z else 0.5 * min(s, 1.0) ** 2))
    out: List[Prediction] = []
    for cost in costs:
        plan = cost.plan
        dev = (cost.device_ms + cost.encode_ms) * slow
        if not plan.remote:
            out.append(Prediction(plan, dev, dev, cost.accuracy, dev * active))
            continue
        if not link.up:
            out.append(Prediction(plan, inf, inf, cost.accuracy, inf, inf))
            continue
        nbits = (cost.up_bytes + cost.down_bytes) * 8
        server = queue + cost.server_ms * factor
        link_ms = rtt + nbits * inv_mean * 1000.0
        if math.isinf(link_ms):
            out.append(Prediction(plan, inf, inf, cost.accuracy, inf, inf))
            continue
        lat = dev + link_ms + server
        send_ms = max(link_ms - rtt, 0.0)
        energy = dev * active + send_ms * (idle + radio) + (lat - dev - send_ms) * idle
        out.append(Prediction(plan, lat, dev + (rtt + nbits * inv_pess * 1000.0) + server, cost.accuracy,
                              energy, link_ms))
    return tuple(out)


def undominated(costs: Sequence[PlanCost]) -> Tuple[PlanCost, ...]:
    """The plans no other plan beats: a remote plan whose device time, bytes and server time
    are each at least another remote plan's, at no better accuracy, can never rank above it
    (every objective's score grows with each of those and falls with accuracy, under any
    estimates), so ``decide`` need not price it. Of exact ties the first is kept. Local plans
    are all kept: the link-down fallback and the deadline budget are priced from them."""
    def key(c: PlanCost):
        return (c.device_ms + c.encode_ms, c.up_bytes + c.down_bytes, c.server_ms, -c.accuracy)

    remote = [(i, key(c)) for i, c in enumerate(costs) if c.plan.remote]
    out = []
    for i, c in enumerate(costs):
        if c.plan.remote:
            k = key(c)
            if any(j != i and all(a <= b for a, b in zip(kj, k)) and (kj != k or j < i) for j, kj in remote):
                continue
        out.append(c)
    return tuple(out)


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
