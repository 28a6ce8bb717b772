"""transport._util.pack: integer tensors cross exactly whatever the codec, per-tensor channel
axes reach the codec; checked on real models through a real worker process over TCP."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from edgeinf import codec as C
from edgeinf.errors import ConfigError
from edgeinf.package import open_package
from edgeinf.split import build_package
from edgeinf.transport import Client, Outcome, _util, protocol, testing
from edgeinf.transport.protocol import Kind

CODEC = "int8-pc+lz4"
BIG = 2**53 + 1  # not a float64, let alone a float32 or an int8 code


def _w(rng, name, *shape):
    return nh.from_array((rng.standard_normal(shape) * (2.0 / np.prod(shape[1:])) ** 0.5).astype(np.float32), name)


def _conv(x, w, y):
    return [h.make_node("Conv", [x, w], [y + "_c"], pads=[1, 1, 1, 1]), h.make_node("Relu", [y + "_c"], [y])]


def _model(path, nodes, ins, outs, inits):
    m = h.make_model(h.make_graph(nodes, path.stem, ins, outs, inits), opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def shape_model(path):
    """Shape(a) feeds a later Reshape: a cut crosses the activation and an int64 shape tensor."""
    rng = np.random.default_rng(2)
    nodes = _conv("x", "w1", "a") + [h.make_node("Shape", ["a"], ["shp"])] + _conv("a", "w2", "b") + [
        h.make_node("Flatten", ["b"], ["fb"]), h.make_node("Reshape", ["fb", "shp"], ["r"]),
        h.make_node("Add", ["r", "a"], ["y"])]
    return _model(path, nodes, [h.make_tensor_value_info("x", T.FLOAT, [1, 4, 8, 8])],
                  [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])],
                  [_w(rng, "w1", 4, 4, 3, 3), _w(rng, "w2", 4, 4, 3, 3)])


def ids_model(path):
    """An int64 id vector beside an image; ids_out = (ids + 1) * 2 must come back exact."""
    rng = np.random.default_rng(3)
    nodes = _conv("x", "w1", "a") + _conv("a", "w2", "y") + [
        h.make_node("Add", ["ids", "one"], ["j"]), h.make_node("Mul", ["j", "two"], ["ids_out"])]
    return _model(path, nodes, [h.make_tensor_value_info("x", T.FLOAT, [1, 4, 8, 8]),
                                h.make_tensor_value_info("ids", T.INT64, [1, 6])],
                  [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8]),
                   h.make_tensor_value_info("ids_out", T.INT64, [1, 6])],
                  [_w(rng, "w1", 4, 4, 3, 3), _w(rng, "w2", 4, 4, 3, 3),
                   nh.from_array(np.array(1, np.int64), "one"), nh.from_array(np.array(2, np.int64), "two")])


def _mixed_cut(pkg):
    """The cut crossing exactly one int64 tensor and one 4-D float32 activation."""
    for cut in pkg.cuts.values():
        kinds = sorted((t.dtype.kind, len(t.shape)) for t in cut.tensors)
        if len(kinds) == 2 and kinds[0][0] == "f" and kinds[0][1] == 4 and kinds[1][0] == "i":
            return cut
    raise AssertionError(f"no float+int64 cut in {[[str(t.dtype) for t in c.tensors] for c in pkg.cuts.values()]}")


@pytest.fixture(scope="module", params=[shape_model, ids_model])
def pkg_dir(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param.__name__)
    return build_package(request.param(root / "m.onnx"), root / "pkg", at="all")


@pytest.fixture(scope="module")
def worker(pkg_dir):
    with testing.worker(pkg_dir) as w:
        yield w


def _inputs(pkg):
    rng = np.random.default_rng(0)
    out = {"x": rng.random((1, 4, 8, 8), dtype=np.float32)}
    if "ids" in {s.name for s in pkg.inputs}:
        out["ids"] = BIG + np.arange(6, dtype=np.int64).reshape(1, 6) * 7
    return out


def test_int64_crosses_exact_and_float_within_codec_tolerance_through_a_worker(pkg_dir, worker):
    pkg = open_package(pkg_dir)
    cut = _mixed_cut(pkg)
    crossing = pkg.session("head", cut.id).run(_inputs(pkg))
    axes = cut.channel_axes()
    specs, frames = _util.pack(crossing, CODEC, axes=axes)
    ints = [s for s in specs if np.dtype(s["dtype"]).kind == "i"]
    assert len(ints) == 1 and ints[0]["codec"] == "raw", specs  # the int64 goes raw, and says so
    floats = [s for s in specs if s["dtype"] == "float32"]
    assert len(floats) == 1 and "codec" not in floats[0]
    with Client(worker.endpoint) as cl:
        assert cl.wait_ready(10), "worker never answered a heartbeat"
        reply = cl.infer(pkg.hash, cut.id, specs, frames, codec=CODEC, timeout=5.0)
    assert reply.outcome is Outcome.OK, (reply.outcome, reply.error_code, reply.error)
    got = _util.unpack(reply.message)
    tail = pkg.session("tail", cut.id)
    exact = tail.run(crossing)
    # what the worker must have run on: the int64 as sent, the float through the codec
    f = floats[0]["name"]
    via_codec = {**crossing, f: C.decode(C.encode(crossing[f], CODEC, axis=axes.get(f)))}
    here = tail.run(via_codec)
    assert np.allclose(got["y"], here["y"], rtol=1e-5, atol=1e-6), "the transport added error of its own"
    rel = np.abs(got["y"] - exact["y"]).max() / np.abs(exact["y"]).max()
    assert 0 < rel < 2e-2, f"int8-pc error {rel:.3g}: not the codec's (0: no codec applied at all)"
    if "ids_out" in got:
        assert got["ids_out"].dtype == np.int64
        assert np.array_equal(got["ids_out"], exact["ids_out"]) and got["ids_out"][0, 0] == (BIG + 1) * 2


def test_every_lossy_codec_leaves_integers_and_bools_raw():
    arrays = {"ids": np.array([BIG, -3, 0], np.int64), "mask": np.array([True, False]),
              "u8": np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3), "x": np.linspace(-1, 1, 24, dtype=np.float32)}
    for name in ("fp16", "int8", "int4-pc+zstd", "int2", "raw+lz4"):
        specs, frames = _util.pack(arrays, name)
        assert [s.get("codec") for s in specs] == ["raw", "raw", "raw", None], name
        msg = protocol.decode(_bytes(protocol.encode(Kind.INFER, _meta(name, specs), frames)))
        assert msg.codecs == ["raw", "raw", "raw", name]
        out = _util.unpack(msg)
        for k in ("ids", "mask", "u8"):
            assert out[k].dtype == arrays[k].dtype and np.array_equal(out[k], arrays[k]), (name, k)
        assert np.abs(out["x"] - arrays["x"]).max() <= 0.7, name  # lossy, but decoded by its codec
    specs, _ = _util.pack({"u8": arrays["u8"]}, "jpeg90")  # image codecs too: an integer image goes raw
    assert specs[0]["codec"] == "raw"


def test_axes_reach_the_codec_and_unknown_names_are_refused():
    x = np.random.default_rng(0).random((1, 6, 5, 3), dtype=np.float32)
    for axes, want in ((None, 1), ({"x": -1}, 3), ({"x": 2}, 2)):
        _, frames = _util.pack({"x": x}, "int8-pc", axes=axes)
        assert C.header_info(frames[0]).axis == want, axes
    with pytest.raises(ConfigError, match="not sent"):
        _util.pack({"x": x}, "int8-pc", axes={"y": -1})


def test_tensor_codec_must_be_a_short_string():
    specs = [{"name": "x", "dtype": "float32", "shape": [2], "codec": ["raw"]}]
    frames = _bytes(protocol.encode(Kind.INFER, _meta("fp16", specs), [b"\0" * 8]))
    with pytest.raises(protocol.BadMetadata, match="codec"):
        protocol.decode(frames)


def _meta(codec, specs):
    return {"id": 1, "budget_ms": 10.0, "pkg": "p", "codec": codec, "tensors": specs}


def _bytes(frames):
    return [f.tobytes() if isinstance(f, np.ndarray) else bytes(f) for f in frames]
