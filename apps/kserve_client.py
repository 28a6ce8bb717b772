#!/usr/bin/env python3
"""A minimal KServe v2 client for any model the edgeinf daemon serves (``tritonclient``).

    python apps/kserve_client.py --url 127.0.0.1:8080 --list
    python apps/kserve_client.py --url 127.0.0.1:8080 --model hand                   # photo or random input
    python apps/kserve_client.py --url 127.0.0.1:8080 --model hand --input x.npy --json

Inputs: ``--input NAME=FILE.npy`` (repeatable; a bare FILE.npy for a one-input model), else
a bundled photograph for image-shaped float inputs and seeded random values for the rest.
Prints each output's shape and range, and the plan the daemon chose with its timings.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import tritonclient.http as tc

DTYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT8": np.int8, "INT16": np.int16,
          "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "BOOL": np.bool_}


def sample(spec: dict) -> np.ndarray:
    shape = [d if d > 0 else 1 for d in spec["shape"]]
    dtype = DTYPES.get(spec["datatype"])
    if dtype is None:
        raise SystemExit(f"kserve_client: input {spec['name']} has datatype {spec['datatype']}: pass --input")
    if len(shape) == 4 and shape[-1] == 3 and np.issubdtype(dtype, np.floating):
        import cv2
        from edgeinf import photos

        img = cv2.resize(photos.image("astronaut"), (shape[2], shape[1])).astype(np.float32) / 255.0
        return img[None].astype(dtype)
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.floating):
        return rng.uniform(0, 1, shape).astype(dtype)
    return rng.integers(0, 2, shape).astype(dtype)


def inputs_for(md: dict, given) -> list:
    files = {}
    for g in given or ():
        name, sep, path = g.rpartition("=")
        if not sep:
            if len(md["inputs"]) != 1:
                raise SystemExit("kserve_client: the model has several inputs: use --input NAME=FILE.npy")
            name = md["inputs"][0]["name"]
        files[name] = np.load(path, allow_pickle=False)  # never unpickle
    out = []
    for spec in md["inputs"]:
        x = files.get(spec["name"])
        x = sample(spec) if x is None else x
        i = tc.InferInput(spec["name"], list(x.shape), spec["datatype"])
        i.set_data_from_numpy(x.astype(DTYPES[spec["datatype"]], copy=False))
        out.append(i)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="127.0.0.1:8080", help="daemon HOST:PORT (default 127.0.0.1:8080)")
    ap.add_argument("--api-key", default="", help="the daemon's API key, if it has one")
    ap.add_argument("--model", help="served model name")
    ap.add_argument("--list", action="store_true", help="list the served models and their inputs")
    ap.add_argument("--input", action="append", metavar="NAME=FILE.npy")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    c = tc.InferenceServerClient(args.url, network_timeout=60.0)
    if args.list or not args.model:
        import httpx

        doc = httpx.get(f"http://{args.url}/status.json", headers=headers, timeout=10).json()
        names = [n for n, m in doc["models"].items() if m["kind"] == "vision"]
        for n in names:
            md = c.get_model_metadata(n, headers=headers)
            print(n, " ".join(f"{i['name']}:{i['datatype']}{i['shape']}" for i in md["inputs"]))
        return 0
    md = c.get_model_metadata(args.model, headers=headers)
    r = c.infer(args.model, inputs_for(md, args.input), headers=headers)
    resp = r.get_response()
    outs = {o["name"]: r.as_numpy(o["name"]) for o in resp["outputs"]}
    summary = {"model": args.model, "parameters": resp["parameters"],
               "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "min": float(v.min()),
                               "max": float(v.max())} for k, v in outs.items()}}
    if args.json:
        print(json.dumps(summary))
        return 0
    p = resp["parameters"]
    print(f"plan {p['edgeinf_plan']} ({p['edgeinf_outcome']}, {p['edgeinf_reason']}), "
          f"{p['edgeinf_latency_ms']:.1f} ms (predicted {p['edgeinf_predicted_ms']:.1f})")
    for k, v in summary["outputs"].items():
        print(f"  {k}: {v['dtype']}{v['shape']} in [{v['min']:.4g}, {v['max']:.4g}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
