"""Plans: what the controller chooses and the runtime executes, per request.

A plan is a small frozen value, so it can be logged, compared, used as a dict key, and
sent in test fixtures. The controller is the only part that picks one; everything else
executes it and reports what it measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import ConfigError

KINDS = ("local", "split", "offload")


@dataclass(frozen=True)
class Plan:
    """How to serve one request.

    kind : 'local' | 'split' | 'offload'
    cut : cut id in the model package (split only)
    codec : codec name for what crosses the link (split/offload), e.g. 'int8-pc+lz4', 'jpeg90'
    variant : local model variant: a width ('w0.5'), a branch ('hand_landmark_lite'), or None
    exit : early-exit policy for local runs: None (run to the end) or a threshold profile name
    """

    kind: str
    cut: Optional[str] = None
    codec: Optional[str] = None
    variant: Optional[str] = None
    exit: Optional[str] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"plan kind must be one of {KINDS}; got {self.kind!r}")
        if self.kind == "split" and not self.cut:
            raise ConfigError("a split plan needs a cut id")
        if self.kind == "local" and (self.cut or self.codec):
            raise ConfigError("a local plan has no cut or codec")

    @property
    def remote(self) -> bool:
        return self.kind != "local"

    def label(self) -> str:
        if self.kind == "local":
            extra = ",".join(x for x in (self.variant, self.exit) if x)
            return f"local[{extra}]" if extra else "local"
        if self.kind == "split":
            return f"split@{self.cut}/{self.codec or 'raw'}"
        return f"offload/{self.codec or 'raw'}"

    __str__ = label


LOCAL = Plan("local")
