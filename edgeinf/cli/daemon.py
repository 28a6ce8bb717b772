"""``edgeinf daemon``: serve models to local apps (KServe v2, OpenAI API, /metrics, status page)."""
from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("daemon", help="device daemon: KServe v2 + OpenAI-compatible API, metrics, status page")
    p.add_argument("--config", type=Path, metavar="TOML", help="config file (flags override it; see docs/daemon.md)")
    p.add_argument("--http", metavar="HOST:PORT", help="listen address (default 127.0.0.1:8080; port 0 picks one)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=SOURCE",
                   help="vision model: a package dir, a .onnx/.tflite file or a zoo name (repeatable)")
    p.add_argument("--llm", action="append", default=[], metavar="NAME=GGUF", help="language model (repeatable)")
    p.add_argument("--llm-mode", default="auto", help="collaboration mode for --llm models (default auto)")
    p.add_argument("--worker", action="append", default=[], metavar="ENDPOINT",
                   help="offload worker or broker, e.g. tcp://server:5555 (repeatable)")
    p.add_argument("--device", help="EMULATED device profile to pace local compute to (e.g. raspberry-pi-4)")
    p.add_argument("--api-key", help="required from clients (Authorization: Bearer KEY); needed off loopback")
    p.add_argument("--api-key-file", help="file holding the API key (keeps it out of the process list)")
    p.add_argument("--server-key", help="CURVE: the worker's public key file")
    p.add_argument("--client-key", help="CURVE: this device's .key_secret")
    p.add_argument("--threads", type=int, help="engine threads per model (default 1)")
    p.add_argument("--queue", type=int, help="requests waiting per model before 503 (default 8)")
    p.add_argument("--per-client", type=int, help="requests in flight per client before 429 (default 4)")
    p.add_argument("--max-body-mb", type=float, help="largest request body (default 32 MiB)")
    p.add_argument("--drain", type=float, help="seconds in-flight requests get on SIGTERM (default 10)")
    p.add_argument("--log-format", choices=("json", "text"), help="log lines on stderr (default json)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--check-config", action="store_true",
                   help="validate the configuration (files, names, bind and key) and exit without serving")
    p.set_defaults(func=run)


def config_from(args):
    from ..daemon.config import LLMSpec, ModelSpec, build, parse_http, parse_pair

    host, port = parse_http(args.http) if args.http else (None, None)
    return build(args.config, host=host, port=port,
                 models=[ModelSpec(*parse_pair(v, "model")) for v in args.model],
                 llms=[LLMSpec(*parse_pair(v, "llm"), mode=args.llm_mode) for v in args.llm],
                 workers=list(args.worker), device=args.device, api_key=args.api_key,
                 api_key_file=args.api_key_file, server_key=args.server_key, client_key=args.client_key,
                 threads=args.threads, queue=args.queue, per_client=args.per_client,
                 max_body_mb=args.max_body_mb, drain_s=args.drain, log_format=args.log_format)


def run(args) -> int:
    from ..daemon import server
    from ..daemon.check import check

    cfg = config_from(args)
    if args.check_config:
        print(json.dumps(check(cfg), indent=1))
        return 0
    server.setup_logging(cfg.log_format, args.log_level)
    return server.serve(cfg, args.log_level)
