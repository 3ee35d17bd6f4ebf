"""export: ONNX fp32 agrees with torch, int8 with fp32 or is refused with the figure."""

import pytest

from osteoscan.errors import ExportRefusedError
from osteoscan.files import sha256_file
from osteoscan.inference import ExportConfig, export_bundle, predict, read_metadata
from osteoscan.inference.export import FP32_TOLERANCE, INT8_TOLERANCE


def test_exports_are_in_the_bundle_with_sha256_and_their_check(exported_bundle):
    meta = read_metadata(exported_bundle)
    fp32, int8 = meta.export("fp32"), meta.export("int8")
    for entry in (fp32, int8):
        assert sha256_file(exported_bundle / entry.file) == entry.sha256
        assert entry.max_probability_difference <= entry.tolerance
        assert entry.n_check_images > 0
    assert fp32.tolerance == FP32_TOLERANCE and int8.tolerance == INT8_TOLERANCE
    assert int8.calibration_images


def test_torch_and_onnx_backends_agree(exported_bundle, synth_dir):
    torch_rows = predict(exported_bundle, [synth_dir], backend="torch")
    onnx_rows = predict(exported_bundle, [synth_dir], backend="onnx")
    int8_rows = predict(exported_bundle, [synth_dir], backend="onnx-int8")
    auto_rows = predict(exported_bundle, [synth_dir])
    assert len(torch_rows) == len(onnx_rows) == len(int8_rows) > 10
    for t, o, q, a in zip(torch_rows, onnx_rows, int8_rows, auto_rows, strict=True):
        assert o.probability == pytest.approx(t.probability, abs=FP32_TOLERANCE)
        assert q.probability == pytest.approx(o.probability, abs=INT8_TOLERANCE)
        assert a == o  # auto picks the fp32 ONNX export when there is one


def test_int8_outside_its_tolerance_is_refused_naming_the_figure(bundle_copy, synth_dir):
    images = sorted((synth_dir / "normal").glob("*.png"))[:8]
    with pytest.raises(
        ExportRefusedError, match=r"int8 refused.*differ from fp32 by up to [0-9.]+"
    ):
        export_bundle(bundle_copy, images, ExportConfig(int8=True, int8_tolerance=0.0))
    meta = read_metadata(bundle_copy)
    assert meta.export("fp32") is not None and meta.export("int8") is None
    assert not list(bundle_copy.glob("*int8*"))
