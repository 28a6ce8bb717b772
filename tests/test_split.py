"""Split engine on ONNX: cut discovery, extraction, exact verification, CLI."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeinf.cli import main
from edgeinf.errors import SplitError
from edgeinf.split import open_model, verify_cuts


@pytest.fixture(scope="module")
def mnv2(mobilenet_path):
    return open_model(mobilenet_path)


def test_cuts_are_found_and_ids_are_stable(mnv2, mobilenet_path):
    single = [c for c in mnv2.cuts if len(c.tensors) == 1]
    multi = [c for c in mnv2.cuts if len(c.tensors) == 2]
    # 17 bottleneck blocks, 10 of them residual: single cuts between layers, pairs inside residuals
    assert len(single) >= 45 and len(multi) >= 40
    adds = {n.inputs[0] for n in mnv2.graph.nodes if n.op == "Add"}  # the skip branches
    assert all(set(c.tensors) & adds for c in multi), "every 2-tensor cut carries a residual skip"
    again = open_model(mobilenet_path)
    assert [c.id for c in again.cuts] == [c.id for c in mnv2.cuts]
    assert len({c.id for c in mnv2.cuts}) == len(mnv2.cuts)
    assert "batch" in mnv2.notes[0]  # the symbolic batch dim defaulted to 1, and it says so


def test_every_cut_verifies_exactly(mnv2):
    results = verify_cuts(mnv2, n_inputs=1)
    assert len(results) == len(mnv2.cuts)
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad[:3]
    assert max(r["max_rel_err"] for r in results) <= 1e-5


def test_sides_carry_only_the_weights_they_use(mnv2):
    cut = mnv2.cuts[len(mnv2.cuts) // 2]
    head, tail = (onnx.load_from_string(b) for b in mnv2.extract(cut))
    onnx.checker.check_model(head)
    onnx.checker.check_model(tail)
    hw = {i.name for i in head.graph.initializer}
    tw = {i.name for i in tail.graph.initializer}
    full = {i.name for i in mnv2.reader.model.graph.initializer}
    assert hw and tw and not hw & tw and hw | tw == full
    # the shared Clip bounds are Constant nodes: each side gets its own copy
    for side in (head, tail):
        assert {"clip_min", "clip_max"} <= {o for n in side.graph.node if n.op_type == "Constant" for o in n.output}
    assert [o.name for o in head.graph.output] == [i.name for i in tail.graph.input] == list(cut.tensors)


def test_shape_option_scales_bytes_and_keeps_dynamic_batch(mobilenet_path, mnv2):
    m2 = open_model(mobilenet_path, shapes={"input": "2x3x224x224"})
    cut = m2.cut(mnv2.cuts[5].id)
    assert m2.crossing_bytes(cut) == 2 * mnv2.crossing_bytes(mnv2.cuts[5])
    import edgeinf

    head = edgeinf.load(mnv2.extract(mnv2.cuts[5])[0])
    assert head.inputs[0].shape[0] == "batch"  # the extracted head still takes any batch
    out = head(np.zeros((3, 3, 224, 224), np.float32))
    assert next(iter(out.values())).shape[0] == 3


def test_bad_shape_and_unknown_cut_are_named(mobilenet_path, mnv2):
    with pytest.raises(SplitError, match=r"no cut 'c010-0000'.*nearest: \['c010-"):
        mnv2.cut("c010-0000")
    with pytest.raises(SplitError, match="does not fit input"):
        open_model(mobilenet_path, shapes={"input": "1x3x100"})
    with pytest.raises(SplitError, match=r"names input 'imput'.*\['input'\]"):
        open_model(mobilenet_path, shapes={"imput": "1x3x224x224"})


def _if_model(path):
    """x -> Relu -> If(sum(a) > 0: Sigmoid(a) else Neg(a)) -> Relu; the branches read `a` implicitly."""
    then_g = helper.make_graph([helper.make_node("Sigmoid", ["a"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Neg", ["a"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu0"),
             helper.make_node("ReduceSum", ["a"], ["s"], name="sum", keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"], name="gt"),
             helper.make_node("If", ["cond"], ["b"], name="branch", then_branch=then_g, else_branch=else_g),
             helper.make_node("Relu", ["b"], ["y"], name="relu1")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_control_flow_is_never_cut_through(tmp_path):
    m = open_model(_if_model(tmp_path / "if.onnx"))
    sets = [set(c.tensors) for c in m.cuts]
    assert {"a"} in sets and {"b"} in sets and {"a", "cond"} in sets
    assert any("branch (If) is never cut through" in n for n in m.notes)
    assert all(r["ok"] for r in verify_cuts(m, n_inputs=1))  # the If's implicit input crosses too


def test_cli_list_and_verify_json(capsys, mnv2):
    assert main(["split", "mobilenetv2", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["cuts"]) == len(mnv2.cuts)
    first = listed["cuts"][0]
    assert first["bytes"] == 1 * 32 * 112 * 112 * 4 and first["tensors"] == ["conv_1_out"]
    at = ",".join(c["id"] for c in listed["cuts"][::40])
    assert main(["split", "mobilenetv2", "--verify", "--at", at, "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["verified"] is True and len(checked["cuts"]) == len(at.split(","))
    assert all(c["ok"] and c["max_abs_err"] is not None for c in checked["cuts"])


def test_cli_package_and_errors(tmp_path, capsys, mnv2):
    from edgeinf.package import open_package

    assert main(["split", "mobilenetv2", "--at", mnv2.cuts[0].id, "-o", str(tmp_path / "p")]) == 0
    assert list(open_package(tmp_path / "p").cuts) == [mnv2.cuts[0].id]
    assert main(["split", "mobilenetv2", "--at", "c001-nope", "-o", str(tmp_path / "q")]) == 1
    assert "nearest" in capsys.readouterr().err
