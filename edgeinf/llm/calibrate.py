"""Escalation threshold calibration and agreement with the cloud model.

:func:`positions` runs, per prompt, the cloud model's greedy answer and then one batched
pass of each model over prompt + answer: at every answer position, the edge's top
probability and whether the edge's greedy choice equals the cloud's. :func:`calibrate`
picks the lowest threshold whose expected agreement (tokens the edge emits and gets wrong
count against it; escalated tokens are the cloud's) reaches the target, so as few tokens
as possible go to the cloud. :func:`agreement` scores an answer the way the benchmark
does: at each emitted token, does the cloud's greedy choice given the same prefix equal it
(one batched cloud pass).

The prompt set is built in (:data:`PROMPTS`): short instructions of the kind a device
assistant gets; the first :data:`N_CALIBRATION` calibrate, the rest are held out for
every reported number.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .. import config
from ..confidence import confidence

PROMPTS = [
    "Name three colours.", "What is the capital of France?", "Give me a synonym for happy.",
    "Write one sentence about the sea.", "How many legs does a spider have?", "What is 12 plus 7?",
    "Suggest a name for a black cat.", "What do bees make?", "List two fruits that are red.",
    "Explain what a battery does in one sentence.", "What is the opposite of cold?",
    "Translate 'thank you' into Spanish.", "What season comes after winter?",
    "Describe a sunset in one sentence.", "Why do we need sleep?", "What is a robot?",
    # held out
    "Name a planet in our solar system.", "What is the boiling point of water in Celsius?",
    "Give one tip for saving energy at home.", "What animal says moo?", "Write a short greeting for a friend.",
    "What is the largest ocean?", "How do plants get energy?", "Tell me a fact about the moon.",
]
N_CALIBRATION = 16


@dataclass(frozen=True)
class Calibration:
    threshold: float
    target: float                 # the agreement asked for
    agreement: float              # expected at the threshold (calibration prompts)
    escalate_fraction: float      # tokens below the threshold
    edge_agreement: float         # the edge alone
    positions: int
    pair: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def chat(lm, prompt: str) -> List[int]:
    return lm.tokenize(lm.chat_prompt([{"role": "user", "content": prompt}]))


def greedy(lm, prompt_ids: Sequence[int], max_tokens: int) -> List[int]:
    """The model's greedy answer (one token at a time, stopping at end of generation)."""
    logits = lm.sync(list(prompt_ids))
    out: List[int] = []
    for _ in range(max_tokens):
        t = int(np.argmax(logits))
        if t in lm.eog:
            break
        out.append(t)
        logits = lm.feed([t])
    return out


def batched_choices(lm, prompt_ids: Sequence[int], answer: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(greedy choice, top probability) at each answer position, from one batched pass."""
    ids = list(prompt_ids) + list(answer)
    lm.reset()
    rows = lm.feed(ids, all_logits=True)[len(prompt_ids) - 1: len(ids) - 1]
    return rows.argmax(axis=1), confidence(rows)["max_prob"]


def agreement(cloud_lm, prompt_ids: Sequence[int], answer: Sequence[int]) -> float:
    """Fraction of ``answer``'s tokens equal to the cloud's greedy choice given the same prefix."""
    if not answer:
        return 1.0
    choice, _ = batched_choices(cloud_lm, prompt_ids, answer)
    return float(np.mean(choice == np.asarray(answer)))


def positions(edge_lm, cloud_lm, prompts: Sequence[str], max_tokens: int = 48):
    """(edge top probability, edge agrees with cloud) at every position of the cloud's answers."""
    conf, agree = [], []
    for p in prompts:
        ids = chat(cloud_lm, p)
        answer = greedy(cloud_lm, ids, max_tokens)
        if not answer:
            continue
        cloud_choice, _ = batched_choices(cloud_lm, ids, answer)
        edge_choice, edge_conf = batched_choices(edge_lm, ids, answer)
        conf.append(edge_conf)
        agree.append(edge_choice == cloud_choice)
    return np.concatenate(conf), np.concatenate(agree)


def threshold_for(conf: np.ndarray, agree: np.ndarray, target: float) -> float:
    """The lowest top-probability threshold at which the edge's emitted tokens keep the
    expected agreement >= ``target`` (escalated tokens count as agreeing: they are the
    cloud's); above every confidence (escalate all) when nothing lower does."""
    conf, agree = np.asarray(conf, np.float64), np.asarray(agree, bool)
    if conf.size == 0:
        return 1.0 + 1e-6
    for t in np.unique(np.concatenate([conf, [0.0]])):  # ascending: the first that works sends least
        if 1.0 - np.count_nonzero((conf >= t) & ~agree) / conf.size >= target:
            return float(t)
    return float(conf.max()) + 1e-6


def reference_check(cloud_lm, prompt_ids: Sequence[int], answer: Sequence[int], drift: float = 1.5):
    """Compare an answer with the cloud's greedy choices in one batched pass.

    Returns (mismatches, near_ties): positions where the answer's token is not the batched
    argmax, and how many of those are near-ties (the answer's token within ``drift`` logits
    of the top; llama.cpp's batched logits differ from one-token logits by up to ~1.3)."""
    if not answer:
        return 0, 0
    ids = list(prompt_ids) + list(answer)
    cloud_lm.reset()
    rows = cloud_lm.feed(ids, all_logits=True)[len(prompt_ids) - 1: len(ids) - 1]
    ans = np.asarray(answer)
    top = rows.argmax(axis=1)
    bad = np.flatnonzero(top != ans)
    gap = rows[bad, top[bad]] - rows[bad, ans[bad]]
    return int(bad.size), int(np.count_nonzero(gap <= drift))


def calibrate(edge_lm, cloud_lm, target: float = 0.95, prompts: Optional[Sequence[str]] = None,
              max_tokens: int = 48, pair: str = "") -> Calibration:
    conf, agree = positions(edge_lm, cloud_lm, prompts or PROMPTS[:N_CALIBRATION], max_tokens)
    n = conf.size
    best = threshold_for(conf, agree, target)
    kept = conf >= best
    return Calibration(threshold=round(best, 6), target=target,
                       agreement=float(1.0 - np.count_nonzero(kept & ~agree) / n),
                       escalate_fraction=float(1.0 - kept.mean()), edge_agreement=float(agree.mean()),
                       positions=int(n), pair=pair)


def cached(edge_path: Path, cloud_path: Path, target: float = 0.95, threads: int = 1) -> Calibration:
    """:func:`calibrate` for a pair of GGUF files, cached under ``$EDGEINF_CACHE/llm``."""
    from ..backends import load

    key = hashlib.sha256(f"{edge_path.name}:{edge_path.stat().st_size}:{cloud_path.name}:"
                         f"{cloud_path.stat().st_size}:{target}:{len(PROMPTS)}".encode()).hexdigest()[:16]
    path = config.cache_dir() / "llm" / f"calibration-{key}.json"
    if path.is_file():
        return Calibration(**json.loads(path.read_text()))
    edge, cloud = load(edge_path, threads=threads), load(cloud_path, threads=threads)
    try:
        cal = calibrate(edge, cloud, target, pair=f"edge {edge_path.name} / cloud {cloud_path.name}")
    finally:
        edge.close()
        cloud.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cal.to_json())
    return cal
