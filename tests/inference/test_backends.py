"""The ONNX backend's session: threads do not spin unless asked, and it runs the model."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from osteoscan.inference.backends import INPUT_NAME, OUTPUT_NAME, OnnxBackend


@pytest.fixture
def mean_model(tmp_path):
    """A tiny ONNX model: logits (N, 1) = the mean of each image's pixels."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", [INPUT_NAME, "axes"], [OUTPUT_NAME], keepdims=0)],
        "mean",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "mean.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(("spinning", "expected"), [(False, "0"), (True, "1")])
def test_thread_spinning_is_off_unless_asked(mean_model, spinning, expected):
    backend = OnnxBackend(mean_model, threads=2, spinning=spinning)
    options = backend.session.get_session_options()
    for pool in ("intra_op", "inter_op"):
        assert options.get_session_config_entry(f"session.{pool}.allow_spinning") == expected
    batch = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
    assert backend.logits(batch)[:, 0] == pytest.approx([7.5, 23.5])
