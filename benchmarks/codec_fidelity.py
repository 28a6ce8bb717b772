"""Codec fidelity on real activations: compression ratio and error at each codec setting.

- MobileNetV2-shaped ONNX model (``zoo.path("mobilenetv2")``, fixed-seed weights): split
  with ``onnx.utils.extract_model`` at three Add outputs (early, middle, late); the crossing
  tensor is encoded, decoded and fed to the tail; reports the logits' error and top-1
  agreement with the unsplit model.
- mediapipe ``hand_landmark_full`` and ``selfie_segmentation`` (LiteRT, all tensors
  preserved): three activations each (at 1/4, 1/2 and 3/4 of the graph); reports the
  activation's own error (NHWC, per-channel along the last axis).

Inputs are real photographs (scikit-image and scikit-learn samples) through
``edgeinf.preprocess``. Prints a markdown table (docs/codec.md):

    EDGEINF_CACHE=.cache .venv/bin/python benchmarks/codec_fidelity.py
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeinf import codec, zoo
from edgeinf.preprocess import preprocess

CODECS = ["fp16", "bf16", "int8", "int8-pc", "int4", "int4-pc", "int2-pc"]


def images():
    import skimage.data
    from sklearn.datasets import load_sample_images

    imgs = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(),
            skimage.data.rocket()]
    return imgs + list(load_sample_images().images)


def rel_rmse(a, b):
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)) / max(np.sqrt(np.mean(b.astype(np.float64) ** 2)), 1e-12))


def mobilenet_rows(imgs):
    import onnx
    import onnx.utils
    import onnxruntime as ort

    path = str(zoo.path("mobilenetv2"))
    model = onnx.load(path)
    adds = [n.output[0] for n in model.graph.node if n.op_type == "Add"]
    cuts = [adds[1], adds[len(adds) // 2], adds[-1]]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    full = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    xs = [preprocess(im, (224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) for im in imgs]
    ref = [full.run(None, {"input": x})[0] for x in xs]
    rows, tmp = [], Path(tempfile.mkdtemp())
    for cut in cuts:
        onnx.utils.extract_model(path, str(tmp / "head.onnx"), ["input"], [cut])
        onnx.utils.extract_model(path, str(tmp / "tail.onnx"), [cut], ["logits"])
        head = ort.InferenceSession(str(tmp / "head.onnx"), opts, providers=["CPUExecutionProvider"])
        tail = ort.InferenceSession(str(tmp / "tail.onnx"), opts, providers=["CPUExecutionProvider"])
        acts = [head.run(None, {"input": x})[0] for x in xs]
        for name in CODECS:
            r = _measure(acts, name, axis=1)
            outs = [tail.run(None, {cut: y})[0] for y in r.pop("decoded")]
            r["out_err"] = max(float(np.abs(o - g).max() / np.abs(g).max()) for o, g in zip(outs, ref))
            r["top1"] = float(np.mean([o.argmax() == g.argmax() for o, g in zip(outs, ref)]))
            rows.append(("mobilenetv2", f"{cut} {tuple(acts[0].shape)}", name, r))
    return rows


def _measure(acts, name, axis):
    decoded, ratio, ratio_z, err = [], [], [], []
    for a in acts:
        buf = codec.encode(a, name, axis=axis)
        y = codec.decode(buf)
        decoded.append(y)
        ratio.append(a.nbytes / len(buf))
        ratio_z.append(a.nbytes / len(codec.encode(a, name + "+zstd", axis=axis)))
        err.append(rel_rmse(y, a))
    return {"ratio": float(np.mean(ratio)), "ratio_zstd": float(np.mean(ratio_z)),
            "act_err": float(np.mean(err)), "decoded": decoded}


def tflite_rows(imgs, model_name):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        it = Interpreter(model_path=str(zoo.path(model_name)), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
    except RuntimeError:
        # NOTE: selfie_segmentation's custom op (Convolution2DTransposeBias) exists only
        # with the default (XNNPACK) resolver; its tensors are preserved there too.
        it = Interpreter(model_path=str(zoo.path(model_name)), experimental_preserve_all_tensors=True)
        it.allocate_tensors()
    inp = it.get_input_details()[0]
    h, w = int(inp["shape"][1]), int(inp["shape"][2])
    cands = [t for t in it.get_tensor_details() if len(t["shape"]) == 4 and t["shape"][0] == 1
             and t["dtype"] == np.float32 and np.prod(t["shape"]) >= 10_000 and t["index"] != inp["index"]]
    picks = [cands[len(cands) // 4], cands[len(cands) // 2], cands[3 * len(cands) // 4]]
    acts = {t["index"]: [] for t in picks}
    for im in imgs:
        it.set_tensor(inp["index"], preprocess(im, (h, w), layout="NHWC"))
        it.invoke()
        for t in picks:
            acts[t["index"]].append(it.get_tensor(t["index"]).copy())
    rows = []
    for t in picks:
        for name in CODECS:
            r = _measure(acts[t["index"]], name, axis=-1)
            r.pop("decoded")
            rows.append((model_name, f"{t['name'].split(';')[0][-32:]} {tuple(int(d) for d in t['shape'])}", name, r))
    return rows


def table(rows) -> str:
    lines = ["| model | cut tensor (shape) | codec | ratio | ratio +zstd | activation rel. RMSE | output max err / max | top-1 agree |",
             "|---|---|---|---|---|---|---|---|"]
    for model, cut, name, r in rows:
        out = f"{r['out_err']:.2e}" if "out_err" in r else "-"
        top = f"{100 * r['top1']:.0f}%" if "top1" in r else "-"
        lines.append(f"| {model} | {cut} | {name} | {r['ratio']:.2f} | {r['ratio_zstd']:.2f} | "
                     f"{r['act_err']:.2e} | {out} | {top} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["mobilenetv2", "hand_landmark_full", "selfie_segmentation"])
    args = ap.parse_args(argv)
    imgs = images()
    rows = []
    for m in args.models:
        rows += mobilenet_rows(imgs) if m == "mobilenetv2" else tflite_rows(imgs, m)
    print(f"{len(imgs)} real images; ratio = float32 bytes / encoded bytes (header included)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
