"""fastnn.onnx: export checked by ONNX Runtime, import of MLP graphs, and precise errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests._require import require
from tests.helpers import assert_missing_module_names_extra

onnx = require("onnx")
ort = require("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastnn as fn  # noqa: E402
from fastnn import cli, presets  # noqa: E402
from fastnn.onnx import DEFAULT_OPSET, from_onnx, to_onnx  # noqa: E402


def _run(proto, x):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def mnist_rows():
    try:
        (x, y), (xt, _) = fn.datasets.load_mnist()
    except fn.datasets.MNISTUnavailableError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    return x[:3000], y[:3000], np.ascontiguousarray(xt[:1000])


def test_onnx_is_the_top_level_package():
    import fastnn.onnx as fonnx
    assert fonnx.onnx is sys.modules["onnx"] and "fastnn" not in fonnx.onnx.__file__


@pytest.mark.parametrize("network", sorted(presets.PRESETS))
def test_reference_networks_match_onnx_runtime_on_mnist(network, mnist_rows):
    x, y, xt = mnist_rows
    model = presets.build(network, seed=0)
    model.fit(x, y, epochs=1, batch_size=presets.PRESETS[network]["batch_size"], verbose=0,
              seed=0)
    proto = to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == DEFAULT_OPSET
    np.testing.assert_allclose(_run(proto, xt), model.predict(xt), rtol=0, atol=1e-5)
    np.testing.assert_allclose(_run(proto, xt[:1]), model.predict(xt[:1]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("acts", [("sigmoid", "relu", "softmax"),
                                  ("tanh", "leaky_relu", "sigmoid"),
                                  ("identity", "leaky_relu", "identity")])
def test_every_activation_and_dtype_round_trips(acts, dtype, rng, backend):
    model = fn.Sequential([fn.Dense(9, acts[0]), fn.Dense(7, acts[1]), fn.Dense(4, acts[2])],
                          input_size=5, dtype=dtype, backend=backend, seed=1)
    proto = to_onnx(model)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    x = rng.normal(size=(13, 5)).astype(dtype)
    out = _run(proto, x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, model.predict(x), rtol=0,
                               atol=1e-5 if dtype == "float32" else 1e-9)  # ORT tanh: ~1e-10
    back = from_onnx(proto.SerializeToString(), backend=backend)
    assert back.dtype == np.dtype(dtype) and back.loss == model.loss
    assert [lay.activation for lay in back.layers] == list(acts)
    assert np.array_equal(back.params, model.params)
    assert np.array_equal(back.predict(x), model.predict(x))


def test_save_onnx_the_cli_and_fine_tuning_an_import(tmp_path, rng):
    model = presets.build("digits-16", input_size=20, n_classes=3, seed=0)
    model.save(tmp_path / "m.fnn")
    assert cli.main(["export", str(tmp_path / "m.fnn"), str(tmp_path / "cli.onnx")]) == 0
    model.save_onnx(tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    back = from_onnx(tmp_path / "m.onnx", optimizer=fn.SGD(0.5))
    x = rng.normal(size=(200, 20)).astype(np.float32)
    y = x[:, :3].argmax(1)
    first = back.evaluate(x, y).loss
    back.fit(x, y, epochs=5, batch_size=10, verbose=0)
    assert back.evaluate(x, y).loss < first
    assert cli.main(["export", str(tmp_path / "missing.fnn"), str(tmp_path / "x.onnx")]) == 1


def test_older_opsets_and_bad_opset(rng):
    model = presets.build("mlp-128", input_size=12, n_classes=4, seed=0)
    x = rng.normal(size=(3, 12)).astype(np.float32)
    proto = to_onnx(model, opset=13)
    np.testing.assert_allclose(_run(proto, x), model.predict(x), atol=1e-6)
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, opset=7)
    with pytest.raises(TypeError, match="Sequential"):
        to_onnx(object())


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_fitted_estimators_export(rng):
    require("sklearn")
    from fastnn.sklearn import MLPClassifier, MLPRegressor

    x = rng.normal(size=(120, 6))
    for est, out in ((MLPClassifier(max_iter=5).fit(x, x[:, :3].argmax(1)), "predict_proba"),
                     (MLPRegressor(max_iter=5).fit(x, x[:, :2]), "predict")):
        got = _run(to_onnx(est), x.astype(np.float32))
        np.testing.assert_allclose(got, getattr(est, out)(x), atol=1e-5)


# ---- graphs written by others ---------------------------------------------------------------
def _graph(nodes, inits, in_shape, n_out, elem=TensorProto.FLOAT, opset=17, extra_inputs=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", elem, in_shape), *extra_inputs],
        [helper.make_tensor_value_info("y", elem, ["N", n_out])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=8)


def _torch_style(rng):
    """As torch.onnx.export writes nn.Sequential(Flatten, Linear, ReLU, Linear, Softmax)."""
    inits = {"fc1.weight": rng.normal(size=(16, 36)).astype(np.float32),
             "fc1.bias": rng.normal(size=16).astype(np.float32),
             "fc2.weight": rng.normal(size=(4, 16)).astype(np.float32),
             "fc2.bias": rng.normal(size=4).astype(np.float32)}
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="/Flatten", axis=1),
             helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["h"], name="/fc1/Gemm",
                              transB=1, alpha=1.0, beta=1.0),
             helper.make_node("Relu", ["h"], ["r"], name="/relu/Relu"),
             helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["z"], name="/fc2/Gemm",
                              transB=1),
             helper.make_node("Softmax", ["z"], ["y"], name="/Softmax", axis=1)]
    return _graph(nodes, inits, ["N", 1, 6, 6], 4)


def test_a_torch_style_graph_imports_and_matches_onnx_runtime(rng):
    proto = _torch_style(rng)
    model = from_onnx(proto)
    assert [lay.activation for lay in model.layers] == ["relu", "softmax"]
    x = rng.normal(size=(10, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x.reshape(10, -1)), _run(proto, x), atol=1e-6)
    assert model.loss == "cross_entropy"


def test_matmul_add_reshape_identity_and_scaled_gemm_import(rng):
    w1, b1 = rng.normal(size=(8, 5)), rng.normal(size=(1, 5))
    w2, w3, b3 = rng.normal(size=(5, 6)), rng.normal(size=(3, 6)), rng.normal(size=3)
    inits = {"w1": w1, "b1": b1, "w2": w2, "w3": w3, "b3": b3,
             "shape": np.array([-1, 8], dtype=np.int64)}
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["flat"], name="reshape"),
             helper.make_node("MatMul", ["flat", "w1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["b1", "m1"], ["a1"], name="add1"),    # bias first
             helper.make_node("Tanh", ["a1"], ["t1"], name="tanh"),
             helper.make_node("Identity", ["t1"], ["i1"], name="id"),
             helper.make_node("MatMul", ["i1", "w2"], ["m2"], name="mm2"),  # no bias
             helper.make_node("LeakyRelu", ["m2"], ["l2"], name="leaky", alpha=0.01),
             helper.make_node("Gemm", ["l2", "w3", "b3"], ["y"], name="gemm", transB=1,
                              alpha=0.5, beta=2.0)]
    proto = _graph(nodes, inits, ["N", 2, 4], 3, elem=TensorProto.DOUBLE)
    model = from_onnx(proto)
    assert model.dtype == np.float64 and model.loss == "mse"
    assert [lay.activation for lay in model.layers] == ["tanh", "leaky_relu", "identity"]
    x = rng.normal(size=(7, 2, 4))
    np.testing.assert_allclose(model.predict(x.reshape(7, 8)), _run(proto, x), atol=1e-12)
    assert from_onnx(proto, dtype="float32").dtype == np.float32


def _edit(proto, index, node):
    proto.graph.node[index].CopyFrom(node)
    return proto


@pytest.mark.parametrize("case, match", [
    ("conv", "'/relu/Relu' \\(op type Conv\\)"),
    ("leaky", "op type LeakyRelu.*alpha 0.2"),
    ("transA", "op type Gemm.*transA"),
    ("branch", "'/fc2/Gemm' \\(op type Gemm\\): it does not continue the chain"),
    ("bias", "bias 'fc2.bias' has shape \\(5,\\)"),
    ("weights", "layer 1 weights have shape \\(15, 4\\), the previous layer gives 16"),
    ("softmax", "Softmax is supported on the output layer only"),
    ("features", "has \\[1, 7, 6\\] features per sample, the first layer's weights need 36"),
    ("external", "external file"),
    ("nan", "NaN or inf"),
    ("two inputs", "one input and one output"),
    ("method name", "No Op registered for _weights.*\\(node 'x', op type _weights\\)"),
])
def test_graphs_that_are_not_supported_mlps_get_a_precise_value_error(case, match, rng):
    proto = _torch_style(rng)
    inits = {t.name: t for t in proto.graph.initializer}
    if case == "conv":
        _edit(proto, 2, helper.make_node("Conv", ["h", "fc1.weight"], ["r"], name="/relu/Relu"))
    elif case == "leaky":
        _edit(proto, 2, helper.make_node("LeakyRelu", ["h"], ["r"], name="l", alpha=0.2))
    elif case == "transA":
        proto.graph.node[1].attribute.append(helper.make_attribute("transA", 1))
    elif case == "branch":
        _edit(proto, 3, helper.make_node("Gemm", ["h", "fc2.weight", "fc2.bias"], ["z"],
                                         name="/fc2/Gemm", transB=1))
    elif case == "bias":
        inits["fc2.bias"].CopyFrom(numpy_helper.from_array(np.zeros(5, np.float32), "fc2.bias"))
    elif case == "weights":
        inits["fc2.weight"].CopyFrom(numpy_helper.from_array(np.zeros((4, 15), np.float32),
                                                             "fc2.weight"))
    elif case == "softmax":
        _edit(proto, 2, helper.make_node("Softmax", ["h"], ["r"], name="sm"))
    elif case == "features":
        proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 7
    elif case == "external":
        t = inits["fc1.bias"]
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value="/etc/passwd")
    elif case == "nan":
        inits["fc1.bias"].CopyFrom(numpy_helper.from_array(np.full(16, np.nan, np.float32),
                                                           "fc1.bias"))
    elif case == "method name":       # an op type spelling a private method of the importer
        _edit(proto, 2, helper.make_node("_weights", ["h", "fc1.weight"], ["r"], name="x"))
    elif case == "two inputs":
        proto.graph.input.append(helper.make_tensor_value_info("z2", TensorProto.FLOAT, [1]))
    with pytest.raises(ValueError, match=match):
        from_onnx(proto)


def test_truncated_empty_and_garbage_files_get_a_value_error(tmp_path, rng):
    data = _torch_style(rng).SerializeToString()
    for cut in list(range(0, len(data), max(1, len(data) // 23))) + [len(data) - 1]:
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.onnx"):
            from_onnx(path)
    with pytest.raises(ValueError, match="not a valid ONNX"):
        from_onnx(b"\xff\x00garbage" * 50)
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "absent.onnx")


def test_float64_weights_too_large_for_float32_are_refused(rng):
    proto = _torch_style(rng)
    big = numpy_helper.from_array(np.full((16, 36), 1e300), "fc1.weight")
    proto.graph.initializer[0].CopyFrom(big)
    with pytest.raises(ValueError, match="overflow float32"):
        from_onnx(proto, dtype="float32")
    assert from_onnx(proto).dtype == np.float64


def test_mutated_files_load_or_raise_value_error(rng):
    data = _torch_style(rng).SerializeToString()
    loaded = 0
    for _ in range(400):
        mutated = bytearray(data)
        for at in rng.integers(0, len(data), size=rng.integers(1, 4)):
            mutated[at] = rng.integers(0, 256)
        try:
            model = from_onnx(bytes(mutated))
        except ValueError:
            continue
        assert np.isfinite(model.params).all()
        loaded += 1
    assert 0 < loaded < 400


def test_a_missing_onnx_names_the_extra():
    assert_missing_module_names_extra("onnx", "onnx")
