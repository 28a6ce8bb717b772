"""The local executors, one class per kind of local plan (see :mod:`edgeinf.local`)."""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..backends import Model
from ..dynamic import branch as B
from ..errors import ConfigError, InputError, KernelError, ModelError
from ..plan import LOCAL, Plan
from ..types import TensorSpec

Feeds = Mapping[str, np.ndarray]
Outputs = Dict[str, np.ndarray]


class LocalExecutor:
    """A local plan, resident. ``run`` returns outputs and an info dict (see subclasses)."""

    plan: Plan
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    macs: Optional[float] = None  # per batch-1 run, where known
    #: agreement with the full model on the calibration inputs (0..1; the package's metric), where known
    fidelity: Optional[float] = None

    def run(self, feeds: Feeds) -> Tuple[Outputs, dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def warmup(self, feeds: Optional[Feeds] = None, repeats: int = 2) -> None:
        """Run every graph this plan can use ``repeats`` times, so no request pays a first run."""
        feeds = dict(feeds) if feeds is not None else sample_feeds(self.inputs)
        for _ in range(repeats):
            self._warm(feeds)
        self.reset()

    def _warm(self, feeds: Feeds) -> None:
        self.run(feeds)

    def reset(self) -> None:
        """Forget per-stream state (only :class:`BranchPair` keeps any)."""

    def __repr__(self):
        return f"{type(self).__name__}({self.plan.label()})"


class Variant(LocalExecutor):
    """One resident graph: the full model, a width, or a smaller model with the same contract."""

    def __init__(self, plan: Plan, model: Model, macs: Optional[float] = None):
        self.plan, self.model, self.macs = plan, model, macs
        self.inputs, self.outputs = model.inputs, model.outputs

    def run(self, feeds: Feeds) -> Tuple[Outputs, dict]:
        return self.model.run(feeds), {"macs": self.macs}


class FullModel(Variant):
    """The package's model, from its cached ``full`` session."""

    def __init__(self, pkg, threads: Optional[int] = 1):
        macs = pkg.manifest["model"].get("macs")
        super().__init__(LOCAL, pkg.session("full", threads=threads), macs)
        self.fidelity = 1.0  # the reference itself


class StagedExit(LocalExecutor):
    """Stage graphs run in turn; a sample leaves after stage k when its confidence passes ``thresholds[k]``.

    Stage 0 takes the model inputs; every stage outputs the model's outputs (the exit's
    answer) and, but the last, the features later stages take by name. ``logits`` names the
    (N, C) output whose confidence (native kernel, ``measure``) decides. In a batch each
    sample leaves on its own; the rest go on (tensors are batch-leading).

    info: ``exit`` (N,) exit index per sample (0-based), ``macs`` (N,) or None, ``stages`` run.
    """

    def __init__(self, plan: Plan, stages: Sequence[Model], thresholds: Sequence[float],
                 outputs: Sequence[TensorSpec], logits: str, macs: Optional[Sequence[float]] = None,
                 measure: str = "max_prob", confidence: Optional[Callable] = None,
                 inputs: Optional[Sequence[TensorSpec]] = None):
        if len(thresholds) != len(stages) - 1:
            raise ConfigError(f"{len(stages)} stages need {len(stages) - 1} thresholds; got {len(thresholds)}")
        if measure not in ("max_prob", "margin"):
            raise ConfigError(f"exit confidence must be 'max_prob' or 'margin' (higher = surer); got {measure!r}")
        self.plan, self.stages, self.thr = plan, list(stages), np.asarray(thresholds, np.float64)
        self.inputs, self.outputs, self.logits = list(inputs or stages[0].inputs), list(outputs), logits
        self._input_names = {s.name for s in self.inputs}
        self.names = [s.name for s in self.outputs]
        self.cost = None if macs is None or any(m is None for m in macs) else np.cumsum(macs, dtype=np.float64)
        self.macs = None if self.cost is None else float(self.cost[-1])
        self.measure, self._confidence = measure, confidence or native_confidence()

    def run(self, feeds: Feeds) -> Tuple[Outputs, dict]:
        if set(feeds) != self._input_names:  # stages check shapes and dtypes; names first, in one message
            raise InputError(f"staged variant {self.plan.variant!r} expects inputs "
                             f"[{'; '.join(s.describe() for s in self.inputs)}]; got {sorted(feeds)}")
        first = next(iter(feeds.values()), None)
        if first is None or np.ndim(first) == 0 or len(first) == 1:
            return self._one(feeds)
        return self._batch(feeds, len(first))

    def _info(self, exits: np.ndarray, stages: int) -> dict:
        return {"exit": exits, "macs": None if self.cost is None else self.cost[exits], "stages": stages}

    def _one(self, feeds: Feeds) -> Tuple[Outputs, dict]:
        """Batch 1, the common edge request: no indexing."""
        avail, last = dict(feeds), len(self.stages) - 1
        for k, model in enumerate(self.stages):
            out = model.run({s.name: avail[s.name] for s in model.inputs})
            if k == last or (self.thr[k] != np.inf and self.score(out[self.logits])[0] >= self.thr[k]):
                break
            avail.update(out)
        return {n: out[n] for n in self.names}, self._info(np.array([k]), k + 1)

    def _batch(self, feeds: Feeds, n: int) -> Tuple[Outputs, dict]:
        result: Outputs = {}
        exits, idx, avail, last = np.full(n, len(self.stages) - 1), np.arange(n), dict(feeds), len(self.stages) - 1
        for k, model in enumerate(self.stages):
            out = model.run({s.name: avail[s.name] for s in model.inputs})
            done = (np.ones(len(idx), bool) if k == last else
                    np.zeros(len(idx), bool) if self.thr[k] == np.inf else
                    self.score(out[self.logits]) >= self.thr[k])
            for name in self.names:
                if name not in result:
                    result[name] = np.empty((n,) + out[name].shape[1:], out[name].dtype)
                result[name][idx[done]] = out[name][done]
            exits[idx[done]] = k
            if done.all():
                break
            avail.update(out)
            m, keep = len(idx), ~done
            avail = {key: np.ascontiguousarray(v[keep]) if np.ndim(v) and len(v) == m else v
                     for key, v in avail.items()}
            idx = idx[keep]
        return result, self._info(exits, k + 1)

    def score(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(self._confidence(np.ascontiguousarray(logits, np.float32))[self.measure])

    def exit_outputs(self, feeds: Feeds) -> List[Outputs]:
        """Every exit's outputs for every sample, no stopping: what calibration needs."""
        avail, outs = {k: feeds[k] for k in self._input_names if k in feeds}, []
        for model in self.stages:
            out = model.run({s.name: avail[s.name] for s in model.inputs})
            outs.append({n: out[n] for n in self.names})
            avail.update(out)
        return outs

    def _warm(self, feeds: Feeds) -> None:
        self.exit_outputs(feeds)  # every stage, whatever the thresholds would stop at


class BranchPair(LocalExecutor):
    """Two executors with one output contract, switched per frame by :func:`edgeinf.dynamic.branch.decide`.

    measure : a :class:`~edgeinf.dynamic.branch.Consistency`, a callable ``distance(a, b)``
        over two output dicts, a name in ``branch.MEASURES``, or None (relative range distance).
    State (branch, history, probe counters) is per executor, for one stream: :meth:`reset`
    between streams. info: ``branch`` (the name that answered), ``side`` ('small'/'big'),
    ``probe`` (the small one also ran), ``change`` (the measure on this frame), ``macs``.
    """

    def __init__(self, plan: Plan, small: LocalExecutor, big: LocalExecutor, measure=None,
                 config: Optional[B.BranchConfig] = None):
        if plan.branch is None:
            raise ConfigError(f"a BranchPair runs a branch plan; got {plan.label()}")
        check_contract(big.inputs, big.outputs, small.inputs, small.outputs, f"branch {plan.branch[0]!r}")
        self.plan, self.small, self.big = plan, small, big
        self.inputs, self.outputs = big.inputs, big.outputs
        self.measure, self.config = B.measure(measure), config or B.BranchConfig()
        self.macs = small.macs
        self.reset()

    def reset(self) -> None:
        self.state, self.step, self.history = B.BranchState(), B.Step(B.SMALL), ()

    def run(self, feeds: Feeds) -> Tuple[Outputs, dict]:
        side, probe = self.step.branch, self.step.probe
        out, info = (self.small if side == B.SMALL else self.big).run(feeds)
        macs, disagreement = info.get("macs"), None
        if probe:
            p_out, p_info = self.small.run(feeds)
            disagreement = self.measure.disagreement(p_out, out)
            macs = None if macs is None or p_info.get("macs") is None else macs + p_info["macs"]
        change = self.measure.change(out, self.history) if side == B.SMALL else 0.0
        self.history = (self.history + (out,))[-2:]
        self.step, self.state = B.decide(B.Observation(side, change, disagreement), self.state, self.config)
        name = self.plan.branch[0 if side == B.SMALL else 1]
        return out, {"branch": name, "side": side, "probe": probe, "change": change, "macs": macs}

    def _warm(self, feeds: Feeds) -> None:
        self.small.warmup(feeds, repeats=1)
        self.big.warmup(feeds, repeats=1)


# -- helpers -------------------------------------------------------------------------------
def native_confidence() -> Callable:
    """``edgeinf.confidence.confidence``: the native N x C kernel (max_prob, margin, entropy)."""
    try:
        from ..confidence import confidence
    except ImportError as e:
        raise KernelError("early exits need the native confidence kernel "
                          f"(edgeinf.confidence.confidence), which did not import: {e}") from e
    return confidence


def sample_feeds(specs: Sequence[TensorSpec], seed: int = 0) -> Dict[str, np.ndarray]:
    """Warm-up inputs: floats ~ N(0, 1); integers and booleans zero (safe as indices and shapes)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        dt = np.dtype(s.dtype)
        shape = s.concrete_shape(1)
        out[s.name] = rng.standard_normal(shape).astype(dt) if dt.kind == "f" else np.zeros(shape, dt)
    return out


def _dims_fit(a, b) -> bool:
    if len(a) != len(b):
        return False
    return all(not (isinstance(x, int) and x >= 0 and isinstance(y, int) and y >= 0) or x == y
               for x, y in zip(a, b))


def check_contract(ref_in: Sequence[TensorSpec], ref_out: Sequence[TensorSpec],
                   inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], what: str,
                   outputs_subset: bool = False) -> None:
    """Raise one ModelError unless ``inputs``/``outputs`` match the reference by name, dtype and shape.

    Symbolic dims match anything. ``outputs_subset``: extra outputs are allowed (stage features).
    """
    problems = []
    for kind, ref, got, extra_ok in (("input", ref_in, inputs, False), ("output", ref_out, outputs, outputs_subset)):
        have = {s.name: s for s in got}
        for r in ref:
            s = have.pop(r.name, None)
            if s is None:
                problems.append(f"missing {kind} {r.describe()}")
            elif np.dtype(s.dtype) != np.dtype(r.dtype) or not _dims_fit(s.shape, r.shape):
                problems.append(f"{kind} {s.describe()} where the model has {r.describe()}")
        if have and not extra_ok:
            problems.append(f"extra {kind}(s) {sorted(have)}")
    if problems:
        raise ModelError(f"{what} does not have the model's input/output contract: " + "; ".join(problems)
                         + f" (the model takes [{'; '.join(s.describe() for s in ref_in)}] and returns "
                         f"[{'; '.join(s.describe() for s in ref_out)}])")
