"""Shared fixtures of the dynamic tests: the trained package, built once if not cached.

Building takes a few minutes on 2 cores and needs torch (the Makefile installs it); the
result is cached in $EDGEINF_CACHE/packages/digits-dynamic and rebuilt only when
edgeinf.dynamic.build.VERSION or the seed changes.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def dynamic_pkg():
    from edgeinf.dynamic import build
    from edgeinf.package import open_package

    if not build.current():
        try:
            import torch  # noqa: F401
        except ImportError:
            pytest.fail("building the dynamic package needs torch: pip install torch==2.13.0 (CPU), "
                        "as `make test` does; this test does not skip, since CI must run it")
    return open_package(build.ensure())


@pytest.fixture(scope="session")
def dynamic_model(dynamic_pkg):
    from edgeinf.dynamic.runtime import DynamicModel

    return DynamicModel(dynamic_pkg)  # the native confidence kernel
