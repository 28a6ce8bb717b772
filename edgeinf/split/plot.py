"""The Neurosurgeon figure: per cut, device-side time and crossing size.

Bars: head time (on the target device when the profile was scaled to one, else measured
here) stacked with the tail time measured here; line (right axis, log scale): bytes that
cross, raw and with the smallest codec.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

log = logging.getLogger("edgeinf")


def plot_profile(profile: dict, out: Union[str, Path]) -> Optional[Path]:
    """Write the PNG for a :func:`~edgeinf.split.profile.profile_model` result.

    Returns None, and says so once in the log, when matplotlib is not installed: the
    profile itself is the product and must not need a plotting library (a Pi install).
    """
    try:
        import matplotlib
    except ImportError:
        log.warning('no profile plot: matplotlib is not installed (pip install "edgeinf[plot]")')
        return None

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    cuts = profile["cuts"]
    dev = profile.get("device")
    x = range(len(cuts))
    head = [c.get("device_head_ms", c["head"]["median_ms"]) for c in cuts]
    tail = [c["tail"]["median_ms"] for c in cuts]
    fig, ax = plt.subplots(figsize=(max(8, len(cuts) * 0.12), 4.5))
    head_label = f"head on {dev['name']} (scaled, ms)" if dev else "head here (measured, ms)"
    ax.bar(x, head, color="#4c72b0", label=head_label)
    ax.bar(x, tail, bottom=head, color="#dd8452", alpha=0.6, label="tail here (measured, ms)")
    ax.set_xlabel("cut (in graph order)")
    ax.set_ylabel("time (ms)")
    ax2 = ax.twinx()
    ax2.plot(x, [c["bytes"] / 1024 for c in cuts], "k.-", lw=1, ms=3, label="crossing raw (KiB)")
    # NOTE: the best codec meeting the accuracy floor (older profiles: the smallest)
    pick = [c.get("best_codec") or min(c["codec_bytes"], key=c["codec_bytes"].get) for c in cuts if c.get("codec_bytes")]
    if len(pick) == len(cuts):
        best = [c["codec_bytes"].get(n, c["bytes"]) / 1024 for c, n in zip(cuts, pick)]
        ax2.plot(x, best, "g.--", lw=1, ms=3, label="crossing, best codec at the floor (KiB)")
    ax2.set_yscale("log")
    ax2.set_ylabel("crossing size (KiB, log)")
    step = max(1, len(cuts) // 20)
    ax.set_xticks(list(x)[::step])
    ax.set_xticklabels([c["id"] for c in cuts][::step], rotation=60, fontsize=7)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left", framealpha=0.85)
    ax.set_title(f"{Path(profile['model']).name}: per-cut time and crossing size")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
