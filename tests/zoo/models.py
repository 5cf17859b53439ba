"""The zoo: real torchvision, timm and transformers vision models with random weights.

Each entry builds a model (small configs where a library allows, nothing downloaded), the input
size it is tested at, and the ``reshape_transform`` a careful pytorch-grad-cam user writes for
its layers. Seeds are fixed so that every run sees the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


def nhwc(t: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's reshape for channels-last outputs (Swin, ConvNeXt's MLP half)."""
    return t.permute(0, 3, 1, 2)


def tokens(prefix: int, h: int, w: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """pytorch-grad-cam's ViT reshape: drop the prefix tokens, lay the rest on the grid."""

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return t[:, prefix:, :].reshape(t.size(0), h, w, t.size(2)).permute(0, 3, 1, 2)

    return reshape


@dataclass
class Zoo:
    name: str
    build: Callable[[], nn.Module]
    size: tuple[int, int]
    # layers compared with pytorch-grad-cam: name -> reshape_transform (None: NCHW)
    blocks: dict[str, Callable | None]
    default: str  # the layer heatmap(None) must show (the true last layer)
    grids: set[tuple[int, int]]  # every grid a layer may lie on, from the strides by hand
    reinit_head: str | None = None


def _seeded(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return fn().eval()

    return build


def _tv(name: str, **kw) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, name)(**kw)

    return build


def _timm(name: str, **kw) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, **kw)

    return build


def _hf(model: str, config: str, **kw) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers

        return getattr(transformers, model)(getattr(transformers, config)(**kw))

    return build


def _grid(*hw: tuple[int, int]) -> set[tuple[int, int]]:
    return set(hw)


def _sq(*sides: int) -> set[tuple[int, int]]:
    return {(s, s) for s in sides}


_SMALL_VIT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=128, num_labels=5)
_SMALL_SWIN = dict(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 2],
                   num_heads=[1, 2, 4], window_size=4, num_labels=5)

# name, builder, input (H, W), compared layers, the true last layer, every grid a layer may
# lie on (hand-computed from each architecture's strides), the head to re-initialise
ZOO: list[Zoo] = []


def _add(name, build, size, blocks, default, grids, reinit_head=None):
    ZOO.append(Zoo(name, _seeded(build), size, blocks, default, grids, reinit_head))


# --- torchvision ---------------------------------------------------------------------------
# ResNet at a non-square input: stride 2 stem, then 4, 8, 16, 32
_add("torchvision resnet18", _tv("resnet18"), (192, 256),
     {"layer1": None, "layer2.1": None, "layer4.0.conv2": None, "layer4": None},
     "layer4", _grid((96, 128), (48, 64), (24, 32), (12, 16), (6, 8)))
_add("torchvision googlenet", _tv("googlenet", init_weights=True, aux_logits=False), (224, 224),
     {"inception3a": None, "inception4e": None, "inception5b": None},
     "inception5b", _sq(112, 56, 28, 14, 7))
# inception_v3's valid convolutions: 299 -> 149 -> 147 -> 73 -> 71 -> 35 -> 17 -> 8
_add("torchvision inception_v3", _tv("inception_v3", init_weights=True, aux_logits=False),
     (299, 299), {"Mixed_5b": None, "Mixed_6e": None, "Mixed_7c": None},
     "Mixed_7c", _sq(149, 147, 73, 71, 35, 17, 8))
_add("torchvision convnext_tiny", _tv("convnext_tiny"), (160, 224),
     {"features.1": None, "features.5.8": None, "features.7.2.block.3": nhwc, "features.7": None},
     "features.7", _grid((40, 56), (20, 28), (10, 14), (5, 7)))
_add("torchvision swin_t", _tv("swin_t"), (224, 224),
     {"features.1": nhwc, "features.5.5": nhwc, "features.7": nhwc, "norm": nhwc},
     "norm", _sq(56, 28, 14, 7))
_add("torchvision maxvit_t", _tv("maxvit_t"), (224, 224),
     {"blocks.0": None, "blocks.2.layers.1": None, "blocks.3": None},
     "blocks.3", _sq(112, 56, 28, 14, 7))
# torchvision's ViT head is zero-initialised: every map would be zero
_add("torchvision vit_b_16", _tv("vit_b_16", image_size=112), (112, 112),
     {"encoder.layers.encoder_layer_5": tokens(1, 7, 7),
      "encoder.layers.encoder_layer_10": tokens(1, 7, 7),
      "encoder.layers.encoder_layer_11.ln_1": tokens(1, 7, 7)},
     "encoder.layers.encoder_layer_11.ln_1", _sq(7), reinit_head="heads.head")
# --- timm ----------------------------------------------------------------------------------
_add("timm swin_tiny_patch4_window7_224", _timm("swin_tiny_patch4_window7_224"), (224, 224),
     {"layers.0": nhwc, "layers.2.blocks.3": nhwc, "layers.3.blocks.1.mlp.fc1": tokens(0, 7, 7),
      "norm": nhwc},
     "norm", _sq(56, 28, 14, 7))
_add("timm convnext_tiny", _timm("convnext_tiny"), (224, 224),
     {"stages.0": None, "stages.2.blocks.4": None, "stages.3.blocks.2.mlp.fc1": nhwc,
      "stages.3": None},
     "stages.3", _sq(56, 28, 14, 7))
# a non-square ViT: 160x224 with patch 16 is a 10x14 grid
_add("timm vit_tiny_patch16_224", _timm("vit_tiny_patch16_224", dynamic_img_size=True),
     (160, 224),
     {"blocks.5": tokens(1, 10, 14), "blocks.11.norm1": tokens(1, 10, 14),
      "blocks.11.attn.qkv": tokens(1, 10, 14)},
     "blocks.11.attn.qkv", _grid((10, 14)))
_add("timm deit_tiny_distilled_patch16_224", _timm("deit_tiny_distilled_patch16_224"),
     (224, 224),
     {"blocks.6": tokens(2, 14, 14), "blocks.11.norm1": tokens(2, 14, 14)},
     "blocks.11.attn.qkv", _sq(14))
_add("timm vit_small_patch14_reg4_dinov2", _timm("vit_small_patch14_reg4_dinov2", img_size=112),
     (112, 112),
     {"blocks.4": tokens(5, 8, 8), "blocks.11.norm1": tokens(5, 8, 8)},
     "blocks.11.attn.qkv", _sq(8))
# --- transformers --------------------------------------------------------------------------
_add("transformers ViT", _hf("ViTForImageClassification", "ViTConfig", image_size=64,
                             patch_size=8, **_SMALL_VIT), (64, 64),
     {"vit.layers.0": tokens(1, 8, 8), "vit.layers.1.layernorm_before": tokens(1, 8, 8)},
     "vit.layers.1.attention.v_proj", _sq(8))
_add("transformers Swin", _hf("SwinForImageClassification", "SwinConfig", **_SMALL_SWIN),
     (64, 64),
     {"swin.encoder.layers.0.downsample": tokens(0, 8, 8), "swin.layernorm": tokens(0, 4, 4),
      "swin.encoder.layers.1": "hand"},
     "swin.layernorm", _sq(16, 8, 4))
_add("transformers Swinv2", _hf("Swinv2ForImageClassification", "Swinv2Config", **_SMALL_SWIN),
     (64, 64),
     {"swinv2.encoder.layers.0.downsample": tokens(0, 8, 8), "swinv2.layernorm": tokens(0, 4, 4)},
     "swinv2.layernorm", _sq(16, 8, 4))
_add("transformers ConvNeXt", _hf("ConvNextForImageClassification", "ConvNextConfig",
                                  hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1],
                                  num_labels=5), (64, 64),
     {"convnext.encoder.stages.1": None, "convnext.encoder.stages.2.layers.1.pwconv1": nhwc,
      "convnext.encoder.stages.3": None},
     "convnext.encoder.stages.3", _sq(16, 8, 4, 2))
_add("transformers DINOv2 with registers",
     _hf("Dinov2WithRegistersForImageClassification", "Dinov2WithRegistersConfig",
         image_size=56, patch_size=8, num_register_tokens=4, **_SMALL_VIT), (56, 56),
     {"dinov2_with_registers.encoder.layer.0": tokens(5, 7, 7),
      "dinov2_with_registers.layernorm": tokens(5, 7, 7)},
     "dinov2_with_registers.layernorm", _sq(7))


def build(z: Zoo) -> nn.Module:
    """The model with its seeded random weights (and a re-initialised zero head)."""
    model = z.build()
    if z.reinit_head:
        head = model.get_submodule(z.reinit_head)
        torch.manual_seed(1)
        nn.init.normal_(head.weight, std=0.02)
    return model.eval()


# --- how a careful user reads every layer of each family, by hand (for benchmarks/zoo_table) --
def _tokens_on_input(prefix: int, size: tuple[int, int]):
    def reshape(t: torch.Tensor) -> torch.Tensor:
        count = t.shape[1] - prefix
        h = round((count * size[0] / size[1]) ** 0.5)
        return tokens(prefix, h, count // h)(t)

    return reshape


def user_reshape(z: Zoo, name: str, module: nn.Module, ndim: int):
    """The ``reshape_transform`` a user who knows the architecture passes for ``name``:
    ``None`` for NCHW maps. By family: ViTs carry their prefix tokens, Swins are channels last
    or flattened grids, ConvNeXt blocks are channels last between their permutes."""
    family = z.name.lower()
    if ndim == 3:
        prefix = 0
        for key, p in (("deit", 2), ("dinov2", 5), ("vit", 1)):
            if key in family and "patch_embed" not in name:  # patches come before the tokens
                prefix = p
                break
        return _tokens_on_input(prefix, z.size)
    if isinstance(module, nn.Conv2d) or "permute" in type(module).__name__.lower():
        return None if not name.endswith(".block.1") else nhwc
    if "swin" in family:
        return None if "maxvit" in family else nhwc
    if "convnext" in family:
        inside = (".block.2", ".block.3", ".block.4", ".block.5", ".norm", ".mlp",
                  ".layernorm", ".pwconv1", ".act", ".pwconv2")
        if "transformers" in family and name.endswith(".layernorm") and "embeddings" in name:
            return None  # HF ConvNeXt's embedding norm is channels-first
        return nhwc if any(name.endswith(s) or (s + ".") in name for s in inside) else None
    return None


class Images:
    """A data set of random 3-channel images of one size, labels 0..4 (seeded)."""

    def __init__(self, size: tuple[int, int], n: int = 10, seed: int = 3) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, *size, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], i % 5
