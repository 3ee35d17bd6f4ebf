"""Model tests never read the user's Hugging Face hub cache: each gets an empty one."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import constants


@pytest.fixture(autouse=True)
def hf_hub_cache(tmp_path_factory, monkeypatch) -> Path:
    cache = tmp_path_factory.mktemp("hf-hub")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache
