"""Text table and PNG plot of a controller evaluation (``evaluate.evaluate``'s report)."""
from __future__ import annotations

from pathlib import Path
from typing import List

ORDER = ["adaptive", "adaptive_replayed", "oracle", "best_static", "local", "local_live", "offload", "offload_live"]


def table(report: dict) -> str:
    emu = "EMULATED " if report["pace"] != 1.0 else ""
    lines = [f"trace {report['trace']} from {report['offset_s']:g} s for {report['duration_s']:g} s, "
             f"{report['rate']:g} req/s, one-way delay {report['delay_ms']:g} ms, model {report['model']}",
             f"device: {report['device']}; deadline {report['deadline_ms']:g} ms; objective {report['objective']}"
             f" (accuracy floor {report['accuracy_floor']:g})",
             f"accuracy = {report['accuracy_metric']}; inputs: {report.get('inputs', '?')}",
             f"{'policy':18} {'mean':>8} {'p50':>8} {'p95':>8} {'p99':>8} {'miss':>6} {'acc':>6}  how / plan",
             f"{'':18} {emu + 'ms':>8}"]
    for k in ORDER:
        p = report["policies"].get(k)
        if p is None:
            continue
        how = "live" if p["mode"] == "live" else "replayed"
        lines.append(f"{k:18} {p['mean_ms']:8.1f} {p['p50_ms']:8.1f} {p['p95_ms']:8.1f} {p['p99_ms']:8.1f} "
                     f"{p['miss_rate']:6.1%} {p['accuracy']:6.3f}  {how}: {p['plan']}")
    pol = report["policies"]
    lines.append(f"adaptive/oracle {pol['adaptive']['mean_ms'] / pol['oracle']['mean_ms']:.2f}x, "
                 f"adaptive/best_static {pol['adaptive']['mean_ms'] / pol['best_static']['mean_ms']:.2f}x "
                 "(mean latency; 'replayed' = computed exactly from measured costs on the same trace segment)")
    dm = pol["adaptive"].get("decide_ms")
    if dm:
        lines.append(f"controller: {dm['median']:.3f} ms a decision (p99 {dm['p99']:.3f}; this host's speed), "
                     f"{dm['plans_priced']} of {dm['plans']} plans priced (the rest beaten on every measured cost)")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = report["timeline"]
    t = [r["t_s"] for r in tl]
    plans: List[str] = sorted({r["plan"] for r in tl} | {r["plan"] for r in report["oracle_timeline"]})
    fig, ax = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True, gridspec_kw={"height_ratios": [1, 1, 1.3]})
    cap = report["capacity"]["mbps"]
    ax[0].step([i * 0.5 for i in range(len(cap))], cap, where="post", color="tab:blue")
    ax[0].set_ylabel("uplink Mbit/s\n(trace)")
    ax[0].set_title(f"{report['trace']} @ {report['offset_s']:g} s, {report['model']} on {report['device']}", fontsize=9)
    ot = [t[i] for i in range(min(len(t), len(report["oracle_timeline"])))]
    ax[1].scatter(ot, [plans.index(r["plan"]) for r in report["oracle_timeline"][:len(ot)]], s=18, marker="s",
                  color="lightgray", label="oracle")
    ax[1].scatter(t, [plans.index(r["plan"]) for r in tl], s=6, color="tab:red", label="adaptive (live)")
    ax[1].set_yticks(range(len(plans)), plans, fontsize=7)
    ax[1].legend(fontsize=7, loc="upper right")
    ax[2].plot(t, [r["latency_ms"] for r in tl], lw=0.8, color="tab:red", label="adaptive (live)")
    ax[2].plot(ot, [r["latency_ms"] for r in report["oracle_timeline"][:len(ot)]], lw=0.8, color="gray",
               label="oracle (replayed)")
    ax[2].axhline(report["deadline_ms"], ls="--", color="k", lw=0.6, label="deadline")
    ax[2].set_yscale("log")
    ax[2].set_ylabel("latency ms" + (" (emulated)" if report["pace"] != 1.0 else ""))
    ax[2].set_xlabel("seconds since stream start")
    ax[2].legend(fontsize=7, loc="upper right")
    for s, d in report.get("outages", []):
        for a in ax:
            a.axvspan(s, s + d, color="orange", alpha=0.2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
