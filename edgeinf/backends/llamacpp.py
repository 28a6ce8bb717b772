"""llama.cpp backend: a GGUF language model as one KV sequence we feed and roll back.

Built on llama-cpp-python's low-level binding, not its ``Llama`` class, whose conveniences
cost what an edge device cannot spare (``../shared/FACTS.md``): ``logits_all=True`` keeps
n_ctx x n_vocab floats (800 MB for SmolLM2 at 4k context), ``save_state()`` copies a score
array 50x the KV state. Here a model holds one sequence (seq 0) whose tokens are known
(:attr:`LlamaCppModel.tokens`); :meth:`feed` appends tokens and returns the logits asked for
(last position, or every position for a verification batch), :meth:`truncate` rolls the KV
back exactly (``llama_memory_seq_rm``), :meth:`sync` makes the sequence equal a given token
list reusing the longest common prefix, and :meth:`save`/:meth:`restore` move one
sequence's KV in and out (``llama_state_seq_*``: about 23 kB per token for SmolLM2) so a
worker can park many sessions on one context.

Not thread-safe: one caller at a time per model (the worker holds a lock per model).
"""
from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import BackendError, InputError, ModelError
from ..types import TensorSpec
from .base import Model

log = logging.getLogger("edgeinf.llm")

GGUF_MAGIC = b"GGUF"
MIN_GGUF_BYTES = 24  # magic, version, tensor count, kv count


def _llama():
    try:
        import llama_cpp
        from llama_cpp import _internals
    except ImportError:
        raise BackendError('the llama.cpp backend needs llama-cpp-python: pip install "edgeinf[llm]" '
                           '(build it with CMAKE_ARGS="-DGGML_NATIVE=OFF"; see docs/install.md)') from None
    _quiet(llama_cpp)
    return llama_cpp, _internals


_LOG_CB = None


def _quiet(llama_cpp) -> None:
    """Route llama.cpp's stderr chatter to our logger at DEBUG, once per process."""
    global _LOG_CB
    if _LOG_CB is not None:
        return

    def forward(level, text, _user):
        log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _LOG_CB = llama_cpp.llama_log_callback(forward)  # keep a reference: C holds only the pointer
    llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))


def check_gguf(path: Path) -> None:
    """Refuse what is not a GGUF file (or is truncated to its header) before llama.cpp sees it."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (magic {head[:4]!r}, expected {GGUF_MAGIC!r})")
    if size < MIN_GGUF_BYTES:
        raise ModelError(f"{path} is truncated: {size} bytes is not even a GGUF header")


class LlamaCppModel(Model):
    """A GGUF language model with one KV sequence.

    Parameters (``edgeinf.load(path, threads=..., n_ctx=..., n_batch=...)``)
    ----------
    threads : int, optional
        Decode and batch threads (default 1: ggml's worker threads spin while they wait, so
        more threads than idle cores collapses throughput, 55 -> 0.5 tok/s measured here with
        one core busy; raise it on a device whose cores are free).
    n_ctx : int, optional
        Context length in tokens (default 2048, capped at the model's training context).
    n_batch : int, optional
        Most tokens fed in one llama_decode call (default 256); longer feeds are chunked.
    """

    backend = "llamacpp"

    def _load(self) -> None:
        if self.path is None:
            raise BackendError("a GGUF model must be loaded from a file (llama.cpp maps it); got bytes")
        check_gguf(self.path)
        llama_cpp, internals = _llama()
        self._c = llama_cpp
        opts = dict(self.options)
        n_ctx = int(opts.pop("n_ctx", 2048))
        n_batch = int(opts.pop("n_batch", 256))
        if opts:
            raise BackendError(f"unknown option(s) for a GGUF model: {sorted(opts)}; known: n_ctx, n_batch")
        threads = int(self.threads or 1)
        mparams = llama_cpp.llama_model_default_params()
        try:
            self._model = internals.LlamaModel(path_model=str(self.path), params=mparams, verbose=False)
        except ValueError as e:
            raise ModelError(f"llama.cpp could not load {self.path} (truncated, or an architecture this "
                             f"llama.cpp does not know; run with EDGEINF_LOG=debug for its log): {e}") from None
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self._model.model))
        self.n_ctx = min(n_ctx, self.n_ctx_train) if self.n_ctx_train > 0 else n_ctx
        self.n_batch = max(1, min(n_batch, self.n_ctx))
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = self.n_ctx
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = 1
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        try:
            self._ctx = internals.LlamaContext(model=self._model, params=cparams, verbose=False)
        except ValueError as e:
            raise BackendError(f"llama.cpp could not create a context for {self.path}: {e}") from None
        self._batch = internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._vocab = self._model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.eog = frozenset(t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t))
        self.name = self.path.stem
        self.tokens: List[int] = []
        self._last: Optional[np.ndarray] = None  # logits after the last fed token
        self._piece = ctypes.create_string_buffer(256)
        self._inputs = [TensorSpec("tokens", ("n",), np.dtype(np.int32))]
        self._outputs = [TensorSpec("logits", ("n", self.n_vocab), np.dtype(np.float32))]

    # -- text ----------------------------------------------------------------------------
    def tokenize(self, text: str, special: bool = True, add_bos: Optional[bool] = None) -> List[int]:
        """Token ids of ``text`` (a BOS first where the model wants one, unless ``add_bos=False``)."""
        if not isinstance(text, str):
            raise InputError(f"tokenize() takes a str; got {type(text).__name__}")
        raw = text.encode("utf-8", "surrogatepass")
        bos = self.add_bos if add_bos is None else add_bos
        cap = len(raw) + 8
        buf = (self._c.llama_token * cap)()
        n = self._c.llama_tokenize(self._vocab, raw, len(raw), buf, cap, bos, special)
        if n < 0:  # never more tokens than bytes + specials, but be safe
            cap = -n
            buf = (self._c.llama_token * cap)()
            n = self._c.llama_tokenize(self._vocab, raw, len(raw), buf, cap, bos, special)
        if n < 0:
            raise BackendError(f"llama.cpp could not tokenize {len(raw)} bytes of text")
        return list(buf[:n])

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token (may be part of a UTF-8 character)."""
        self.check_ids([token])
        n = self._c.llama_token_to_piece(self._vocab, int(token), self._piece, len(self._piece), 0, special)
        if n < 0:
            raise BackendError(f"token {token} has a piece longer than {len(self._piece)} bytes")
        return self._piece.raw[:n]

    def detokenize(self, ids: Sequence[int], special: bool = False) -> str:
        return b"".join(self.piece(t, special) for t in ids).decode("utf-8", "replace")

    def chat_prompt(self, messages: Sequence[Dict[str, str]], add_assistant: bool = True) -> str:
        """``messages`` through the model's own chat template (from its GGUF metadata)."""
        if not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                   and isinstance(m.get("content"), str) for m in messages):
            raise InputError("messages must be a non-empty list of {'role': str, 'content': str}")
        tmpl = self._c.llama_model_chat_template(self._model.model, None)
        if not tmpl:
            raise BackendError(f"{self.name} has no chat template in its GGUF; send a plain prompt")
        enc = [(m["role"].encode(), m["content"].encode("utf-8", "surrogatepass")) for m in messages]
        arr = (self._c.llama_chat_message * len(enc))(*[self._c.llama_chat_message(r, c) for r, c in enc])
        size = sum(len(r) + len(c) for r, c in enc) * 2 + 256
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = self._c.llama_chat_apply_template(tmpl, arr, len(enc), add_assistant, buf, size)
            if n < 0:
                raise BackendError(f"llama.cpp does not know {self.name}'s chat template; send a plain prompt")
            if n <= size:
                return buf.raw[:n].decode("utf-8", "replace")
            size = n + 1
        raise BackendError("chat template output kept growing")  # pragma: no cover

    def check_ids(self, ids: Sequence[int]) -> None:
        bad = [t for t in ids if not (0 <= int(t) < self.n_vocab)]
        if bad:
            raise InputError(f"token id(s) {bad[:5]} outside the vocabulary (0..{self.n_vocab - 1}) of {self.name}")

    # -- the KV sequence -----------------------------------------------------------------
    def reset(self) -> None:
        self._c.llama_memory_clear(self._ctx.memory, True)
        self.tokens = []
        self._last = None

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` tokens of the sequence (exact rollback of the KV)."""
        if n >= len(self.tokens):
            return
        if n <= 0:
            return self.reset()
        self._c.llama_memory_seq_rm(self._ctx.memory, 0, n, -1)
        self.tokens = self.tokens[:n]
        self._last = None

    def feed(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Append ``ids`` to the sequence; return the logits after the last one ``(n_vocab,)``,
        or after each of them ``(len(ids), n_vocab)`` with ``all_logits``."""
        ids = [int(t) for t in ids]
        if not ids:
            if all_logits:
                return np.empty((0, self.n_vocab), np.float32)
            if self._last is None:
                raise InputError("no logits yet: feed at least one token")
            return self._last
        self.check_ids(ids)
        if len(self.tokens) + len(ids) > self.n_ctx:
            raise InputError(f"{len(self.tokens)} + {len(ids)} tokens exceed the context of {self.n_ctx} "
                             f"tokens of {self.name}")
        rows = []
        for start in range(0, len(ids), self.n_batch):
            chunk = ids[start:start + self.n_batch]
            last_chunk = start + self.n_batch >= len(ids)
            self._decode(chunk, len(self.tokens), all_logits)
            self.tokens.extend(chunk)
            if all_logits:
                rows.append(self._logits(len(chunk)))
            elif last_chunk:
                rows.append(self._logits(1, len(chunk) - 1))
        out = np.concatenate(rows) if all_logits else rows[-1][0]
        self._last = out[-1] if all_logits else out
        return out

    def sync(self, ids: Sequence[int]) -> np.ndarray:
        """Make the sequence equal ``ids`` (reusing the common prefix); the logits after it."""
        ids = [int(t) for t in ids]
        if not ids:
            raise InputError("sync() needs at least one token")
        common = self.common_prefix(ids)
        if common == len(ids) == len(self.tokens) and self._last is not None:
            return self._last
        self.truncate(min(common, len(ids) - 1))  # at least one token fed, so logits are fresh
        return self.feed(ids[len(self.tokens):])

    def common_prefix(self, ids: Sequence[int]) -> int:
        """How many leading tokens of ``ids`` the sequence already holds."""
        held = len(self.tokens)
        if list(ids[:held]) == self.tokens:  # the usual case (history grew): one C-level compare
            return held
        n = 0
        for a, b in zip(self.tokens, ids):
            if a != b:
                break
            n += 1
        return n

    def _decode(self, chunk: List[int], n_past: int, all_logits: bool) -> None:
        b = self._batch.batch
        b.n_tokens = len(chunk)
        for i, t in enumerate(chunk):
            b.token[i] = t
            b.pos[i] = n_past + i
            b.seq_id[i][0] = 0
            b.n_seq_id[i] = 1
            b.logits[i] = all_logits
        b.logits[len(chunk) - 1] = True
        rc = self._c.llama_decode(self._ctx.ctx, b)
        if rc != 0:
            # NOTE: a failed decode may have written part of the batch into the KV; drop it
            self._c.llama_memory_seq_rm(self._ctx.memory, 0, n_past, -1)
            self._last = None
            raise BackendError(f"llama_decode failed (code {rc}) at position {n_past} of {self.name}")

    def _logits(self, n: int, first: int = 0) -> np.ndarray:
        out = np.empty((n, self.n_vocab), np.float32)
        for i in range(n):
            ptr = self._c.llama_get_logits_ith(self._ctx.ctx, first + i)
            out[i] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return out

    # -- moving a sequence's KV in and out (worker sessions) ------------------------------
    def save(self) -> bytes:
        """The sequence's KV state (what :meth:`restore` takes back, with :attr:`tokens`)."""
        size = self._c.llama_state_seq_get_size(self._ctx.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = self._c.llama_state_seq_get_data(self._ctx.ctx, buf, size, 0)
        return bytes(memoryview(buf)[:n])

    def restore(self, state: bytes, tokens: Sequence[int], last: Optional[np.ndarray]) -> None:
        self._c.llama_memory_clear(self._ctx.memory, True)
        if state:
            buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
            if self._c.llama_state_seq_set_data(self._ctx.ctx, buf, len(state), 0) == 0:
                self.tokens, self._last = [], None
                raise BackendError("llama.cpp refused a saved sequence state")
        self.tokens = list(tokens)
        self._last = last

    # -- the tensor API (Model contract): logits of a token sequence from scratch ----------
    def _run(self, feeds, outputs):
        ids = np.asarray(feeds["tokens"]).reshape(-1).tolist()
        self.reset()
        return {"logits": self.feed(ids, all_logits=True)}

    def describe(self) -> dict:
        out = super().describe()
        out.update(n_ctx=self.n_ctx, n_vocab=self.n_vocab, n_ctx_train=self.n_ctx_train)
        return out

    def close(self) -> None:
        for obj in ("_batch", "_ctx", "_model"):
            part = getattr(self, obj, None)
            if part is not None:
                part.close()
                setattr(self, obj, None)
