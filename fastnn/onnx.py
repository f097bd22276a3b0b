"""ONNX export and import for fastnn networks (needs the extra: ``pip install 'fastnn[onnx]'``).

    proto = fastnn.onnx.to_onnx(model)         # onnx.ModelProto: Gemm + activation per layer
    model.save_onnx("model.onnx")
    model = fastnn.onnx.from_onnx("model.onnx")   # an MLP graph from anywhere -> Sequential

Graphs are built with the ``onnx`` helper API, with a dynamic batch dimension, in the model's
dtype (float32 or float64). Import reads the file's bytes itself (never external data files) and
accepts one chain: optional Flatten/Reshape of the input, then per layer Gemm or MatMul (+ Add)
followed by at most one activation. Anything else is a ValueError naming the first node that
does not fit and its op type.
"""

from __future__ import annotations

import os
import re

import numpy as np

try:  # absolute: this module is fastnn.onnx, ``import onnx`` is the top-level package
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:
    raise ImportError("fastnn.onnx needs the onnx package: pip install 'fastnn[onnx]' "
                      f"({exc})") from exc

from . import activations as act
from ._version import __version__

__all__ = ["DEFAULT_OPSET", "from_onnx", "save_onnx", "to_onnx"]

#: The opset ``to_onnx`` writes by default (ONNX 1.13+ / ONNX Runtime 1.14+). Not newer: ONNX
#: Runtime (1.32) has a float64 LeakyRelu kernel only for opsets 16-18.
DEFAULT_OPSET = 18
ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
ONNX_OF = {act.SIGMOID: "Sigmoid", act.RELU: "Relu", act.TANH: "Tanh",
           act.LEAKY_RELU: "LeakyRelu", act.SOFTMAX: "Softmax"}
FASTNN_OF = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
             "Softmax": "softmax"}
SUPPORTED = ("Gemm, MatMul (+ Add), Relu, Sigmoid, Tanh, LeakyRelu (alpha 0.01), Softmax, "
             "Identity, and Flatten/Reshape of the input")


def _sequential(model):
    """A Sequential, or the fitted network inside a fastnn.sklearn estimator."""
    from .model import Sequential

    if isinstance(model, Sequential):
        return model
    inner = getattr(model, "model_", None)
    if isinstance(inner, Sequential):
        return inner
    raise TypeError(f"expected a fastnn.Sequential or a fitted fastnn.sklearn estimator, "
                    f"got {type(model).__name__}")


# ---- export ---------------------------------------------------------------------------------
def to_onnx(model, opset: int | None = None) -> onnx.ModelProto:
    """The network as an ONNX model: input 'input' (N, n_in), output 'output' (N, n_out).

    The output is what ``model.predict`` returns (probabilities for softmax/sigmoid outputs).
    For a fitted ``fastnn.sklearn`` estimator it is the network output: ``predict_proba``'s
    positive column for a binary classifier, per-class probabilities otherwise.
    """
    net = _sequential(model)
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not 13 <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset: expected 13..{onnx.defs.onnx_opset_version()}, got {opset}")
    elem = ELEM[net.dtype]
    nodes, inits, cur = [], [], "input"
    last = len(net.layers) - 1
    for i, lay in enumerate(net.layers):
        code = act.code_of(lay.activation)
        linear = "output" if i == last and code == act.IDENTITY else f"layer{i}.linear"
        inits += [numpy_helper.from_array(np.array(lay.weights), f"layer{i}.weight"),
                  numpy_helper.from_array(np.array(lay.biases), f"layer{i}.bias")]
        nodes.append(helper.make_node("Gemm", [cur, f"layer{i}.weight", f"layer{i}.bias"],
                                      [linear], name=f"layer{i}.gemm"))
        cur = linear
        if code != act.IDENTITY:
            out = "output" if i == last else f"layer{i}.{lay.activation}"
            attrs = {"alpha": act.LEAKY_SLOPE} if code == act.LEAKY_RELU else {}
            if code == act.SOFTMAX:
                attrs = {"axis": -1}
            nodes.append(helper.make_node(ONNX_OF[code], [cur], [out],
                                          name=f"layer{i}.{lay.activation}", **attrs))
            cur = out
    graph = helper.make_graph(
        nodes, "fastnn", [helper.make_tensor_value_info("input", elem, ["N", net.input_size])],
        [helper.make_tensor_value_info("output", elem, ["N", net.output_size])],
        initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="fastnn",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(proto, {"fastnn.loss": net.loss})
    onnx.checker.check_model(proto)
    return proto


def save_onnx(model, path, opset: int | None = None) -> None:
    """Write ``to_onnx(model)`` to ``path`` (atomically: a crash never leaves half a file)."""
    from ._atomic import atomic_write_bytes
    atomic_write_bytes(os.fspath(path), to_onnx(model, opset).SerializeToString())


# ---- import ---------------------------------------------------------------------------------
def _load_proto(source):
    """Parse (never reading external data), refuse external tensors, run onnx.checker."""
    if isinstance(source, onnx.ModelProto):
        proto, src = source, "<ModelProto>"
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data, src = bytes(source), "<bytes>"
        else:
            src = os.fspath(source)
            with open(src, "rb") as f:
                data = f.read()
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise ValueError(f"{src}: not a valid ONNX file ({type(exc).__name__}: {exc})"
                             ) from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise ValueError(f"{src}: not a valid ONNX model (no graph nodes; truncated or empty?)")
    tensors = list(proto.graph.initializer) + [a.t for n in proto.graph.node
                                               for a in n.attribute if a.HasField("t")]
    for t in tensors:
        if t.data_location == TensorProto.EXTERNAL:
            raise ValueError(f"{src}: tensor {t.name!r} keeps its data in an external file; "
                             "fastnn imports self-contained ONNX files only")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ValueError(f"{src}: invalid ONNX model (truncated or corrupt?): "
                         f"{_checker_message(exc)}") from None
    return proto, src


def _checker_message(exc):
    """onnx.checker's message on one line, its node context as "node 'name', op type T"."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    match = re.search(r"==> Context: .*?Name: (.*?) OpType: (\S+)", text)
    if match:
        text = f"{text[:match.start()].strip()} (node {match[1]!r}, op type {match[2]})"
    return text


def _tensor(t, src):
    try:
        return numpy_helper.to_array(t)
    except Exception as exc:  # noqa: BLE001 - malformed raw_data sizes etc.
        raise ValueError(f"{src}: tensor {t.name!r} cannot be read ({exc})") from None


class _Chain:
    """Walks the nodes of an MLP graph, collecting [weights, bias, activation] per layer."""

    def __init__(self, graph, src):
        self.src = src
        self.consts = {t.name: t for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ValueError(f"{src}: an MLP graph has one input and one output, this one has "
                             f"{len(inputs)} inputs and {len(graph.output)} outputs")
        self.input, self.cur = inputs[0], inputs[0].name
        self.output = graph.output[0].name
        self.layers, self.open = [], False   # open: the last layer may still take a bias/act
        self.input_features = None
        self.weight_dtype = None             # of the first layer: the imported model's default

    def fail(self, node, why=""):
        raise ValueError(f"{self.src}: unsupported node {node.name or '(unnamed)'!r} "
                         f"(op type {node.op_type}){': ' + why if why else ''}. fastnn imports "
                         f"MLP graphs made of {SUPPORTED}")

    def const(self, node, name):
        if name not in self.consts:
            self.fail(node, f"input {name!r} is not a constant initializer")
        return _tensor(self.consts[name], self.src)

    def step(self, node):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            self.fail(node, f"domain {node.domain!r}")
        if op == "Constant":
            attr = {a.name: a for a in node.attribute}
            if "value" not in attr or len(node.output) != 1:
                self.fail(node, "only tensor constants are supported")
            self.consts[node.output[0]] = attr["value"].t
            return
        data = [i for i in node.input if i]
        if not data or data[0] != self.cur and not (op == "Add" and self.cur in data):
            self.fail(node, f"it does not continue the chain from {self.cur!r}")
        if len(node.output) != 1:
            self.fail(node, "more than one output")
        handler = self.HANDLERS.get(op)      # exact op types only: never getattr on file text
        if handler is None:
            self.fail(node)
        handler(self, node)
        self.cur = node.output[0]

    def _identity(self, node):
        pass

    def _flatten(self, node):
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if self.layers or axis != 1:
            self.fail(node, "only a Flatten(axis=1) of the graph input is supported")

    def _reshape(self, node):
        shape = self.const(node, node.input[1]) if len(node.input) > 1 else None
        if self.layers or shape is None or shape.shape != (2,) or shape[0] not in (-1, 0) \
                or shape[1] < 1:
            self.fail(node, "only a Reshape of the graph input to (-1, n_features) is supported")
        self.input_features = int(shape[1])

    def _gemm(self, node):
        attr = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attr.get("transA", 0):
            self.fail(node, "transA=1")
        w = self._weights(node)
        w = (w.T if attr.get("transB", 0) else w) * attr.get("alpha", 1.0)
        b = np.zeros(w.shape[1])
        if len(node.input) > 2 and node.input[2]:
            b = self._bias(node, node.input[2], w.shape[1]) * attr.get("beta", 1.0)
        self.layers.append([w, b, "identity"])
        self.open = False

    def _matmul(self, node):
        w = self._weights(node)
        self.layers.append([w, np.zeros(w.shape[1]), "identity"])
        self.open = True

    def _weights(self, node):
        if len(node.input) < 2:
            self.fail(node, "no weight input")
        w = self.const(node, node.input[1])
        if w.ndim != 2 or w.dtype.kind != "f":
            self.fail(node, f"weights must be a 2-D float tensor, got {w.dtype}{list(w.shape)}")
        if self.weight_dtype is None:
            self.weight_dtype = w.dtype
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are refused in check()
            return w.astype(np.float64)

    def _add(self, node):
        if not self.open or len(node.input) != 2:
            self.fail(node, "Add must follow a MatMul")
        other = node.input[1] if node.input[0] == self.cur else node.input[0]
        self.layers[-1][1] = self._bias(node, other, self.layers[-1][0].shape[1])
        self.open = False

    def _bias(self, node, name, n_out):
        b = self.const(node, name).astype(np.float64)
        if b.shape not in ((n_out,), (1, n_out)):
            raise ValueError(f"{self.src}: node {node.name!r} ({node.op_type}): bias {name!r} "
                             f"has shape {b.shape}, the weights need ({n_out},)")
        return b.reshape(n_out)

    def _activation(self, node):
        if not self.layers or self.layers[-1][2] != "identity":
            self.fail(node, "an activation must follow a Gemm or MatMul")
        attr = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "LeakyRelu" and not np.isclose(attr.get("alpha", 0.01),
                                                          act.LEAKY_SLOPE):
            self.fail(node, f"alpha {attr['alpha']:g} (fastnn's leaky_relu slope is "
                            f"{act.LEAKY_SLOPE})")
        if node.op_type == "Softmax" and attr.get("axis", -1) not in (-1, 1):
            self.fail(node, f"axis {attr['axis']}")
        self.layers[-1][2] = FASTNN_OF[node.op_type]
        self.open = False

    HANDLERS = {"Identity": _identity, "Flatten": _flatten, "Reshape": _reshape, "Gemm": _gemm,
                "MatMul": _matmul, "Add": _add, **dict.fromkeys(FASTNN_OF, _activation)}

    def check(self, graph):
        if self.cur != self.output:
            raise ValueError(f"{self.src}: the graph output {self.output!r} is not the end of "
                             f"the layer chain ({self.cur!r})")
        if not self.layers:
            raise ValueError(f"{self.src}: no Gemm or MatMul layer found")
        for i, (w, b, fn) in enumerate(self.layers):
            if i and w.shape[0] != self.layers[i - 1][0].shape[1]:
                raise ValueError(f"{self.src}: layer {i} weights have shape {w.shape}, the "
                                 f"previous layer gives {self.layers[i - 1][0].shape[1]} values")
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ValueError(f"{self.src}: layer {i} weights contain NaN or inf")
            if fn == "softmax" and i != len(self.layers) - 1:
                raise ValueError(f"{self.src}: Softmax is supported on the output layer only")
        n_in = self.layers[0][0].shape[0]
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in self.input.type.tensor_type.shape.dim][1:]
        if dims and None not in dims and int(np.prod(dims)) != n_in or \
                self.input_features not in (None, n_in):
            raise ValueError(f"{self.src}: input {self.input.name!r} has {dims} features per "
                             f"sample, the first layer's weights need {n_in}")


def from_onnx(source, *, loss=None, optimizer="sgd", dtype=None, backend="auto", seed=None):
    """A Sequential from an ONNX MLP (a path, bytes or an ``onnx.ModelProto``).

    ``dtype`` defaults to the weights' dtype (float64 weights give a float64 model, everything
    else float32); ``loss`` to the one fastnn recorded on export, else cross_entropy for a
    softmax output and mse otherwise. The model can be fine-tuned with ``fit``.
    """
    from .layers import Dense
    from .model import Sequential

    proto, src = _load_proto(source)
    chain = _Chain(proto.graph, src)
    for node in proto.graph.node:
        chain.step(node)
    chain.check(proto.graph)
    if dtype is None:
        dtype = "float64" if chain.weight_dtype == np.float64 else "float32"
    if loss is None:
        props = {p.key: p.value for p in proto.metadata_props}
        out = chain.layers[-1][2]
        loss = props.get("fastnn.loss", "cross_entropy" if out == "softmax" else "mse")
    layers = [Dense(int(w.shape[1]), fn) for w, _, fn in chain.layers]
    model = Sequential(layers, input_size=int(chain.layers[0][0].shape[0]), loss=loss,
                       optimizer=optimizer, dtype=dtype, backend=backend, seed=seed)
    with np.errstate(over="ignore"):
        for lay, (w, b, _) in zip(model.layers, chain.layers, strict=True):
            lay.weights[...] = w
            lay.biases[...] = b
    if not np.isfinite(model.params).all():
        raise ValueError(f"{src}: weights overflow {model.dtype.name}; pass dtype='float64'")
    return model
