"""``edgeinf bench daemon``: what the daemon costs over calling the runtime in-process.

Measured in one run, on the same model and inputs, one client, sequential requests, the two
sides alternating request by request (so background load hits both alike):

- **KServe v2** (``tritonclient.http``, binary tensors) against ``AdaptiveRuntime.run`` in
  this process, on ``hand_landmark_lite`` (local only: the comparison is the HTTP layer,
  not the link): requests/s, p50, p99 and the overhead as a ratio of p50s;
- **OpenAI** ``/v1/chat/completions`` (the ``openai`` client, non-streamed) against
  ``Generator.chat`` in-process on SmolLM2-135M, greedy, ``--llm-tokens`` tokens;
- the HTTP stack alone (``GET /v2/health/live``), requests/s;
- the daemon's startup time and idle RSS, bare (no models) and with the vision model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def register(sub) -> None:
    p = sub.add_parser("daemon", help="daemon overhead: KServe v2 and OpenAI routes vs the runtime in-process, idle RSS")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--requests", type=int, default=200, help="vision requests per side (default 200)")
    p.add_argument("--llm-requests", type=int, default=5, help="chat requests per side (default 5; 0 skips)")
    p.add_argument("--llm-tokens", type=int, default=16, help="tokens per chat answer (default 16)")
    p.set_defaults(func=run)


def _stats(times_s) -> dict:
    a = np.asarray(times_s) * 1e3
    return {"n": int(a.size), "req_per_s": round(float(a.size / a.sum() * 1e3), 1),
            "p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def _timed(fn, n: int) -> list:
    fn()  # one untimed: connection set up, caches warm
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _paired(a, b, n: int):
    """Times of ``a`` and ``b`` called alternately, so both sides meet the same background
    load (on a shared 2-core machine a 2-thread llama.cpp decode varied 6x within a minute)."""
    a(), b()
    ta, tb = [], []
    for _ in range(n):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return ta, tb


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _vision(n: int, cfg: Path) -> dict:
    import tritonclient.http as tc

    from ..adaptive import AdaptiveRuntime
    from ..daemon.config import ModelSpec
    from ..daemon.models import package_dir
    from ..daemon.testing import DaemonProc

    root = package_dir(ModelSpec("lite", "hand_landmark_lite", cuts="none"))
    x = np.random.default_rng(0).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)
    t0 = time.perf_counter()
    with DaemonProc("--config", str(cfg), "--log-level", "warning") as d, \
            AdaptiveRuntime(root, None, threads=1) as rt:
        startup_s = time.perf_counter() - t0
        time.sleep(0.5)
        idle = _rss_mib(d.proc.pid)
        c = tc.InferenceServerClient(d.host)
        inp = tc.InferInput("input_1", [1, 224, 224, 3], "FP32")
        inp.set_data_from_numpy(x)
        ta, tb = _paired(lambda: rt.run({"input_1": x}), lambda: c.infer("lite", [inp]), n)
        direct, served = _stats(ta), _stats(tb)
        live = _stats(_timed(c.is_server_live, n))
        loaded = _rss_mib(d.proc.pid)
        assert d.stop() == 0
    return {"direct": direct, "kserve": served, "overhead_p50": round(served["p50_ms"] / direct["p50_ms"], 3),
            "added_p50_ms": round(served["p50_ms"] - direct["p50_ms"], 3), "health_live": live,
            "startup_s": round(startup_s, 2), "rss_idle_mib": idle, "rss_after_requests_mib": loaded}


def _bare() -> dict:
    from ..daemon.testing import DaemonProc

    t0 = time.perf_counter()
    with DaemonProc("--log-level", "warning") as d:
        startup_s = time.perf_counter() - t0
        time.sleep(0.5)
        rss = _rss_mib(d.proc.pid)
        assert d.stop() == 0
    return {"startup_s": round(startup_s, 2), "rss_idle_mib": rss}


def _llm(n: int, tokens: int) -> dict:
    import openai

    from ..daemon.testing import DaemonProc
    from ..llm import Generator
    from ..llm.models import smollm2

    gguf = smollm2()
    msgs = [{"role": "user", "content": "Write one sentence about the sea."}]
    gen = Generator(gguf, None, mode="local", threads=2)
    try:
        with DaemonProc("--llm", f"chat={gguf}", "--llm-mode", "local", "--log-level", "warning") as d:
            c = openai.OpenAI(base_url=d.url + "/v1", api_key="none", max_retries=0)
            ta, tb = _paired(lambda: gen.chat(msgs, max_tokens=tokens, temperature=0.0),
                             lambda: c.chat.completions.create(model="chat", messages=msgs, max_tokens=tokens,
                                                               temperature=0), n)
            assert d.stop() == 0
    finally:
        gen.close()
    direct, served = _stats(ta), _stats(tb)
    return {"direct": direct, "openai": served, "tokens": tokens,
            "overhead_p50": round(served["p50_ms"] / direct["p50_ms"], 3),
            "added_p50_ms": round(served["p50_ms"] - direct["p50_ms"], 3)}


def run(args) -> int:
    import tempfile

    from ..errors import ConfigError

    if args.requests < 10:
        raise ConfigError(f"--requests must be >= 10; got {args.requests}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "daemon.toml"
        cfg.write_text('[models.lite]\nsource = "hand_landmark_lite"\ncuts = "none"\n')
        res = {"bare": _bare(), "vision": _vision(args.requests, cfg)}
    if args.llm_requests > 0:
        res["llm"] = _llm(args.llm_requests, args.llm_tokens)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    v = res["vision"]
    print(f"bare daemon: ready in {res['bare']['startup_s']} s, idle RSS {res['bare']['rss_idle_mib']} MiB")
    print(f"with hand_landmark_lite: ready in {v['startup_s']} s, idle RSS {v['rss_idle_mib']} MiB")
    print(f"KServe v2: {v['kserve']['req_per_s']} req/s, p50 {v['kserve']['p50_ms']} ms, p99 {v['kserve']['p99_ms']} ms"
          f" vs in-process {v['direct']['req_per_s']} req/s, p50 {v['direct']['p50_ms']} ms: "
          f"x{v['overhead_p50']} (+{v['added_p50_ms']} ms)")
    print(f"GET /v2/health/live: {v['health_live']['req_per_s']} req/s, p50 {v['health_live']['p50_ms']} ms")
    if "llm" in res:
        ll = res["llm"]
        print(f"OpenAI chat ({ll['tokens']} tokens): p50 {ll['openai']['p50_ms']} ms vs in-process "
              f"{ll['direct']['p50_ms']} ms: x{ll['overhead_p50']} (+{ll['added_p50_ms']} ms)")
    return 0
