"""Shared fixtures. Models come from edgeinf.zoo: real files, built or fetched once."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def zoo_path():
    from edgeinf import zoo

    def get(name):
        return zoo.path(name)

    return get


@pytest.fixture(scope="session")
def mobilenet_path(zoo_path):
    return zoo_path("mobilenetv2")


def assert_close(actual, expected, rtol=1e-5, atol=None, scale=None, what=""):
    """One reference comparison for kernels and backends: error relative to the output scale."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = scale if scale is not None else max(float(np.abs(expected).max(initial=0.0)), 1e-12)
    tol = atol if atol is not None else rtol * scale
    err = float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max(initial=0.0))
    assert err <= tol, f"{what}: max abs err {err:.3g} > {tol:.3g}"
    return err
