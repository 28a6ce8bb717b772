"""Model packages: what the device and the worker both load.

A package is a directory holding ``edgeinf.json`` (the manifest, see ``docs/package.md``)
and the model files it names. Both sides open the same package, so cut ids, specs and
the package hash agree. Every file carries a SHA-256 in the manifest; :func:`open_package`
checks them all and names the file that does not match.

Sessions are created on first use and cached on the package (``session("tail", cut)``),
so a request never loads a model.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

from .errors import PackageError, nearest
from .types import TensorSpec

MANIFEST = "edgeinf.json"
FORMAT = "edgeinf-package"
VERSION = 1  # bump on incompatible changes; readers accept <= VERSION
MAX_MANIFEST_BYTES = 16 * 2**20


def sha256_file(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileRef:
    """A file of the package: path relative to the root, its hash and format."""

    file: str
    sha256: str
    format: str  # "onnx" | "tflite" | "gguf"

    def to_dict(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "format": self.format}

    @classmethod
    def from_dict(cls, d: dict) -> "FileRef":
        return cls(d["file"], d["sha256"], d.get("format") or _format_of(d["file"]))


@dataclass(frozen=True)
class Cut:
    """A cut: ``head`` computes ``tensors`` from the model inputs, ``tail`` the outputs from them."""

    id: str
    name: str
    tensors: List[TensorSpec]
    bytes: int
    head: FileRef
    tail: FileRef
    extra: dict = field(default_factory=dict)  # profile, codecs, fidelity... (grows)

    @property
    def learned(self) -> bool:
        """A learned cut (a bottleneck): head + tail approximate the model instead of being
        it, so a local fallback runs the full model, not this cut's tail."""
        return bool(self.extra.get("bottleneck"))

    def channel_axes(self) -> Dict[str, int]:
        """Channel axis per crossing tensor recorded at split time (NHWC: -1, NCHW: 1)."""
        return {str(k): int(v) for k, v in self.extra.get("channel_axis", {}).items()}

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "tensors": [t.to_dict() for t in self.tensors],
                "bytes": self.bytes, "head": self.head.to_dict(), "tail": self.tail.to_dict(), **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> "Cut":
        known = {"id", "name", "tensors", "bytes", "head", "tail"}
        return cls(str(d["id"]), d.get("name", str(d["id"])), [TensorSpec.from_dict(t) for t in d["tensors"]],
                   int(d.get("bytes", 0)), FileRef.from_dict(d["head"]), FileRef.from_dict(d["tail"]),
                   {k: v for k, v in d.items() if k not in known})


def _format_of(file: str) -> str:
    suffix = Path(file).suffix.lower()
    return {".onnx": "onnx", ".tflite": "tflite", ".gguf": "gguf"}.get(suffix, suffix.lstrip("."))


class Package:
    """An opened, hash-checked model package."""

    def __init__(self, root: Path, manifest: dict, manifest_bytes: bytes):
        self.root = root
        self.manifest = manifest
        #: identifies this exact package on the wire (hash of the manifest, which hashes every file)
        self.hash = hashlib.sha256(manifest_bytes).hexdigest()
        self.name = manifest.get("name", root.name)
        m = manifest["model"]
        self.model = FileRef.from_dict(m)
        self.inputs = [TensorSpec.from_dict(s) for s in m.get("inputs", [])]
        self.outputs = [TensorSpec.from_dict(s) for s in m.get("outputs", [])]
        self.cuts: Dict[str, Cut] = {}
        for c in manifest.get("cuts", []):
            cut = Cut.from_dict(c)
            self.cuts[cut.id] = cut
        self._sessions: Dict[tuple, object] = {}
        self._lock = threading.Lock()

    # -- lookup ------------------------------------------------------------------------
    def cut(self, cut_id: str) -> Cut:
        try:
            return self.cuts[str(cut_id)]
        except KeyError:
            raise PackageError(f"package {self.name!r} has no cut {cut_id!r}; nearest: "
                               f"{nearest(str(cut_id), self.cuts)} (all: {sorted(self.cuts)})") from None

    def path(self, ref: FileRef) -> Path:
        return self.root / ref.file

    def file_for(self, role: str, cut_id: Optional[str] = None) -> FileRef:
        if role == "full":
            return self.model
        if role not in ("head", "tail"):
            raise PackageError(f"role must be one of full, head, tail; got {role!r}")
        return getattr(self.cut(cut_id), role)

    # -- sessions ----------------------------------------------------------------------
    def session(self, role: str = "full", cut_id: Optional[str] = None, threads: Optional[int] = None, **options):
        """The cached engine session for ``role`` ('full', 'head', 'tail') of a cut."""
        from .backends import load

        key = (role, cut_id, threads, tuple(sorted(options.items())))
        with self._lock:
            model = self._sessions.get(key)
            if model is None:
                model = load(self.path(self.file_for(role, cut_id)), threads=threads, **options)
                self._sessions[key] = model
        return model

    def describe(self) -> dict:
        return {"name": self.name, "hash": self.hash, "root": str(self.root),
                "model": self.model.to_dict(), "cuts": sorted(self.cuts)}


def read_json(path: Path, limit: int, hint: str = "") -> tuple:
    """(raw bytes, parsed JSON) of a package file, its size checked before it is read."""
    size = path.stat().st_size
    if size > limit:
        raise PackageError(f"{path} is {size} bytes; the limit is {limit}")
    raw = path.read_bytes()
    try:
        return raw, json.loads(raw)
    except ValueError as e:
        raise PackageError(f"{path} is not valid JSON ({e}){hint}") from None


def open_package(root: Union[str, Path], verify: bool = True) -> Package:
    """Open a package directory; check every file's hash unless ``verify=False``."""
    root = Path(root)
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise PackageError(f"{root} is not a model package: {MANIFEST} not found")
    raw, manifest = read_json(mpath, MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackageError(f"{mpath}: 'format' must be {FORMAT!r}")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise PackageError(f"{mpath}: version {version!r} is newer than this edgeinf reads ({VERSION}); upgrade edgeinf")
    if "model" not in manifest:
        raise PackageError(f"{mpath}: missing 'model'")
    try:
        pkg = Package(root, manifest, raw)
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"{mpath}: malformed entry ({type(e).__name__}: {e})") from None
    if verify:
        verify_files(pkg)
    return pkg


def _refs(pkg: Package):
    yield pkg.model
    for c in pkg.cuts.values():
        yield c.head
        yield c.tail
    yield from (FileRef.from_dict(f) for f in pkg.manifest.get("files", []))


def verify_files(pkg: Package) -> None:
    for ref in _refs(pkg):
        p = pkg.path(ref)
        if not p.resolve().is_relative_to(pkg.root.resolve()):
            raise PackageError(f"package file {ref.file!r} points outside the package")
        if not p.is_file():
            raise PackageError(f"package file missing: {ref.file}")
        got = sha256_file(p)
        if got != ref.sha256:
            raise PackageError(f"package file {ref.file} does not match its hash "
                               f"(manifest {ref.sha256[:12]}..., file {got[:12]}...)")


class PackageWriter:
    """Build a package directory; :meth:`save` writes the manifest last (atomically).

    Example::

        w = PackageWriter(out_dir, name="mobilenetv2")
        w.set_model("model.onnx", src_path, inputs, outputs)
        w.add_cut(id, name, tensors, nbytes, head_bytes, tail_bytes, profile={...})
        w.save()
    """

    def __init__(self, root: Union[str, Path], name: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest: dict = {"format": FORMAT, "version": VERSION, "name": name, "cuts": []}

    def write_file(self, rel: str, data: Union[bytes, Path]) -> FileRef:
        dst = self.root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, (bytes, bytearray)):
            dst.write_bytes(data)
        else:
            shutil.copyfile(data, dst)
        return FileRef(rel, sha256_file(dst), _format_of(rel))

    def set_model(self, rel: str, data, inputs: List[TensorSpec], outputs: List[TensorSpec]) -> None:
        ref = self.write_file(rel, data)
        self.manifest["model"] = {**ref.to_dict(), "inputs": [s.to_dict() for s in inputs],
                                  "outputs": [s.to_dict() for s in outputs]}

    def add_cut(self, cut_id: str, name: str, tensors: List[TensorSpec], nbytes: int,
                head, tail, ext: str = ".onnx", **extra) -> Cut:
        head_ref = self.write_file(f"cuts/{cut_id}/head{ext}", head)
        tail_ref = self.write_file(f"cuts/{cut_id}/tail{ext}", tail)
        cut = Cut(cut_id, name, list(tensors), int(nbytes), head_ref, tail_ref, dict(extra))
        self.manifest["cuts"].append(cut.to_dict())
        return cut

    def add_file(self, rel: str, data) -> FileRef:
        """Any other file (variants, exits...); hashed like the rest."""
        ref = self.write_file(rel, data)
        self.manifest.setdefault("files", []).append(ref.to_dict())
        return ref

    def save(self) -> Path:
        if "model" not in self.manifest:
            raise PackageError("a package needs a model: call set_model() before save()")
        tmp = self.root / (MANIFEST + ".part")
        tmp.write_text(json.dumps(self.manifest, indent=2, sort_keys=False, default=str))
        tmp.replace(self.root / MANIFEST)
        return self.root
