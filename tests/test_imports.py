"""Public surface and layering stay as designed (docs/architecture.md)."""
import ast
from pathlib import Path

import edgeinf

PKG = Path(edgeinf.__file__).parent


def test_public_names_are_pinned():
    assert len(edgeinf.__all__) <= 20
    for name in edgeinf.__all__:
        assert hasattr(edgeinf, name), name


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_backends_know_nothing_of_the_network():
    for p in (PKG / "backends").glob("*.py"):
        assert not any(m.startswith("zmq") or "transport" in m for m in _imports(p)), p


def test_no_unsafe_deserialisation_in_library():
    for p in PKG.rglob("*.py"):
        text = p.read_text()
        assert "allow_pickle=True" not in text and "recv_pyobj" not in text, p
        assert "pickle.load" not in text, p
