#!/usr/bin/env python3
"""Hand tracking on video through the edgeinf daemon (KServe v2), with branch switching.

Frames come from a camera (``--camera 0``) or a video file (``--video clip.mp4``; without
either, a clip is made from the bundled photographs: a hand drawn over scikit-image's
``coffee``, calm, fast, dark and calm again). Each frame goes to the daemon's
``hand_landmark_lite`` model while the output is consistent, and to ``hand_landmark_full``
when it is not (fast motion, low light), by edgeinf's branch policy
(:func:`edgeinf.dynamic.branch.decide` with the hand measure); the 21 landmarks are drawn
and written to ``--out`` (MP4). The daemon decides per request where each model runs.

    edgeinf daemon --model lite=hand_landmark_lite --model full=hand_landmark_full &
    python apps/hand_tracking.py --url 127.0.0.1:8080 --out out/hands.mp4
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import tritonclient.http as tc

from edgeinf.dynamic import branch as B
from edgeinf.dynamic.stream import HandConsistency

SIZE = 224
# the 21 mediapipe hand landmarks: wrist, then four joints per finger
BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
         (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20)]


def make_clip(path: Path, frames: int, fps: float = 15.0) -> Path:
    """An MP4 of edgeinf's synthetic hand clip over a bundled photograph."""
    from edgeinf.dynamic import video

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (SIZE, SIZE))
    for i, (f, _) in enumerate(video.frames(seed=0)):
        if i >= frames:
            break
        w.write(cv2.cvtColor((f[0] * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    w.release()
    return path


class Daemon:
    """One KServe v2 model call: a BGR frame in, the raw outputs and the daemon's parameters out."""

    def __init__(self, url: str, api_key: str = ""):
        self.client = tc.InferenceServerClient(url, network_timeout=30.0)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else None

    def __call__(self, model: str, x: np.ndarray):
        inp = tc.InferInput("input_1", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        r = self.client.infer(model, [inp], headers=self.headers)
        return {"Identity": r.as_numpy("Identity"), "Identity_1": r.as_numpy("Identity_1")}, \
            r.get_response()["parameters"]


def to_input(frame_bgr: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.resize(frame_bgr, (SIZE, SIZE)), cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) / 255.0)[None]


def draw(frame: np.ndarray, out: dict, label: str) -> np.ndarray:
    h, w = frame.shape[:2]
    lm = out["Identity"].reshape(21, 3)[:, :2] * [w / SIZE, h / SIZE]
    pts = [tuple(int(v) for v in p) for p in lm]
    if float(out["Identity_1"].reshape(-1)[0]) > 0.5:  # hand presence
        for a, b in BONES:
            cv2.line(frame, pts[a], pts[b], (0, 255, 0), 1, cv2.LINE_AA)
        for p in pts:
            cv2.circle(frame, p, 2, (0, 0, 255), -1, cv2.LINE_AA)
    cv2.putText(frame, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def track(source, daemon: Daemon, small: str, big: str, out_path: Path, max_frames: int) -> dict:
    """Run the stream; returns counts of branches, plans and the latency per frame."""
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise SystemExit(f"hand_tracking: cannot open video source {source!r}")
    measure, cfg = HandConsistency(), B.BranchConfig()
    step, state, history = B.Step(B.SMALL), B.BranchState(), ()
    writer, stats = None, {"frames": 0, "branches": collections.Counter(), "plans": collections.Counter(), "ms": []}
    try:
        while stats["frames"] < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            x, t0 = to_input(frame), time.perf_counter()
            out, params = daemon(small if step.branch == B.SMALL else big, x)
            disagreement = None
            if step.probe:  # on the big branch: does the small one agree again?
                disagreement = measure.disagreement(daemon(small, x)[0], out)
            change = measure.change(out, history) if step.branch == B.SMALL else 0.0
            history = (history + (out,))[-2:]
            model = small if step.branch == B.SMALL else big
            stats["branches"][model] += 1
            stats["plans"][params["edgeinf_plan"]] += 1
            stats["ms"].append((time.perf_counter() - t0) * 1e3)
            step, state = B.decide(B.Observation(step.branch, change, disagreement), state, cfg)
            if writer is None:
                out_path.parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0,
                                         (frame.shape[1], frame.shape[0]))
            writer.write(draw(frame, out, f"{model} {params['edgeinf_plan']} {stats['ms'][-1]:.0f} ms"))
            stats["frames"] += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="127.0.0.1:8080", help="daemon HOST:PORT (default 127.0.0.1:8080)")
    ap.add_argument("--api-key", default="", help="the daemon's API key, if it has one")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, help="camera index for cv2.VideoCapture")
    src.add_argument("--video", type=Path, help="video file (default: a clip made from the bundled photographs)")
    ap.add_argument("--small", default="lite", help="daemon model name of the small branch (default lite)")
    ap.add_argument("--big", default="full", help="daemon model name of the big branch (default full)")
    ap.add_argument("--frames", type=int, default=230, help="stop after this many frames (default 230)")
    ap.add_argument("--out", type=Path, default=Path("out/hands.mp4"), help="output video (default out/hands.mp4)")
    args = ap.parse_args(argv)
    if args.camera is not None:
        source = args.camera
    elif args.video is not None:
        source = str(args.video)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        source = str(make_clip(args.out.with_name("hands_input.mp4"), args.frames))
    stats = track(source, Daemon(args.url, args.api_key), args.small, args.big, args.out, args.frames)
    ms = np.array(stats["ms"] or [np.nan])
    summary = {"frames": stats["frames"], "branches": dict(stats["branches"]), "plans": dict(stats["plans"]),
               "median_ms": round(float(np.median(ms)), 2), "out": str(args.out)}
    print(json.dumps(summary))
    return 0 if stats["frames"] else 1


if __name__ == "__main__":
    sys.exit(main())
