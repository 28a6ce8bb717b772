"""Real ONNX Runtime and LiteRT sessions on real model files, through one API."""
import threading

import numpy as np
import pytest

import edgeinf
from edgeinf import zoo
from edgeinf.errors import BackendError, InputError, ModelError

MEDIAPIPE_TEST = [n for n in zoo.TEST_SET if n != "mobilenetv2"]


@pytest.fixture(scope="module")
def mobilenet(mobilenet_path):
    return edgeinf.load(mobilenet_path, threads=1)


def test_mobilenet_specs_and_run(mobilenet):
    (inp,) = mobilenet.inputs
    assert inp.name == "input" and inp.shape == ("batch", 3, 224, 224) and inp.dtype == np.float32
    assert mobilenet.outputs[0].shape == ("batch", 1000)
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    out = mobilenet(x)
    assert list(out) == ["logits"] and out["logits"].shape == (2, 1000)
    assert np.isfinite(out["logits"]).all() and out["logits"].std() > 0
    # positional and named calls agree, and batch rows are independent
    np.testing.assert_array_equal(out["logits"], mobilenet.run({"input": x})["logits"])
    np.testing.assert_allclose(out["logits"][1:], mobilenet(x[1:])["logits"], rtol=1e-4, atol=1e-4)


def test_mobilenet_build_is_reproducible(tmp_path):
    from edgeinf.models import mobilenetv2

    a, b = mobilenetv2.build(seed=0), mobilenetv2.build(seed=0)
    assert a.SerializeToString() == b.SerializeToString()
    assert mobilenetv2.build(seed=1).SerializeToString() != a.SerializeToString()
    n_params = sum(int(np.prod(t.dims)) for t in a.graph.initializer)
    assert 3.3e6 < n_params < 3.7e6  # MobileNetV2 1.0 has ~3.5 M parameters


@pytest.mark.parametrize("name", MEDIAPIPE_TEST)
def test_mediapipe_models_run_through_litert(name, zoo_path):
    m = edgeinf.load(zoo_path(name), threads=2)
    assert m.backend == "litert"
    (inp,) = m.inputs
    assert inp.dtype == np.float32 and inp.shape[-1] == 3 and len(inp.shape) == 4
    x = np.random.default_rng(0).uniform(0, 1, inp.concrete_shape()).astype(np.float32)
    out = m(x)
    assert set(out) == {s.name for s in m.outputs} and len(out) >= 1
    for s in m.outputs:
        assert out[s.name].shape == s.concrete_shape() and np.isfinite(out[s.name]).all()
    # same input, same session, same answer: sessions are reused, not re-created
    again = m(x)
    for k in out:
        np.testing.assert_array_equal(out[k], again[k])


def test_litert_from_bytes_equals_from_file(zoo_path):
    p = zoo_path("hand_landmark_lite")
    a, b = edgeinf.load(p), edgeinf.load(p.read_bytes())
    x = np.random.default_rng(0).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)
    for k, v in a(x).items():
        np.testing.assert_array_equal(v, b(x)[k])


def test_litert_is_safe_from_threads(zoo_path):
    m = edgeinf.load(zoo_path("hand_landmark_lite"))
    xs = [np.full((1, 224, 224, 3), i / 8, np.float32) for i in range(8)]
    expected = [m(x) for x in xs]
    errors = []

    def worker(i):
        for _ in range(5):
            got = m(xs[i])
            if not all(np.array_equal(got[k], expected[i][k]) for k in got):
                errors.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join(timeout=60) for t in threads]
    assert not errors


def test_wrong_input_name_names_the_spec(mobilenet):
    with pytest.raises(InputError, match=r"input: batchx3x224x224 float32.*unknown: \['image'\]"):
        mobilenet.run({"image": np.zeros((1, 3, 224, 224), np.float32)})


def test_wrong_shape_names_expected_and_given(mobilenet):
    with pytest.raises(InputError, match=r"batchx3x224x224.*given shape 1x3x128x128"):
        mobilenet(np.zeros((1, 3, 128, 128), np.float32))


def test_wrong_dtype_names_expected_and_given(mobilenet):
    with pytest.raises(InputError, match=r"float32.*given dtype float64"):
        mobilenet(np.zeros((1, 3, 224, 224)))


def test_too_many_positional_inputs(mobilenet):
    x = np.zeros((1, 3, 224, 224), np.float32)
    with pytest.raises(InputError, match="takes 1 input"):
        mobilenet(x, x)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        edgeinf.load(tmp_path / "nope.onnx")


def test_unknown_format(tmp_path):
    p = tmp_path / "model.bin"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match=r"\.bin.*known"):
        edgeinf.load(p)


def test_corrupt_onnx_is_a_backend_error_with_context(tmp_path):
    p = tmp_path / "broken.onnx"
    p.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(BackendError, match=r"onnxruntime could not load .*broken\.onnx"):
        edgeinf.load(p)


def test_corrupt_tflite_is_a_backend_error_with_context(tmp_path):
    p = tmp_path / "broken.tflite"
    p.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 100)
    with pytest.raises(BackendError, match=r"litert could not load"):
        edgeinf.load(p)


def test_unknown_backend_name(mobilenet_path):
    with pytest.raises(BackendError, match="available: onnxruntime, litert, llamacpp"):
        edgeinf.backends.get_class("tensorrt")


def test_gguf_is_recognised_and_a_broken_one_refused_clearly(tmp_path):
    p = tmp_path / "tiny.gguf"
    p.write_bytes(b"GGUF" + b"\x00" * 60)
    assert edgeinf.backends.sniff(p) == "llamacpp"
    with pytest.raises(ModelError, match="llama.cpp could not load"):  # real GGUFs: tests/test_llm.py
        edgeinf.load(p)


def test_thread_count_is_applied(mobilenet_path):
    m = edgeinf.load(mobilenet_path, threads=1)
    assert m.session.get_session_options().intra_op_num_threads == 1


def test_a_model_of_two_inputs_takes_one_dict_as_run_does(tmp_path):
    """``model({...})`` as ``rt.run({...})``: the dict was taken as the first input and the
    error named the second as missing."""
    from byom_models import two_input

    m = edgeinf.load(two_input(tmp_path / "two.onnx"), threads=1)
    rng = np.random.default_rng(0)
    feeds = {"image": rng.random((2, 3, 64, 64), np.float32), "meta": rng.random((2, 16), np.float32)}
    want = m.run(feeds)["score"]
    assert want.shape[0] == 2 and want.std() > 0
    np.testing.assert_array_equal(m(feeds)["score"], want)
    np.testing.assert_array_equal(m(feeds["image"], feeds["meta"])["score"], want)
    np.testing.assert_array_equal(m({"image": feeds["image"]}, meta=feeds["meta"])["score"], want)
    with pytest.raises(InputError, match=r"missing: \['meta'\]"):
        m({"image": feeds["image"]})
