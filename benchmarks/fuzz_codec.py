"""Mutation fuzzer for the codec decoder: every buffer is hostile.

Seeds are valid encodings (every codec, odd shapes, lossless stages); each case mutates
one (bit flips, interesting values in header fields, truncation, extension, splicing,
random bytes) and decodes it under tight limits. Decoding must either return an array
within the limits or raise CodecError; anything else is counted as unexpected.

    python benchmarks/fuzz_codec.py -n 100000            # 100k cases
    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ...    # with an ASan build (docs/codec.md)
"""
from __future__ import annotations

import random
import struct
import sys

import numpy as np

from edgeinf import codec
from edgeinf.errors import CodecError

LIMITS = codec.Limits(max_elements=1 << 20, max_ndim=8, max_bytes=1 << 22)
INTERESTING = [0, 1, 2, 3, 7, 8, 9, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
               1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
FIELDS = [(5, "B"), (6, "B"), (7, "B"), (8, "B"), (9, "B"), (12, "<I"), (16, "<Q"), (24, "<Q"),
          (32, "<Q"), (40, "<Q"), (48, "<Q")]


def seeds(rng: random.Random):
    out = []
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    for name in codec.CODECS:
        for shape in [(3, 5, 7), (1, 4, 2, 2), (17,), (), (2, 0, 3)]:
            if "-pc" in name and len(shape) == 0:
                continue
            x = (nrng.standard_normal(shape) * 4).astype(np.float32)
            out.append(codec.encode(x, name, axis=-1 if rng.random() < 0.5 else None))
    return out


def mutate(buf: bytes, pool, rng: random.Random) -> bytes:
    b = bytearray(buf)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
        op = rng.randrange(8)
        if op == 0 and b:  # bit flip
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:  # interesting value in a header field
            off, fmt = rng.choice(FIELDS)
            size = struct.calcsize(fmt)
            if off + size <= len(b):
                v = rng.choice(INTERESTING) & ((1 << (8 * size)) - 1)
                struct.pack_into(fmt, b, off, v)
        elif op == 3:  # truncate
            del b[rng.randrange(len(b) + 1):]
        elif op == 4:  # extend
            b += bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 8, 64])))
        elif op == 5:  # splice with another seed
            other = rng.choice(pool)
            cut = rng.randrange(min(len(b), len(other)) + 1)
            b = b[:cut] + bytearray(other[cut:])
        elif op == 6 and len(b) > 32:  # scramble the payload
            i = rng.randrange(32, len(b))
            b[i:i + 16] = bytes(rng.randrange(256) for _ in range(len(b[i:i + 16])))
        elif op == 7:  # pure random bytes, sometimes with a valid magic
            b = bytearray((b"EITC" if rng.random() < 0.7 else b"") +
                          bytes(rng.randrange(256) for _ in range(rng.randrange(80))))
    return bytes(b)


def fuzz(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    pool = seeds(rng)
    stats = {"cases": 0, "decoded": 0, "rejected": 0, "unexpected": 0, "first_unexpected": None}
    for i in range(n):
        buf = mutate(rng.choice(pool), pool, rng)
        stats["cases"] += 1
        try:
            y = codec.decode(buf, limits=LIMITS)
            assert y.size <= LIMITS.max_elements and y.ndim <= 8
            stats["decoded"] += 1
        except CodecError:
            stats["rejected"] += 1
        except Exception as e:  # noqa: BLE001 - the point is to catch anything else
            stats["unexpected"] += 1
            if stats["first_unexpected"] is None:
                stats["first_unexpected"] = f"case {i}: {type(e).__name__}: {e} buf={buf[:64].hex()}"
    return stats


def main(argv=None) -> int:
    from _fuzzcli import main as cli  # benchmarks/ is on sys.path when run as a script

    return cli(fuzz, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
