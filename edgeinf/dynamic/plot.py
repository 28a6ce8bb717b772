"""The accuracy/latency plot of ``edgeinf bench dynamic --plot`` (matplotlib, the plot extra)."""
from __future__ import annotations


def tradeoff(res: dict, path: str) -> str:
    """Accuracy against measured ms for every local plan (width x exit choice), and MACs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ..errors import ConfigError
        raise ConfigError('the plot needs matplotlib: pip install "edgeinf[plot]"') from None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    marks = {None: ("o", "full graph"), "drop": ("*", "early exit, calibrated"), "exit": ("x", "forced exit")}
    for wid, color in zip(sorted({p["width"] for p in res["plans"]}), ["tab:blue", "tab:orange", "tab:green"]):
        for kind, (m, label) in marks.items():
            pts = [p for p in res["plans"] if p["width"] == wid and (p["exit"] or "")[:4] == (kind or "")]
            if not pts:
                continue
            for ax, key, scale in ((axes[0], "ms", 1.0), (axes[1], "macs", 1e-6)):
                ax.scatter([p[key] * scale for p in pts], [100 * p["accuracy"] for p in pts], marker=m,
                           color=color, s=70 if m == "*" else 40, label=f"{wid} {label}")
    axes[0].set_xlabel("ms per sample, batch 1 (measured)")
    axes[1].set_xlabel("MMAC per sample (mean)")
    for ax in axes:
        ax.set_ylabel("top-1 accuracy, held-out test split (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    e = res["early_exit"]
    fig.suptitle(f"digits-dynamic: early exit ({e['profile']}) saves {100 * e['time_saving']:.0f}% time, "
                 f"{100 * e['mac_saving']:.0f}% MACs for {e['accuracy_drop_points']:.2f} points")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
