"""How tensors cross a link under a codec, as the runtime sends them: float tensors through
the codec (per channel along their recorded axis), integer and bool tensors raw.

Shared by the package profile (:mod:`.measure`) and the per-cut model profile
(:mod:`edgeinf.split.profile`), so both price and score a codec the same way.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from .. import codec as _codec

Feeds = Dict[str, np.ndarray]


class TensorCodec:
    """One codec applied the way the runtime sends tensors: floats encoded, the rest raw."""

    def __init__(self, name: str, axes: Mapping[str, Optional[int]]):
        from .. import imagecodec

        self.name, self.axes = name, dict(axes)
        self.image = imagecodec.is_image_codec(name)  # frames: uint8 images are encoded too

    def _coded(self, a: np.ndarray) -> bool:
        return a.dtype in (np.float32, np.float16) or (self.image and a.dtype == np.uint8)

    def lossless(self, tensors: Feeds) -> List[str]:
        return sorted(k for k, a in tensors.items() if not self._coded(a))

    def encode(self, tensors: Feeds) -> Dict[str, object]:
        if self.name == "raw":
            return dict(tensors)
        return {k: _codec.encode(np.ascontiguousarray(a), self.name, axis=self.axes.get(k)) if self._coded(a) else a
                for k, a in tensors.items()}

    @staticmethod
    def decode(bufs: Dict[str, object]) -> Feeds:
        return {k: b if isinstance(b, np.ndarray) else _codec.decode(b) for k, b in bufs.items()}

    @staticmethod
    def nbytes(bufs: Dict[str, object]) -> int:
        return sum(b.nbytes if isinstance(b, np.ndarray) else len(b) for b in bufs.values())


def codecs_for(tensors: Feeds, wanted: Sequence[str]) -> List[str]:
    """Every wanted codec this build has; only ``raw`` (and frame codecs) when nothing float crosses."""
    from .. import imagecodec

    floats = any(a.dtype in (np.float32, np.float16) for a in tensors.values())
    have = set(_codec.names()) if floats else {"raw"}
    return list(dict.fromkeys(c for c in (wanted if floats else ["raw", *wanted])
                              if c in have or imagecodec.is_image_codec(c)))
