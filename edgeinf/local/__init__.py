"""Local executors: every way this device runs a :class:`Plan` by itself, behind one interface.

One class per kind of local plan, each ``run(feeds) -> (outputs, info)``:

========================= ===================================================== ==========================
plan                      executor                                              what runs
========================= ===================================================== ==========================
``Plan("local")``         :class:`FullModel`                                    the package's model
``variant="small"``       :class:`Variant`                                      another graph, same contract
``variant=v, exit=p``     :class:`StagedExit`                                   stage graphs, stop at the first
                                                                                exit whose confidence passes ``p``
``branch=(a, b)``         :class:`BranchPair`                                   ``a`` or ``b`` per frame, switched
                                                                                by a consistency measure
========================= ===================================================== ==========================

:func:`executors` builds every local plan a package declares (``docs/package.md``,
Variants); :class:`edgeinf.runtime.EdgeRuntime` calls them, and so do the digits
:class:`~edgeinf.dynamic.DynamicModel` and the hand :class:`~edgeinf.dynamic.BranchSwitcher`.
All sessions load in the constructor: a request only looks one up.
"""
from __future__ import annotations

from .catalog import FULL, executors, variant_plan
from .executors import (
                        BranchPair,
                        FullModel,
                        LocalExecutor,
                        StagedExit,
                        Variant,
                        check_contract,
                        native_confidence,
                        sample_feeds,
)

__all__ = ["FULL", "BranchPair", "FullModel", "LocalExecutor", "StagedExit", "Variant",
           "check_contract", "executors", "native_confidence", "sample_feeds", "variant_plan"]
