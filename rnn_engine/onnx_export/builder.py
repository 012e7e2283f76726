"""A small accumulator for ONNX graphs in the onnx-docs style: value infos, initializers, nodes, then check.

`GraphBuilder` only keeps lists and hands out unique names; every tensor still goes through
`make_tensor_value_info`, `numpy_helper.from_array` and `make_node`, and `build` ends with
`make_graph` -> `make_model` -> `check_model(full_check=True)` (which includes strict shape inference).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21  # ai.onnx opset: supported by onnx >= 1.16 and onnxruntime >= 1.18 (tested: onnx 1.23, ort 1.32)
IR_VERSION = 10  # the IR version that goes with opset 21
FORMAT_VERSION = 1  # of the rnn_config metadata written into every file

Dim = int | str  # a fixed size or a symbolic (dynamic) axis name such as "batch"
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
INT32 = TensorProto.INT32


class GraphBuilder:
    """Collects inputs, outputs, initializers and nodes of one graph; `build` makes a checked model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self._used: set[str] = set()

    def unique(self, base: str) -> str:
        """`base`, or `base_2`, `base_3`, ... if taken: every tensor and node name stays unique."""
        name, n = base, 1
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def input(self, name: str, elem_type: int, shape: Sequence[Dim], doc: str = "") -> str:
        self._claim(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape), doc_string=doc))
        return name

    def output(self, name: str, elem_type: int, shape: Sequence[Dim], doc: str = "") -> None:
        """Declare `name` a graph output; some node must produce it (see `node(..., outputs=[name])`)."""
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape), doc_string=doc))

    def const(self, base: str, value: np.ndarray) -> str:
        """An initializer holding `value` (float arrays are stored as float32); returns its unique name."""
        value = np.asarray(value)
        if value.dtype.kind == "f":
            value = value.astype(np.float32)
        name = self.unique(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name=name))
        return name

    def ints(self, base: str, values: Sequence[int]) -> str:
        """A 1-D int64 initializer (shapes, axes, slice bounds)."""
        return self.const(base, np.asarray(values, dtype=np.int64))

    def node(self, op: str, inputs: Sequence[str], n_out: int = 1, *, outputs: Sequence[str] | None = None,
             name: str | None = None, **attrs) -> list[str]:
        """Append one node; returns its output names (fresh unique names unless `outputs` is given).

        An empty string in `inputs` or `outputs` skips an optional slot, as ONNX allows.
        """
        node_name = self.unique(name or op)
        if outputs is None:
            outputs = [self.unique(f"{node_name}_out{i}") for i in range(n_out)]
        else:
            for o in outputs:
                if o:
                    self._claim(o)
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=node_name, **attrs))
        return list(outputs)

    def build(self, metadata: dict[str, str] | None = None, doc: str = "") -> onnx.ModelProto:
        """make_graph -> make_model -> check_model(full_check=True); metadata goes to metadata_props."""
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers,
                                  doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="rnn-service", ir_version=IR_VERSION)
        model.doc_string = doc
        if metadata:
            helper.set_model_props(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        return model

    def _claim(self, name: str) -> None:
        if name in self._used:
            raise ValueError(f"graph {self.name!r}: tensor name {name!r} is already used")
        self._used.add(name)
