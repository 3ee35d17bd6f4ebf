"""keep_freed_memory: decoding the next image reuses the memory the last one freed, instead of
page-faulting it back in from the kernel (glibc only; elsewhere it reports that it did nothing)."""

import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

_DECODE_AGAIN = textwrap.dedent(
    """
    import json, resource, sys, threading
    from pathlib import Path
    from osteoscan.data.pixels import letterbox
    from osteoscan.data.decode import read_image
    from osteoscan.inference.allocator import keep_freed_memory

    applied = keep_freed_memory() if sys.argv[2] == "keep" else None
    faults = []

    def decode():  # in a thread, as Predictor.predict decodes
        for _ in range(6):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            letterbox(read_image(Path(sys.argv[1])), 224)
            faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)

    thread = threading.Thread(target=decode)
    thread.start()
    thread.join()
    print(json.dumps({"applied": applied, "faults": faults}))
    """
)


def _faults_when_decoding_again(image, setting) -> tuple[bool | None, int]:
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_AGAIN, str(image), setting],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    return answer["applied"], max(answer["faults"][2:])  # after two warm-up decodes


@pytest.mark.skipif(not GLIBC, reason="the setting exists in glibc's malloc only")
def test_decoding_again_reuses_freed_memory_instead_of_faulting_it_back_in(tmp_path):
    image = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1536, 1024), dtype=np.uint8)).save(image)
    float_pages = 1536 * 1024 * 4 // 4096  # the decoded float32 copy alone: 1,536 pages
    applied, kept = _faults_when_decoding_again(image, "keep")
    assert applied is True
    assert kept < 0.05 * float_pages
    _, default = _faults_when_decoding_again(image, "default")
    assert default > 0.5 * float_pages  # what the setting is for: glibc's default gives it back


def test_other_c_libraries_are_left_alone(monkeypatch):
    from osteoscan.inference import allocator

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("glibc", "2.36"))
    assert allocator.keep_freed_memory() is False  # once decided, later calls only answer
