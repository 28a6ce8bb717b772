"""Early exits, slimmable widths and branch switching for local runs.

- :mod:`edgeinf.dynamic.declare`: add a user's variants, staged exits and branch pairs to a
  package and calibrate their exits (``edgeinf variant ...``): :func:`add_variant`,
  :func:`add_exits`, :func:`add_branch`, :func:`calibrate_variants`, :func:`describe`.
- :class:`DynamicModel`: the digits example's widths and exits resident; ``run(x, plan)``
  stops at the first exit whose confidence (native kernel) passes the plan's profile.
- :func:`local_plans`: the digits package's plans, with accuracy, MACs and ms measured here.
- :class:`BranchSwitcher`: the mediapipe hand pair on a stream, switched by a pure policy
  (:func:`edgeinf.dynamic.branch.decide`).

The executors themselves are in :mod:`edgeinf.local`. The digits package is built by
``splits/train_dynamic.py`` (torch, train-time only); nothing here imports torch. See
``docs/dynamic.md``.
"""
from __future__ import annotations

from .branch import BranchConfig, Consistency, RangeDistance, decide
from .declare import add_branch, add_exits, add_variant, describe
from .plans import LocalPlan, local_plans
from .recalibrate import calibrate_variants
from .runtime import DynamicModel, Result
from .stream import BranchSwitcher
from .variants import Variants, read

__all__ = ["BranchConfig", "BranchSwitcher", "Consistency", "DynamicModel", "LocalPlan",
           "RangeDistance", "Result", "Variants", "add_branch", "add_exits", "add_variant",
           "calibrate_variants", "decide", "describe", "local_plans", "read"]
