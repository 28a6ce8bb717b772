"""Early exits, slimmable widths and branch switching for local runs.

- :class:`DynamicModel`: every width and exit of a package resident; ``run(x, plan)``
  stops at the first exit whose confidence (native kernel) passes the plan's profile.
- :func:`local_plans`: the plans a package offers, with accuracy, MACs and ms measured here.
- :class:`BranchSwitcher`: a small/big model pair on a stream, switched by a pure policy
  (:func:`edgeinf.dynamic.branch.decide`).

Packages are built by ``splits/train_dynamic.py`` (torch, train-time only); nothing here
imports torch. See ``docs/dynamic.md``.
"""
from __future__ import annotations

from .branch import BranchConfig, decide
from .plans import LocalPlan, local_plans
from .runtime import DynamicModel, Result
from .stream import BranchSwitcher
from .variants import Variants, read

__all__ = ["DynamicModel", "Result", "local_plans", "LocalPlan", "BranchSwitcher",
           "BranchConfig", "decide", "Variants", "read"]
