"""Small value types shared by every layer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

Dim = Union[int, str, None]  # int: fixed; str: symbolic name; None: unknown


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of a model input or output.

    ``shape`` holds ints for fixed dims and strings (or None) for symbolic ones, e.g.
    ``("batch", 3, 224, 224)``.
    """

    name: str
    shape: Tuple[Dim, ...]
    dtype: np.dtype

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)

    def concrete_shape(self, fill: int = 1) -> Tuple[int, ...]:
        """Shape with symbolic dims replaced by ``fill``."""
        return tuple(d if isinstance(d, int) and d >= 0 else fill for d in self.shape)

    def nbytes(self, fill: int = 1) -> int:
        return int(np.prod(self.concrete_shape(fill), dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def matches(self, shape: Tuple[int, ...]) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(not isinstance(d, int) or d < 0 or d == s for d, s in zip(self.shape, shape))

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape) or "scalar"
        return f"{self.name}: {dims} {np.dtype(self.dtype).name}"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": np.dtype(self.dtype).name}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), np.dtype(d["dtype"]))


def shape_str(shape) -> str:
    return "x".join(str(s) for s in shape) or "scalar"


def parse_shape(text: str) -> Tuple[int, ...]:
    """Parse ``1x3x224x224`` (or ``1,3,224,224``) into a tuple of ints."""
    from .errors import ConfigError

    parts = text.replace(",", "x").lower().split("x")
    try:
        dims = tuple(int(p) for p in parts if p != "")
    except ValueError:
        raise ConfigError(f"shape {text!r} is not of the form 1x3x224x224") from None
    if not dims or any(d < 0 for d in dims):
        raise ConfigError(f"shape {text!r} must have non-negative integer dims")
    return dims


def optional_int(v: Optional[str]) -> Optional[int]:
    return None if v in (None, "") else int(v)
