"""``osteoscan serve``: flags reach ServeConfig, defaults are the library's, --help is light."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from osteoscan.cli import main
from osteoscan.serve import ServeConfig, app
from tests.serve.conftest import TOKEN


@pytest.fixture
def started(monkeypatch):
    calls = []
    monkeypatch.setattr(app, "run", lambda bundle, config: calls.append((bundle, config)))
    monkeypatch.delenv("OSTEOSCAN_TOKEN", raising=False)
    return calls


def test_defaults_are_the_configs(started, tmp_path):
    assert main(["serve", str(tmp_path)]) == 0
    ((bundle, config),) = started
    assert bundle == tmp_path and config == ServeConfig()


def test_flags_reach_their_fields(started, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    argv = ["serve", str(tmp_path), "--host", "0.0.0.0", "--port", "9001", "--backend", "onnx"]
    argv += ["--token-file", str(token_file), "--max-upload-mb", "2", "--max-pixels", "1000000"]
    argv += ["--max-files", "3", "--max-batch", "4", "--batch-window-ms", "5", "--max-pending", "6"]
    argv += ["--threads", "1", "--no-explain"]
    assert main(argv) == 0
    expected = replace(
        ServeConfig(host="0.0.0.0", token=TOKEN),
        port=9001,
        backend="onnx",
        threads=1,
        max_upload_bytes=2 * 1024 * 1024,
        max_pixels=1_000_000,
        max_files=3,
        max_batch=4,
        batch_window_ms=5.0,
        max_pending=6,
        explain=False,
    )
    assert started[0][1] == expected


def test_bad_values_are_one_line(started, tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--max-pending", "0"]) == 2
    assert "max_pending must be at least 1" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--token-file", str(tmp_path / "none")]) == 2
    assert "cannot read it" in capsys.readouterr().err
    assert started == []


def test_help_imports_no_web_stack_or_torch():
    code = (
        "import sys\nfrom osteoscan.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)\n"
        "print(sorted(heavy), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "usage: osteoscan serve" in done.stdout
    assert done.stderr.splitlines()[-1] == "[]", done.stderr
