"""Backend registry: engines by name, imported only when asked for."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import BackendError, ModelError, nearest
from .base import Model, Source

# name -> (module, class, file suffixes, pip hint, module that proves it is installed)
_REGISTRY: Dict[str, Tuple[str, str, Tuple[str, ...], str, Tuple[str, ...]]] = {
    "onnxruntime": ("onnxruntime", "OnnxModel", (".onnx", ".ort"), "pip install onnxruntime", ("onnxruntime",)),
    "litert": ("litert", "LiteRTModel", (".tflite",), "pip install ai-edge-litert",
               ("ai_edge_litert", "tflite_runtime")),
    "llamacpp": ("llamacpp", "LlamaCppModel", (".gguf",), 'pip install "edgeinf[llm]"', ("llama_cpp",)),
}


def names():
    return list(_REGISTRY)


def get_class(name: str):
    if name not in _REGISTRY:
        raise BackendError(f"unknown backend {name!r}; available: {', '.join(_REGISTRY)}")
    mod, cls = _REGISTRY[name][:2]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)


def sniff(source: Source) -> str:
    """Pick a backend from magic bytes first, then the file suffix."""
    if isinstance(source, bytes):
        head = source[:8]
    else:
        path = Path(source)
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        if path.is_dir():
            raise ModelError(f"{path} is a directory; for a model package use edgeinf.open_package()")
        with open(path, "rb") as f:
            head = f.read(8)
    if head[4:8] == b"TFL3":
        return "litert"
    if head[:4] == b"GGUF":
        return "llamacpp"
    if not isinstance(source, bytes):
        suffix = Path(source).suffix.lower()
        for name, entry in _REGISTRY.items():
            if suffix in entry[2]:
                return name
        known = sorted(s for e in _REGISTRY.values() for s in e[2])
        raise ModelError(f"cannot tell the format of {source} (suffix {suffix!r}); known: {known}")
    return "onnxruntime"  # protobuf has no magic; bytes that are not TFLite/GGUF are tried as ONNX


def load(source: Source, threads: Optional[int] = None, backend: Optional[str] = None,
         **options) -> Model:
    """Load a model file (or its bytes) into a reusable session.

    Parameters
    ----------
    source : path or bytes
        ``.onnx``, ``.tflite`` or ``.gguf`` file, or the file's content.
    threads : int, optional
        Intra-op threads for the engine (default: ``EDGEINF_THREADS`` or the engine's own).
    backend : str, optional
        Force a backend by name (see :func:`names`); by default it is sniffed.
    """
    from .. import config

    name = backend or sniff(source)
    if name not in _REGISTRY:
        raise BackendError(f"unknown backend {name!r}; did you mean {nearest(name, _REGISTRY)}?")
    if threads is None and config.get("EDGEINF_THREADS"):
        threads = int(config.get("EDGEINF_THREADS"))
    return get_class(name)(source, threads=threads, **options)


def available() -> Dict[str, Optional[str]]:
    """``{backend: version}`` of the engines installed here (None where missing)."""
    from importlib import metadata

    dists = {"onnxruntime": ["onnxruntime"], "litert": ["ai-edge-litert", "tflite-runtime"],
             "llamacpp": ["llama-cpp-python"]}
    out = {}
    for name, candidates in dists.items():
        out[name] = None
        for d in candidates:
            try:
                out[name] = metadata.version(d) if name != "litert" else f"{d} {metadata.version(d)}"
                break
            except metadata.PackageNotFoundError:
                continue
    return out


__all__ = ["Model", "load", "names", "get_class", "available", "sniff"]
