"""Shared fixtures of the dynamic tests: the trained package, built once if not cached."""
from __future__ import annotations

import numpy as np
import pytest


def numpy_confidence(logits):
    """Same signature as edgeinf.confidence.confidence; used only until the kernel lands."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(p, 1)[:, -2:]
    return {"max_prob": top2[:, 1], "margin": top2[:, 1] - top2[:, 0],
            "entropy": -(p * np.log(np.maximum(p, 1e-30))).sum(1)}


def confidence_fn():
    try:
        from edgeinf.confidence import confidence
        return confidence
    except ImportError:
        return numpy_confidence


@pytest.fixture(scope="session")
def dynamic_pkg():
    pytest.importorskip("torch", reason="building the dynamic package needs torch (the train extra)")
    from edgeinf.dynamic import build
    from edgeinf.package import open_package

    return open_package(build.ensure(confidence=confidence_fn()))


@pytest.fixture(scope="session")
def dynamic_model(dynamic_pkg):
    from edgeinf.dynamic.runtime import DynamicModel

    return DynamicModel(dynamic_pkg, confidence=confidence_fn())
