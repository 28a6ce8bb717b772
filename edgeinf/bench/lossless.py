"""Real-activation rows of ``edgeinf bench kernels``: NHWC per-channel speed and the lossless
stage side by side with blosc2 and with lz4/zstd on the raw bytes.

The tensor is a real ``hand_landmark_full`` activation: the skimage astronaut photograph
through ``edgeinf.preprocess`` and the mediapipe model in LiteRT (all tensors preserved),
the last 1x28x28x40 float32 tensor of the graph (a residual Add, a valid cut; 125 KB).
Everything runs on the bench's one core; blosc2 with ``nthreads=1``.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

SHAPE = (1, 28, 28, 40)
OURS = ("raw+bshuf+lz4", "raw+shuf+lz4", "raw+shuf+zstd", "fp16+bshuf+lz4", "fp16+shuf+lz4", "fp16+shuf+zstd",
        "raw+lz4", "raw+zstd", "fp16+lz4", "int8-pc+lz4", "int8-pc+zstd")
#: ours -> the blosc2 setting it must match or beat on size, encode and decode time (bit
#: shuffle against bit shuffle, byte shuffle against byte shuffle)
VERSUS = {"raw+bshuf+lz4": "blosc2 f32 bitshuffle+lz4", "fp16+bshuf+lz4": "blosc2 f16 bitshuffle+lz4",
          "raw+shuf+lz4": "blosc2 f32 shuffle+lz4",
          "raw+shuf+zstd": "blosc2 f32 shuffle+zstd", "fp16+shuf+zstd": "blosc2 f16 shuffle+zstd"}


def activation() -> np.ndarray:
    """The real 1x28x28x40 activation described in the module docstring."""
    import skimage.data
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from .. import zoo
    from ..preprocess import preprocess

    it = Interpreter(model_path=str(zoo.path("hand_landmark_full")), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], preprocess(skimage.data.astronaut(), tuple(inp["shape"][1:3]), layout="NHWC"))
    it.invoke()
    idx = [t["index"] for t in it.get_tensor_details() if tuple(t["shape"]) == SHAPE and t["dtype"] == np.float32]
    return np.ascontiguousarray(it.get_tensor(idx[-1]))


def _baselines(x: np.ndarray) -> Dict[str, Tuple[Callable, Callable]]:
    import lz4.block
    import zstandard

    raw, n = x.tobytes(), x.nbytes
    zc, zd = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    out = {"lz4 raw bytes": (lambda: lz4.block.compress(raw, store_size=False),
                             lambda b: lz4.block.decompress(b, uncompressed_size=n)),
           "zstd-3 raw bytes": (lambda: zc.compress(raw), lambda b: zd.decompress(b))}
    try:
        import blosc2
    except ImportError:
        return out  # NOTE: blosc2 is only for this comparison; the rows say it was missing
    # NOTE: the f16 rows convert as ours do (float32 in, float32 out), so the times compare
    for label, f16, filt, codec_ in [("f32 bitshuffle+lz4", False, blosc2.Filter.BITSHUFFLE, blosc2.Codec.LZ4),
                                     ("f16 bitshuffle+lz4", True, blosc2.Filter.BITSHUFFLE, blosc2.Codec.LZ4),
                                     ("f32 shuffle+lz4", False, blosc2.Filter.SHUFFLE, blosc2.Codec.LZ4),
                                     ("f32 shuffle+zstd", False, blosc2.Filter.SHUFFLE, blosc2.Codec.ZSTD),
                                     ("f16 shuffle+zstd", True, blosc2.Filter.SHUFFLE, blosc2.Codec.ZSTD)]:
        def enc(h=f16, f=filt, c=codec_):
            a = x.astype(np.float16) if h else x
            return blosc2.compress2(a, typesize=a.itemsize, codec=c, filters=[f], clevel=5, nthreads=1)

        def dec(b, h=f16):
            raw = blosc2.decompress2(b, nthreads=1)
            return np.frombuffer(raw, np.float16).astype(np.float32) if h else raw
        out[f"blosc2 {label}"] = (enc, dec)
    return out


def results(median_pair, repeat: int) -> dict:
    """NHWC per-channel rows and the lossless table; ``median_pair`` is the bench's timer."""
    from .. import codec

    x = activation()
    res: dict = {"_tensor": f"hand_landmark_full {'x'.join(map(str, SHAPE))} float32 ({x.nbytes} bytes)"}
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for name in ("int8-pc", "int4-pc"):
        bl, bc = codec.encode(x, name, axis=-1), codec.encode(nchw, name, axis=1)
        to, tb = median_pair(lambda: codec.encode(x, name, axis=-1), lambda: codec.encode(nchw, name, axis=1), repeat)
        res[f"nhwc_encode_{name}"] = {"ms": round(to * 1e3, 4), "nchw_ms": round(tb * 1e3, 4),
                                      "ratio_vs_nchw": round(tb / to, 2)}
        to, tb = median_pair(lambda: codec.decode(bl), lambda: codec.decode(bc), repeat)
        res[f"nhwc_decode_{name}"] = {"ms": round(to * 1e3, 4), "nchw_ms": round(tb * 1e3, 4),
                                      "ratio_vs_nchw": round(tb / to, 2)}
    rows, base = {}, _baselines(x)

    def row(nbytes, te, td):
        return {"bytes": nbytes, "encode_ms": round(te * 1e3, 4), "decode_ms": round(td * 1e3, 4)}

    for name in OURS:
        buf = codec.encode(x, name, axis=-1)  # NHWC; only -pc codecs use it
        enc, dec = (lambda: codec.encode(x, name, axis=-1)), (lambda: codec.decode(buf))
        theirs = VERSUS.get(name)
        if theirs in base:
            # NOTE: timed interleaved with the blosc2 setting it is judged against, encode with
            # encode and decode with decode: on a shared VM whose speed drifts by 1.5x between
            # seconds (seen on a Zen 3), rows timed apart are not comparable
            t_enc, t_dec = base[theirs]
            b = t_enc()
            te, tte = median_pair(enc, t_enc, repeat)
            td, ttd = median_pair(dec, lambda: t_dec(b), repeat)
            rows[name], rows[theirs] = row(len(buf), te, td), row(len(b), tte, ttd)
        else:
            rows[name] = row(len(buf), *median_pair(enc, dec, repeat))
    for label, (enc, dec) in base.items():
        if label not in rows:
            b = enc()
            rows[label] = row(len(b), *median_pair(enc, lambda: dec(b), repeat))
    for ours, theirs in VERSUS.items():
        if theirs in rows:
            a, b = rows[ours], rows[theirs]
            rows[ours]["vs"] = theirs
            rows[ours]["met"] = all(a[k] <= b[k] for k in ("bytes", "encode_ms", "decode_ms"))
    res["lossless"] = rows
    return res
