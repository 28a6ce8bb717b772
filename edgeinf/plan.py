"""Plans: what the controller chooses and the runtime executes, per request.

A plan is a small frozen value, so it can be logged, compared, used as a dict key, stored
in a package's profile and sent in test fixtures. The controller is the only part that
picks one; :class:`edgeinf.runtime.EdgeRuntime` is the only part that executes one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import ConfigError

KINDS = ("local", "split", "offload")


@dataclass(frozen=True)
class Plan:
    """How to serve one request.

    kind : 'local' | 'split' | 'offload'
    cut : cut id in the model package (split only)
    codec : codec name for what crosses the link (split/offload), e.g. 'int8-pc+lz4', 'jpeg90'
    variant : a local variant of the package (a width 'w0.5', a smaller model), or None: the full model
    exit : early-exit threshold profile of the variant (staged early exit), or None: run to the end
    branch : (small, big) variant names switched per frame by a consistency measure, or None
    """

    kind: str
    cut: Optional[str] = None
    codec: Optional[str] = None
    variant: Optional[str] = None
    exit: Optional[str] = None
    branch: Optional[Tuple[str, str]] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"plan kind must be one of {KINDS}; got {self.kind!r}")
        if self.kind == "split" and not self.cut:
            raise ConfigError("a split plan needs a cut id")
        if self.kind == "local" and (self.cut or self.codec):
            raise ConfigError("a local plan has no cut or codec")
        if self.kind != "local" and (self.variant or self.exit or self.branch):
            raise ConfigError(f"a {self.kind} plan has no variant, exit or branch (those are local plans)")
        if self.branch is not None:
            if not (isinstance(self.branch, tuple) and len(self.branch) == 2 and all(self.branch)):
                raise ConfigError(f"branch must be a (small, big) pair of variant names; got {self.branch!r}")
            if self.variant or self.exit:
                raise ConfigError("a branch plan picks its variant per frame: give no variant or exit")

    @property
    def remote(self) -> bool:
        return self.kind != "local"

    def label(self) -> str:
        if self.kind == "local":
            if self.branch:
                return f"local[{self.branch[0]}|{self.branch[1]}]"
            extra = ",".join(x for x in (self.variant, self.exit) if x)
            return f"local[{extra}]" if extra else "local"
        if self.kind == "split":
            return f"split@{self.cut}/{self.codec or 'raw'}"
        return f"offload/{self.codec or 'raw'}"

    __str__ = label

    def to_dict(self) -> dict:
        """JSON form (package profiles, reports): only the fields that are set."""
        d = {"kind": self.kind}
        for k in ("cut", "codec", "variant", "exit"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.branch is not None:
            d["branch"] = list(self.branch)
        return d

    @classmethod
    def from_dict(cls, d) -> "Plan":
        if not isinstance(d, dict) or "kind" not in d:
            raise ConfigError(f"a plan is an object with a 'kind'; got {d!r}")
        unknown = set(d) - {"kind", "cut", "codec", "variant", "exit", "branch"}
        if unknown:
            raise ConfigError(f"unknown plan field(s) {sorted(unknown)}")
        branch = d.get("branch")
        return cls(d["kind"], d.get("cut"), d.get("codec"), d.get("variant"), d.get("exit"),
                   tuple(branch) if branch is not None else None)


LOCAL = Plan("local")

#: What a remote attempt leaves for its local fallback: 1.5 x the local estimate + 5 ms.
#: The one definition: the runtime reserves it, the policy's timeout and the replay use it.
RESERVE_FACTOR, RESERVE_MS = 1.5, 5.0


def fallback_reserve_ms(local_ms: float) -> float:
    """Milliseconds a remote attempt must leave so running locally still meets the deadline."""
    return RESERVE_FACTOR * float(local_ms) + RESERVE_MS


def remote_budget_ms(left_ms: float, local_ms: float) -> float:
    """How long a remote attempt may take out of the ``left_ms`` to its deadline.

    What leaves the local fallback its reserve, so a failed attempt still ends in time; but
    all of ``left_ms`` when running locally is expected to miss the deadline anyway (a device
    too slow for it): a reserve then buys nothing, and it used to leave the remote plan that
    could meet the deadline no budget at all (skipped, then a sure miss locally)."""
    if left_ms < local_ms:
        return left_ms
    return left_ms - fallback_reserve_ms(local_ms)
