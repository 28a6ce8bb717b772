"""The only module that imports the compiled extension, and explains when it cannot."""
from __future__ import annotations

from .errors import KernelError

try:
    from . import _kernels as kernels  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    raise KernelError(
        "edgeinf's native extension (edgeinf._kernels) is not built or does not load: "
        f"{e}. Reinstall with `pip install .` (or `pip install -e .`) and a C++17 compiler; "
        "there is no pure-Python fallback."
    ) from e


def build_info() -> dict:
    """Compiler, flags and the SIMD path the kernels chose on this CPU."""
    return dict(kernels.build_info())
