"""Any timm architecture as a model: ``timm:NAME`` (NAME as timm spells it, optionally with a
pretrained tag, e.g. ``timm:convnext_tiny`` or ``timm:resnet18.a1_in1k``).

The spec comes from timm's own pretrained config: where the weights live on the Hugging Face hub
(read here only from the local cache, never downloaded), their mean/std and input size, and the
classifier layer. The Grad-CAM layer is the last feature stage timm reports for the architecture.
Imports timm (and torch): reached only through :func:`osteoscan.models.registry.get_spec`.
"""

from __future__ import annotations

import difflib
from functools import lru_cache, partial

import timm
import torch
from timm.models import get_pretrained_cfg
from torch import nn

from osteoscan.errors import BadConfigError
from osteoscan.models.registry import DEFAULT_MIN_IMAGE_SIZE, TIMM_PREFIX, ModelSpec
from osteoscan.models.sources import IMAGENET_MEAN, IMAGENET_STD, TimmWeights


def _build(architecture: str) -> nn.Module:
    return timm.create_model(architecture, pretrained=False)


@lru_cache(maxsize=32)
def timm_spec(name: str) -> ModelSpec:
    """The spec for ``timm:NAME``; a clear error for a name timm does not know."""
    architecture = name.removeprefix(TIMM_PREFIX)
    if not architecture or "/" in architecture or ":" in architecture:
        raise BadConfigError(
            f"model {name!r}: write {TIMM_PREFIX}NAME with a timm architecture name, optionally "
            f"with a pretrained tag (e.g. {TIMM_PREFIX}convnext_tiny.fb_in1k); hub ids are not read"
        )
    if not timm.is_model(architecture):
        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(TIMM_PREFIX + c for c in close)}?)" if close else ""
        raise BadConfigError(
            f"model {name!r}: timm {timm.__version__} has no architecture {architecture!r}{hint}; "
            'list them with python -c "import timm; print(timm.list_models())"'
        )
    try:
        cfg = get_pretrained_cfg(architecture)
    except RuntimeError as exc:  # an unknown pretrained tag
        raise BadConfigError(f"model {name!r}: {exc}") from None
    with torch.device("meta"):  # structure only: no memory, no initialisation
        probe = timm.create_model(architecture, pretrained=False)
    head = cfg.classifier if cfg is not None else probe.default_cfg.get("classifier")
    if not isinstance(head, str) or not isinstance(probe.get_submodule(head), nn.Linear):
        raise BadConfigError(
            f"model {name!r}: its classifier {head!r} is not one linear layer, which osteoscan "
            "replaces with a fresh head; pick another timm architecture"
        )
    weights = None
    if cfg is not None and (cfg.hf_hub_id or cfg.url):
        weights = TimmWeights(
            architecture,
            cfg.hf_hub_id,
            cfg.hf_hub_filename,
            cfg.url,
            mean=tuple(cfg.mean),
            std=tuple(cfg.std),
        )
    input_size = cfg.input_size if cfg is not None else (3, 224, 224)
    fixed = bool(cfg is not None and cfg.fixed_input_size)
    return ModelSpec(
        name,
        partial(_build, architecture),
        head,
        probe.feature_info[-1]["module"],
        weights,
        min_image_size=input_size[-1] if fixed else DEFAULT_MIN_IMAGE_SIZE,
        image_size=input_size[-1],
        in_chans=input_size[0],
        scratch_mean=None if weights else IMAGENET_MEAN,
        scratch_std=None if weights else IMAGENET_STD,
        description=f"timm {architecture}",
    )
