"""The slim runtime: predict with onnxruntime while torch (and the rest of [train]) cannot be
imported, as after ``pip install osteoscan[runtime]``."""

import csv
import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {"torch", "torchvision", "lightning", "safetensors", "sklearn", "captum", "onnx"}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_predict_runs_on_onnxruntime_without_torch(exported_bundle, synth_dir, tmp_path):
    out = tmp_path / "rows.csv"
    done = _run(
        f"""
        from osteoscan.inference import predict
        rows = predict({str(exported_bundle)!r}, [{str(synth_dir)!r}], out={str(out)!r})
        assert all(r.error is None for r in rows), rows
        assert "torch" not in sys.modules
        print(len(rows))
        """
    )
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == int(done.stdout.split()[-1]) > 10
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)


def test_torch_backend_without_torch_says_what_to_install(trained_bundle, synth_dir):
    done = _run(
        f"""
        from osteoscan.errors import OsteoscanError
        from osteoscan.inference import predict
        try:
            predict({str(trained_bundle)!r}, [{str(synth_dir)!r}], backend="torch")
        except OsteoscanError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "osteoscan[train]" in done.stdout and "--backend onnx" in done.stdout
