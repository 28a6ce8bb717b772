"""Pretrained ONNX graphs nobody here exported (PP-OCR via rapidocr-onnxruntime's wheel):
paddle2onnx output with hundreds of Constant nodes, no initializers, dynamic H/W."""
import json

import pytest

from edgeinf.cli import main
from edgeinf.errors import SplitError
from edgeinf.split import open_model, verify_cuts


@pytest.fixture(scope="module")
def ocr(request):
    from edgeinf import zoo
    from edgeinf.errors import ModelError

    try:
        return {n: zoo.path(n) for n in ("ppocr_det", "ppocr_cls")}
    except ModelError as e:  # the wheel comes from PyPI on first use; CI must reach it
        pytest.fail(f"rapidocr-onnxruntime wheel not fetchable (needs the PyPI registry): {e}")


def test_dynamic_dims_need_a_shape_and_say_so(ocr):
    m = open_model(ocr["ppocr_det"])
    assert m.cuts and any("--shape x=1x3xNxN" in n for n in m.notes)
    with pytest.raises(SplitError, match=r"dynamic dims: pass --shape x=1x3xNxN"):
        verify_cuts(m, m.cuts[:1])


@pytest.mark.parametrize("name,shape,every", [("ppocr_det", "1x3x256x256", 6), ("ppocr_cls", "1x3x48x192", 8)])
def test_pretrained_ocr_cuts_verify(ocr, name, shape, every):
    m = open_model(ocr[name], shapes={"x": shape})
    consts = sum(1 for n in m.reader.model.graph.node if n.op_type == "Constant")
    assert consts > 300 and not m.reader.model.graph.initializer  # weights are Constant nodes
    sample = m.cuts[::every] + [c for c in m.cuts if len(c.tensors) == 2][:3]
    results = verify_cuts(m, sample, n_inputs=2)
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:2]
    head, tail = m.extract(m.cuts[len(m.cuts) // 2])
    assert len(head) + len(tail) < 1.1 * len(m.data)  # no Constant weight copied to both sides


def test_cli_on_pretrained_model(ocr, capsys):
    assert main(["split", str(ocr["ppocr_cls"]), "--list", "--json", "--shape", "x=1x3x48x192"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["cuts"]) > 100 and all(c["bytes"] > 0 for c in out["cuts"])
