"""Split engine on the real mediapipe .tflite models: every cut verifies; files are pruned."""
import pytest

from edgeinf import zoo
from edgeinf.split import open_model, verify_cuts

TFLITE = [n for n in zoo.TEST_SET if n in zoo.MEDIAPIPE]


@pytest.mark.parametrize("name", TFLITE)
def test_every_cut_of_mediapipe_model_verifies(name, zoo_path):
    m = open_model(zoo_path(name))
    assert len(m.cuts) >= 20 and any(len(c.tensors) == 1 for c in m.cuts)
    results = verify_cuts(m, n_inputs=1)
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad[:2]
    assert max(r["max_rel_err"] for r in results) <= 1e-5


def test_sides_are_pruned_and_load(zoo_path):
    from ai_edge_litert import schema_py_generated as s

    data = zoo_path("hand_landmark_full").read_bytes()
    m = open_model(zoo_path("hand_landmark_full"))
    early = m.cuts[2]
    head, tail = m.extract(early)
    assert len(head) < 0.1 * len(data) < len(tail) < len(data)  # weights go where they are used
    h = s.ModelT.InitFromPackedBuf(head, 0)
    assert len(h.buffers) < 20 and len(h.subgraphs[0].operators) < 10
    assert [t.name.decode() for t in (h.subgraphs[0].tensors[i] for i in h.subgraphs[0].outputs)] \
        == list(early.tensors)
    # TFLite cuts are tensor sets too: some positions need two tensors
    assert any(len(c.tensors) == 2 for c in m.cuts)
