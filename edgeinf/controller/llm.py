"""Which way an edge and a cloud language model work together on the next answer.

Pure: estimates in, a mode out. Per emitted token, with ``e`` the edge's ms/token, ``c``
the cloud's decode ms/token (scaled by its queue), ``v`` the cloud's ms per verified or
prefilled token, ``r`` the round trip and ``k`` tokens per cloud step:

=============  ====================================  ============================  =========
mode           latency per token                     cloud ms per token            agreement
=============  ====================================  ============================  =========
local          e                                     0                             edge's
cloud          c + r / k                             c                             1
escalate       e + f (r + c)                         f c + v (prefill of the rest) calibrated
speculate(g)   (g e + r + (g+1) v) / E(g)            (g+1) v / E(g)                1
=============  ====================================  ============================  =========

where ``f`` is the fraction of tokens the edge is not confident about and
``E(g) = (1 - a^(g+1)) / (1 - a)`` the tokens one verification yields at acceptance ``a``
(Leviathan et al.). ``cloud ms per token`` is what the capacity gain comes from: a cloud
busy ``c`` per token serves ``c / cost`` times more clients in that mode ("Speculation at a
Distance": the gain of remote drafting is capacity, (1 + g e / v)-ish, rarely latency).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

MODES = ("local", "cloud", "escalate", "speculate")
OBJECTIVES = ("latency", "cloud_cost")


@dataclass(frozen=True)
class LLMEstimates:
    edge_ms: float                    # edge decode, ms per token
    cloud_ms: Optional[float] = None  # cloud decode, ms per token (None: never measured)
    verify_ms: Optional[float] = None  # cloud batched pass, ms per token
    rtt_ms: Optional[float] = None
    acceptance: float = 0.7           # speculate: draft tokens accepted per draft token
    escalate_fraction: float = 0.3    # escalate: tokens the edge is not confident about
    edge_agreement: float = 0.8       # local: edge tokens equal to the cloud's choice
    escalate_agreement: float = 0.95  # escalate at the calibrated threshold
    server_queue: float = 0.0         # queued requests per cloud executor
    link_up: bool = True
    tokens_per_step: int = 8          # cloud mode: tokens per request

    @property
    def remote_known(self) -> bool:
        return self.link_up and None not in (self.cloud_ms, self.verify_ms, self.rtt_ms)


@dataclass(frozen=True)
class ModeChoice:
    mode: str
    gamma: int
    reason: str
    latency_ms: Dict[str, float] = field(default_factory=dict)    # per token, by mode
    cloud_ms: Dict[str, float] = field(default_factory=dict)      # cloud compute per token, by mode
    agreement: Dict[str, float] = field(default_factory=dict)


def expected_tokens(acceptance: float, gamma: int) -> float:
    """Tokens one verification of ``gamma`` drafts yields (accepted prefix + the cloud's own)."""
    a = min(max(acceptance, 0.0), 0.999)
    return (1 - a ** (gamma + 1)) / (1 - a)


def best_gamma(est: LLMEstimates, gamma_max: int = 8) -> Tuple[int, float]:
    """The draft length with the lowest latency per token, and that latency."""
    q = 1 + max(est.server_queue, 0.0)
    costs = {g: (g * est.edge_ms + est.rtt_ms + (g + 1) * est.verify_ms * q) / expected_tokens(est.acceptance, g)
             for g in range(1, gamma_max + 1)}
    g = min(costs, key=costs.get)
    return g, costs[g]


def choose(est: LLMEstimates, objective: str = "latency", agreement_floor: float = 0.0,
           gamma_max: int = 8) -> ModeChoice:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")
    lat = {"local": est.edge_ms}
    cloud = {"local": 0.0}
    agree = {"local": est.edge_agreement}
    gamma = 0
    if est.remote_known:
        q = 1 + max(est.server_queue, 0.0)
        c, v, r, k = est.cloud_ms * q, est.verify_ms * q, est.rtt_ms, max(est.tokens_per_step, 1)
        f = min(max(est.escalate_fraction, 0.0), 1.0)
        lat["cloud"], cloud["cloud"], agree["cloud"] = c + r / k, est.cloud_ms, 1.0
        lat["escalate"] = est.edge_ms + f * (r + c)
        cloud["escalate"], agree["escalate"] = f * est.cloud_ms + (1 - f) * est.verify_ms, est.escalate_agreement
        gamma, lat["speculate"] = best_gamma(est, gamma_max)
        cloud["speculate"] = (gamma + 1) * est.verify_ms / expected_tokens(est.acceptance, gamma)
        agree["speculate"] = 1.0
    feasible = [m for m in lat if agree[m] >= agreement_floor] or ["cloud" if "cloud" in lat else "local"]
    if objective == "latency":
        mode = min(feasible, key=lambda m: (lat[m], cloud[m]))
        why = f"fastest per token meeting agreement >= {agreement_floor:.2f}"
    else:
        mode = min(feasible, key=lambda m: (cloud[m], lat[m]))
        why = f"least cloud compute per token meeting agreement >= {agreement_floor:.2f}"
    if not est.remote_known:
        why = "link down" if not est.link_up else "cloud not measured yet"
        if agreement_floor > est.edge_agreement:
            why += f" (edge agreement {est.edge_agreement:.2f} is below the floor; the best available)"
    return ModeChoice(mode, gamma if mode == "speculate" else 0, why, lat, cloud, agree)
