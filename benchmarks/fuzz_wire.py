"""Differential mutation fuzzer for the native framing (csrc/wire.cpp) against protocol.py.

Seeds are valid messages of every kind the peers send; each case mutates one frame (bit
flips, interesting bytes, JSON tokens spliced in, header fields, truncation, extension,
splicing, frame count) and decodes it both ways. The native decoder must either decline
(None) or return exactly what the Python reference returns; accepting what Python refuses,
disagreeing, or raising anything is counted as unexpected. Each case also packs and encodes a
random metadata object both ways (native output must parse to the same JSON).

    python benchmarks/fuzz_wire.py -n 100000             # 100k cases
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" \\
        PYTHONMALLOC=malloc python benchmarks/fuzz_wire.py   # with an ASan build (docs/protocol.md)
"""
from __future__ import annotations

import json
import random
import struct
import sys

import numpy as np

from edgeinf._native import kernels as K
from edgeinf.errors import ProtocolError
from edgeinf.transport import protocol as P
from edgeinf.transport.protocol import ErrorCode, Kind

LIMITS = P.Limits(max_meta=4096, max_tensors=8, max_tensor_bytes=4096)
TOKENS = [b"\\", b"\\u0041", b"\\ud800", b"\xc3\xa9", b"\xed\xa0\x80", b"\xff", b"1e400", b"-0", b"01", b"1.",
          b".5", b"1e", b"9" * 19, b"9" * 18, b"null", b"true", b"false", b"[", b"{", b"}", b"]", b",", b":",
          b'"', b" ", b"\t", b"\n", b"\x00", b"NaN", b"-", b"2.5e-3", b'"tensors"', b'"codec"', b'"shape"',
          b'"id"', b"[" * 70, b"-9223372036854775808", b"18446744073709551616"]
FIELDS = [(4, "B"), (5, "B"), (6, "<H"), (8, "<H"), (10, "<H"), (12, "<I")]
INTERESTING = [0, 1, 2, 3, 7, 8, 11, 12, 0x7F, 0x80, 0xFF, 0xFFFF, 4096, 4097, 0xFFFFFFFF]


def seeds():
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3)
    specs, frames = P.pack_raw({"x": f32, "i": np.arange(3)})
    out = [P._encode_py(Kind.INFER, {"id": 7, "budget_ms": 100.0, "pkg": "ab" * 32, "cut": "c1", "codec": "raw",
                                     "tensors": specs}, frames),
           P._encode_py(Kind.INFER, {"id": 1, "budget_ms": 5, "pkg": "p", "codec": "int8+lz4",
                                     "tensors": [{"name": "x", "dtype": "float32", "shape": [4], "codec": "int8+lz4"},
                                                 {"name": "i", "dtype": "int64", "shape": [1], "codec": "raw"}]},
                        [b"abc", b"\0" * 8]),
           P._encode_py(Kind.RESULT, {"id": 3, "tensors": [{"name": "y", "dtype": "float16", "shape": [2, 2]}],
                                      "service_ms": 1.5, "load": {"queue": 0, "busy": 0.25}}, [b"\0" * 8]),
           P._encode_py(Kind.HEARTBEAT, {}),
           P._encode_py(Kind.ERROR, P.error_meta(ErrorCode.BACKEND, "it broke", 9)),
           P._encode_py(Kind.BUSY, {"id": 4, "reason": "queue full", "load": {"queue": 8}}),
           P._encode_py(Kind.HELLO, {"proto": 1, "pkgs": ["a" * 64], "codecs": ["raw", "fp16+lz4"],
                                     "cuts": {"a" * 64: ["c1", "c2"]}, "load": {"queue": 0}}),
           P._encode_py(Kind.LLM, {"id": 5, "budget_ms": 100, "op": "step", "model": "m", "session": "s1", "n_past": 12,
                                   "n": 4, "temperature": 0.7, "top_k": 40, "top_p": 0.9, "seed": 1, "spread": [1, 2],
                                   "tensors": [{"name": "tokens", "dtype": "int32", "shape": [4]}]}, [b"\0" * 16]),
           P._encode_py(Kind.CANCEL, {"id": 5, "client": "c"})]
    return [[bytes(f) if not isinstance(f, np.ndarray) else f.tobytes() for f in m] for m in out]


def mutate(msg, pool, rng: random.Random):
    frames = [bytearray(f) for f in msg]
    i = 0 if rng.random() < 0.8 else rng.randrange(len(frames))
    b = frames[i]
    for _ in range(rng.choice([1, 1, 2, 3, 6])):
        op = rng.randrange(9)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            j = rng.randrange(len(b))
            b[j] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice([0, 0x20, 0x22, 0x5C, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op in (2, 3):  # a JSON token, where JSON is
            b[max(pos, 16):max(pos, 16)] = rng.choice(TOKENS)
        elif op == 4 and i == 0 and len(b) >= 16:
            off, fmt = rng.choice(FIELDS)
            struct.pack_into(fmt, b, off, rng.choice(INTERESTING) & ((1 << (8 * struct.calcsize(fmt))) - 1))
        elif op == 5:
            del b[pos:pos + rng.choice([1, 2, 8, 64])]
        elif op == 6:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 8])))
        elif op == 7:
            other = rng.choice(rng.choice(pool))
            cut = rng.randrange(min(len(b), len(other)) + 1)
            b[cut:] = other[cut:]
        elif op == 8:  # frame count
            if rng.random() < 0.5 and len(frames) > 1:
                frames.pop()
            else:
                frames.append(bytearray(rng.choice([0, 4, 8, 16]) * b"\0"))
    if i == 0 and len(b) >= 16 and rng.random() < 0.7:  # keep meta_len consistent: reach the JSON
        b[12:16] = (len(b) - 16).to_bytes(4, "little")
    return [bytes(f) for f in frames]


def _py(frames):
    try:
        return P._decode_py(frames, LIMITS)
    except ProtocolError as e:
        return type(e)


def _same(a, b) -> bool:
    return (isinstance(b, P.Message) and a.kind is b.kind and a.flags == b.flags and a.meta == b.meta
            and list(a.meta) == list(b.meta) and a.tensors == b.tensors and a.codecs == b.codecs
            and [bytes(x) for x in a.buffers] == [bytes(x) for x in b.buffers] and all(x.readonly for x in a.buffers))


def _random_meta(rng: random.Random, depth=0):
    pick = rng.randrange(12 if depth < 3 else 8)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick in (1, 2):
        return rng.choice([0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -2**63, 2**63, 2**70, rng.randrange(-10**6, 10**6)])
    if pick in (3, 4):
        return rng.choice([0.0, -0.0, 0.5, 1e-7, 1e22, 5e-324, 1.7976931348623157e308, float("nan"), float("inf"),
                           rng.uniform(-1e6, 1e6)])
    if pick in (5, 6, 7):
        return rng.choice(["", "a", "plain text", 'q"', "b\\", "\t", "é", "\ud800", "\x7f", "x" * 300])
    if pick in (8, 9):
        return [_random_meta(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["id", "a", "b", "load", "é", 1]): _random_meta(rng, depth + 1) for _ in range(rng.randrange(4))}


def fuzz(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    pool = seeds()
    stats = {"cases": 0, "native": 0, "declined": 0, "python_refused": 0, "encoded_native": 0, "unexpected": 0,
             "first_unexpected": None}

    def bad(i, what):
        stats["unexpected"] += 1
        if stats["first_unexpected"] is None:
            stats["first_unexpected"] = f"case {i}: {what}"

    for i in range(n):
        frames = mutate(rng.choice(pool), pool, rng)
        stats["cases"] += 1
        try:
            native = K.wire_decode(frames, LIMITS.max_meta, LIMITS.max_tensors, LIMITS.max_tensor_bytes)
        except Exception as e:  # noqa: BLE001 - the native decoder must never raise on input
            bad(i, f"wire_decode raised {type(e).__name__}: {e} frames={[f[:48].hex() for f in frames]}")
            continue
        ref = _py(frames)
        if not isinstance(ref, P.Message):
            stats["python_refused"] += 1
        if native is None:
            stats["declined"] += 1
        elif _same(native, ref):
            stats["native"] += 1
            if native.tensors and all(c == "raw" for c in native.codecs):
                views = K.wire_views(native.tensors, native.buffers, native.codecs)
                want = P.unpack(native.tensors, native.buffers, native.codecs)
                if views is None or list(views) != list(want) or \
                        any(views[k].tobytes() != want[k].tobytes() for k in want):
                    bad(i, "wire_views disagrees with unpack")
        else:
            bad(i, f"native {native} vs python {ref}; frames={[f[:48].hex() for f in frames]}")
        meta = _random_meta(rng)
        if isinstance(meta, dict):
            try:
                head = K.wire_encode(Kind.INFER, meta, 0, 1, LIMITS.max_meta)
            except Exception as e:  # noqa: BLE001
                bad(i, f"wire_encode raised {type(e).__name__}: {e}")
                continue
            if head is not None:
                stats["encoded_native"] += 1
                try:
                    ref_head = P._encode_py(Kind.INFER, meta, [b""], 0, LIMITS)[0]
                except Exception as e:  # noqa: BLE001
                    bad(i, f"native encoded what Python refuses ({type(e).__name__}): {meta!r}")
                    continue
                if head[:12] != ref_head[:12] or json.loads(head[16:]) != json.loads(ref_head[16:]):
                    bad(i, f"encode differs for {meta!r}")
    return stats


def main(argv=None) -> int:
    from _fuzzcli import main as cli  # benchmarks/ is on sys.path when run as a script

    return cli(fuzz, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
