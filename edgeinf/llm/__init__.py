"""Language models at the edge and in the cloud (``docs/llm.md``).

``edgeinf.load("model.gguf")`` gives the engine (:class:`edgeinf.backends.llamacpp.LlamaCppModel`);
:class:`Generator` makes an edge model and cloud workers work together, mode chosen per
answer: ``local``, ``cloud``, ``escalate`` (CE-CoLLM) or ``speculate`` (edge draft, cloud
verify), and keeps generating on the edge when the link fails.
"""
from __future__ import annotations

__all__ = ["Generator", "TokenEvent", "Completion", "Sampling", "LanguageModel"]


def __getattr__(name):
    # NOTE: lazy, so the worker (which needs only sessions) does not import the client side
    if name in ("Generator", "TokenEvent", "Completion"):
        from . import generator

        return getattr(generator, name)
    if name == "Sampling":
        from .sampling import Sampling

        return Sampling
    if name == "LanguageModel":
        from ..backends.llamacpp import LlamaCppModel

        return LlamaCppModel
    raise AttributeError(f"module 'edgeinf.llm' has no attribute {name!r}")
