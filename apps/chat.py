#!/usr/bin/env python3
"""A streaming chat client for the edgeinf daemon, on the standard ``openai`` package.

    edgeinf daemon --llm chat=SmolLM2-135M-Instruct.Q4_1.gguf &
    python apps/chat.py --url http://127.0.0.1:8080 "What is split computing?"   # one question
    python apps/chat.py --url http://127.0.0.1:8080                                # a conversation

Tokens print as they stream; after each answer a line says which collaboration mode ran
(local, cloud, escalate, speculate: the daemon's ``edgeinf`` extension field).
"""
from __future__ import annotations

import argparse
import sys

import openai


def ask(client, model: str, history: list, max_tokens: int, temperature: float, out=sys.stdout) -> str:
    parts, info = [], {}
    stream = client.chat.completions.create(model=model, messages=history, max_tokens=max_tokens,
                                            temperature=temperature, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        ext = (chunk.model_extra or {}).get("edgeinf") or {}
        if chunk.choices:
            piece = chunk.choices[0].delta.content or ""
            parts.append(piece)
            out.write(piece)
            out.flush()
        elif chunk.usage is not None:
            info = {"tokens": chunk.usage.completion_tokens, **ext}
    text = "".join(parts)
    out.write(f"\n[{info.get('tokens', '?')} tokens, mode {info.get('mode', '?')}"
              f"{', link lost: edge finished alone' if info.get('degraded') else ''}]\n")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prompt", nargs="*", help="one question (default: read questions from stdin)")
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="daemon base URL (default http://127.0.0.1:8080)")
    ap.add_argument("--api-key", default="none", help="the daemon's API key, if it has one")
    ap.add_argument("--model", help="served language model (default: the first /v1/models lists)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    args = ap.parse_args(argv)
    client = openai.OpenAI(base_url=args.url.rstrip("/") + "/v1", api_key=args.api_key, max_retries=0)
    model = args.model or client.models.list().data[0].id
    history = [{"role": "system", "content": "You are a helpful assistant."}]
    questions = [" ".join(args.prompt)] if args.prompt else (line.strip() for line in sys.stdin)
    for q in questions:
        if not q:
            continue
        history.append({"role": "user", "content": q})
        history.append({"role": "assistant",
                        "content": ask(client, model, history, args.max_tokens, args.temperature)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
