"""llama.cpp backend placeholder in the registry.

Language models arrive with their own issue (edge draft / cloud verify, token escalation);
until then a ``.gguf`` file is recognised and refused with a clear message rather than
misread as another format.
"""
from __future__ import annotations

from ..errors import BackendError
from .base import Model


class LlamaCppModel(Model):
    backend = "llamacpp"

    def _load(self) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise BackendError('llama.cpp backend needs llama-cpp-python: pip install "edgeinf[llm]"') from None
        raise BackendError("GGUF language models are recognised but not yet runnable through "
                           "edgeinf.load(); the LLM runtime lands with the language-model work")
