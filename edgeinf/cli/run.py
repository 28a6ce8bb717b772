"""``edgeinf run MODEL``: run a model file (or a zoo model by name) and time it."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..types import shape_str
from ._util import percentiles_ms, print_json


def register(sub) -> None:
    p = sub.add_parser("run", help="run a model and report output specs and latency")
    p.add_argument("model", help="model file (.onnx/.tflite) or a zoo model name (see `edgeinf models`)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, help=".npy file for the (single) input")
    src.add_argument("--random", action="store_true", help="random input of the right shape (default)")
    p.add_argument("--repeat", type=int, default=20, help="timed runs after 3 warm-up runs (default 20)")
    p.add_argument("--threads", type=int, default=None, help="engine intra-op threads")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import load, zoo

    if args.repeat < 1:
        raise InputError(f"--repeat must be >= 1; got {args.repeat}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1 (omit it for the engine's default); got {args.threads}")
    if args.input is not None and not args.input.is_file():
        raise InputError(f"--input {args.input}: no such file (expected a .npy holding the model's input)")
    model = load(zoo.resolve(args.model), threads=args.threads)
    if args.input is not None:
        if len(model.inputs) != 1:
            raise InputError(f"--input gives one array but the model takes {len(model.inputs)}: "
                             + "; ".join(s.describe() for s in model.inputs))
        feeds = {model.inputs[0].name: _load_npy(args.input)}
    else:
        feeds = model.random_inputs()
    for _ in range(3):
        outputs = model.run(feeds)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        outputs = model.run(feeds)
        times.append(time.perf_counter() - t0)
    stats = percentiles_ms(times)
    report = {**model.describe(), "latency": stats, "threads": args.threads,
              "output_shapes": {k: list(v.shape) for k, v in outputs.items()}}
    if args.json:
        print_json(report)
        return 0
    print(f"{report['path']}  [{model.backend}]")
    for s in model.inputs:
        print(f"  in   {s.describe()}")
    for s in model.outputs:
        print(f"  out  {s.describe()}   got {shape_str(outputs[s.name].shape)}")
    print(f"  latency over {stats['n']} runs: median {stats['median_ms']:.2f} ms, p90 {stats['p90_ms']:.2f} ms")
    return 0


def _load_npy(path: Path) -> np.ndarray:
    """The array in a .npy file, or an InputError saying why it is not one."""
    try:
        # NOTE: allow_pickle stays False: a .npy from elsewhere must not run code.
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"--input {path}: not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive loads as a mapping of arrays
        arr.close()
        raise InputError(f"--input {path}: expected a .npy file holding one array; got an .npz archive")
    return arr
