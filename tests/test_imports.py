"""Public surface and layering stay as designed (docs/architecture.md).

Every module of the package has a rank (its layer); a module imports only modules of its
own rank or below. A module missing from the table fails the test, so a new one must be
placed in a layer on purpose.
"""
import ast
from pathlib import Path

import edgeinf

PKG = Path(edgeinf.__file__).parent

PUBLIC = ["__version__", "load", "Model", "TensorSpec", "device", "EdgeInfError", "ConfigError", "BackendError",
          "InputError", "ModelError", "EdgeRuntime", "AdaptiveRuntime", "AdaptiveResult", "Plan", "open_package"]


def test_public_names_are_pinned():
    assert sorted(edgeinf.__all__) == sorted(PUBLIC)
    for name in edgeinf.__all__:
        assert getattr(edgeinf, name) is not None, name


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = ["edgeinf", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (PKG / rel).with_suffix(".py").is_file() or (PKG / rel / "__init__.py").is_file()


def _imports(path: Path):
    """Every module ``path`` imports, relative imports resolved, ``from . import x`` included."""
    tree = ast.parse(path.read_text())
    pkg_parts = ["edgeinf", *path.relative_to(PKG).parent.parts]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg_parts[: len(pkg_parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            for a in node.names:  # "from .. import codec" imports the module edgeinf.codec
                if base.startswith("edgeinf") and _is_module(f"{base}.{a.name}"):
                    yield f"{base}.{a.name}"


def test_relative_imports_are_seen():
    found = set(_imports(PKG / "runtime.py"))
    assert "edgeinf.transport._util" in found  # from .transport import _util
    assert "edgeinf.package" in found


# Ranks: a module may import modules of its rank or lower (longest matching prefix wins).
RANKS = {
    "edgeinf.errors": 0, "edgeinf.types": 0, "edgeinf.config": 0, "edgeinf.device": 0,
    "edgeinf._native": 1, "edgeinf._kernels": 1, "edgeinf.codec": 1, "edgeinf.preprocess": 1,
    "edgeinf.confidence": 1, "edgeinf.imagecodec": 1,
    "edgeinf.plan": 2, "edgeinf.controller": 2,  # the pure decision code: values in, values out
    "edgeinf.backends": 3, "edgeinf.package": 3, "edgeinf.split": 3, "edgeinf.zoo": 3, "edgeinf.models": 3,
    "edgeinf.photos": 3, "edgeinf.profiling": 3,
    "edgeinf.bottleneck": 3,  # teacher conversion, training, export, calibration (torch: train time only)
    # dynamic/: manifest reading, pure policy and fitting are model-layer; the digits and hand
    # wrappers, declaring and calibrating run edgeinf.local executors (orchestration)
    "edgeinf.dynamic": 5, "edgeinf.dynamic.variants": 3, "edgeinf.dynamic.branch": 3,
    "edgeinf.dynamic.calibrate": 3, "edgeinf.dynamic.macs": 3, "edgeinf.dynamic.digits": 3,
    "edgeinf.dynamic.video": 3,
    # llm/: the engine-side pieces (sampling, worker sessions, model files) are model-layer;
    # the generator and the remote session use the transport client
    "edgeinf.llm": 5, "edgeinf.llm.sampling": 3, "edgeinf.llm.sessions": 3, "edgeinf.llm.models": 3,
    "edgeinf.transport": 4, "edgeinf.netem": 4,
    "edgeinf.runtime": 5, "edgeinf.local": 5, "edgeinf.adaptive": 5, "edgeinf.worker": 5,
    "edgeinf.evaluation": 6,
    "edgeinf.bench": 7,  # suites are CLI subcommands
    "edgeinf.cli": 7, "edgeinf.__main__": 7, "edgeinf": 7,
    "edgeinf.daemon": 7,  # the device daemon: a process, like the CLI
    # scale/: the Ray Serve front and replicas run Worker machinery (orchestration); the
    # autoscaling and capacity arithmetic is pure
    "edgeinf.scale": 5, "edgeinf.scale.policy": 2,
}


def _rank(mod: str):
    parts = mod.split(".")
    for n in range(len(parts), 0, -1):
        r = RANKS.get(".".join(parts[:n]))
        if r is not None and (n > 1 or mod == "edgeinf"):
            return r
    return None


def test_every_module_is_ranked():
    unranked = [_module_name(p) for p in PKG.rglob("*.py") if _rank(_module_name(p)) is None]
    assert not unranked, f"place these in a layer (RANKS here, docs/architecture.md): {unranked}"


def test_imports_point_down():
    bad = []
    for p in PKG.rglob("*.py"):
        me = _module_name(p)
        if me == "edgeinf":
            continue  # the facade re-exports from every layer, lazily
        for mod in _imports(p):
            if mod.startswith("edgeinf") and mod != "edgeinf":
                r = _rank(mod)
                if r is not None and r > _rank(me):
                    bad.append(f"{me} (rank {_rank(me)}) imports {mod} (rank {r})")
    assert not bad, "\n".join(bad)


def test_backends_know_nothing_of_the_network():
    for p in (PKG / "backends").glob("*.py"):
        assert not any(m.startswith("zmq") or "transport" in m for m in _imports(p)), p


def test_no_unsafe_deserialisation_in_library():
    for p in PKG.rglob("*.py"):
        text = p.read_text()
        assert "allow_pickle=True" not in text and "recv_pyobj" not in text, p
        assert "pickle.load" not in text, p


# Modules that must stay pure: no sockets, processes or engines (docs/architecture.md).
PURE = {
    "transport/protocol.py": ("zmq", "socket", "subprocess", "onnxruntime", "ai_edge_litert"),
    "controller/policy.py": ("zmq", "socket", "subprocess", "time", "psutil", "onnxruntime"),
    "controller/estimators.py": ("zmq", "socket", "subprocess", "onnxruntime"),
    "controller/costmodel.py": ("zmq", "socket", "subprocess", "onnxruntime"),
    "controller/loop.py": ("zmq", "socket", "subprocess", "onnxruntime", "time"),
    "codec.py": ("zmq", "socket", "onnxruntime"),
    "split/graph.py": ("zmq", "socket"),
}


def test_pure_modules_import_no_io():
    for rel, banned in PURE.items():
        p = PKG / rel
        assert p.exists(), f"{rel} moved: update docs/architecture.md and this table"
        for mod in _imports(p):
            root = mod.split(".")[0]
            assert root not in banned, f"{rel} imports {mod}"


def test_the_evaluation_harness_stays_outside_the_request_path():
    for p in PKG.rglob("*.py"):
        me = _module_name(p)
        if _rank(me) <= 5:
            assert not any(m.startswith("edgeinf.evaluation") for m in _imports(p)), f"{me} imports the harness"
