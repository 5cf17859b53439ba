"""Layouts: channels-last, token and windowed outputs read right or not at all, the override,
and the error when nothing fits. Each map is checked against a hand computation: the module's
output and its gradient from autograd, laid out on the grid by hand, and the formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samplelens_widget import CamEngine
from samplelens_widget.cam.layouts import Grids, infer
from tests.cam.test_cam_engine import assert_untouched, snapshot


def hand_maps(model, x, module, to_nchw, label):
    """GradCAM and LayerCAM of ``module``'s output (N, C, h, w after ``to_nchw``), by hand."""
    kept = {}

    def keep(m, args, out) -> None:
        kept["t"] = out

    handle = module.register_forward_hook(keep)
    try:
        logits = model(x)
    finally:
        handle.remove()
    grad, = torch.autograd.grad(logits[:, label].sum(), kept["t"])
    a = to_nchw(kept["t"].detach())
    g = to_nchw(grad)
    gradcam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))
    layercam = F.relu((g.clamp(min=0) * a).sum(1))
    return {"gradcam": gradcam.numpy(), "layercam": layercam.numpy()}


def check(model, x, name, to_nchw, label=1, **engine):
    module = model.get_submodule(name)
    ref = hand_maps(model, x, module, to_nchw, label)
    for algorithm, want in ref.items():
        res = CamEngine(model, **engine).explain(x, label=label, algorithm=algorithm)
        np.testing.assert_allclose(res.raw(name), want, rtol=1e-4, atol=1e-6)
    assert ref["layercam"].max() > 0  # a case that says something
    return res


def seeded(cls, *args, **kw):
    torch.manual_seed(0)
    return cls(*args, **kw).eval()


class ChannelsLast(nn.Module):
    """A ConvNeXt-like block: conv, then Linear and LayerNorm over the channels of (N, h, w, C)."""

    def __init__(self, c=6) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, stride=4)
        self.fc = nn.Linear(c, 2 * c)
        self.norm = nn.LayerNorm(2 * c)
        self.head = nn.Linear(2 * c, 4)

    def forward(self, x):
        t = self.stem(x).permute(0, 2, 3, 1)
        t = self.norm(F.gelu(self.fc(t)))
        return self.head(t.mean(dim=(1, 2)))


class Tokens(nn.Module):
    """A ViT-like model: conv patches, ``prefix`` learned tokens first, a token MLP, a head on
    the mean of every token (so the patch tokens reach the prediction)."""

    def __init__(self, prefix=3, c=8, patch=8) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, c, patch, stride=patch)
        self.prefix = nn.Parameter(torch.randn(1, prefix, c))
        self.mlp = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))
        self.head = nn.Linear(c, 4)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.prefix.expand(len(t), -1, -1), t], dim=1)
        t = t + self.mlp(t)
        return self.head(t.mean(dim=1))


class UnfoldTokens(Tokens):
    """Patches by ``unfold``, 20 prefix tokens before them, then a Linear: no module output
    tells the grid, and 36 tokens fit no grid of 32x32 with at most 16 prefix tokens."""

    def __init__(self, prefix=20, c=8, patch=8) -> None:
        super().__init__(prefix, c, patch)
        self.raw_prefix = nn.Parameter(torch.randn(1, prefix, 3 * patch * patch))
        self.embed = nn.Linear(3 * patch * patch, c)
        self.p = patch

    def forward(self, x):
        t = F.unfold(x, self.p, stride=self.p).transpose(1, 2)
        t = self.embed(torch.cat([self.raw_prefix.expand(len(t), -1, -1), t], dim=1))
        t = t + self.mlp(t)
        return self.head(t.mean(dim=1))


class Windows(nn.Module):
    """Swin-like window partition: (N * 4 windows, 16 tokens, C) between conv maps."""

    def __init__(self, c=4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 2, stride=2)
        self.attn = nn.Linear(c, c)
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        m = self.stem(x)  # (N, C, 8, 8)
        n, c, h, w = m.shape
        win = m.view(n, c, 2, 4, 2, 4).permute(0, 2, 4, 3, 5, 1).reshape(n * 4, 16, c)
        win = self.attn(win)
        back = win.view(n, 2, 2, 4, 4, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, h, w)
        return self.head((back + m).mean(dim=(2, 3)))


def test_channels_last_layers_are_read_as_nhwc():
    model = seeded(ChannelsLast)
    x = torch.randn(2, 3, 32, 48)  # non-square: an 8x12 grid
    res = check(model, x, "norm", lambda t: t.permute(0, 3, 1, 2))
    check(model, x, "fc", lambda t: t.permute(0, 3, 1, 2))
    info = res.layer("norm")
    assert info.layout == "NHWC" and info.shape == (12, 8, 12)
    assert res.layer("stem").layout == "NCHW"
    assert res.layer_at(None).name == "norm"


@pytest.mark.parametrize("prefix", [0, 1, 3])
def test_tokens_with_prefix_tokens_are_laid_on_the_patch_grid(prefix):
    model = seeded(Tokens, prefix=prefix)
    x = torch.randn(2, 3, 32, 48)  # 4x6 patches
    res = check(model, x, "mlp.2", lambda t: t[:, prefix:].reshape(2, 4, 6, -1).permute(0, 3, 1, 2))
    info = res.layer("mlp")  # the Sequential returns mlp.2's tensor: one layer, the block's name
    assert "mlp.2" in info.aliases and info.shape == (8, 4, 6)
    assert info.layout == (f"tokens ({prefix} prefix + 4x6)" if prefix else "tokens (4x6)")


def test_a_model_with_no_readable_layer_gets_an_error_saying_what_was_found_and_the_override():
    model = seeded(UnfoldTokens)
    x = torch.randn(1, 3, 32, 32)  # 16 patches + 20 prefix tokens = 36 tokens, no conv
    before = snapshot(model)
    with pytest.raises(ValueError) as err:
        CamEngine(model).explain(x)
    msg = str(err.value)
    assert_untouched(model, before)
    assert "no spatial layer" in msg and "UnfoldTokens (32x32)" in msg
    assert "tensor(s) (N, 36, 8): no grid of input 32x32 fits 36 tokens" in msg
    assert "layout=" in msg and "'tokens:P'" in msg


def test_too_many_prefix_tokens_leave_the_token_layers_out_and_say_why():
    model = seeded(Tokens, prefix=20)
    res = CamEngine(model).explain(torch.randn(1, 3, 32, 32))
    assert [i.name for i in res.layers] == ["patch"]  # the conv is still read
    why = dict((n, w) for n, _, w in res.left_out)
    assert why["mlp"] == "no grid of input 32x32 fits 36 tokens"


def test_the_override_reads_what_inference_cannot():
    model = seeded(Tokens, prefix=20)
    x = torch.randn(2, 3, 32, 32)

    def reshape(t):  # pytorch-grad-cam's reshape_transform, as a user writes it
        return t[:, 20:, :].reshape(t.size(0), 4, 4, t.size(2)).permute(0, 3, 1, 2)

    check(model, x, "mlp.2", reshape, layout={"mlp.2": reshape, "mlp.0": "tokens:20"})
    res = CamEngine(model, layout="tokens:20").explain(x)
    assert res.layer("mlp.1").layout == "tokens (20 prefix + 4x4)"
    res = CamEngine(model, layout={"mlp": None}).explain(x)
    assert "mlp" in [n for n, _, _ in res.left_out]


def test_window_partitions_and_attention_shaped_tensors_are_never_layers():
    model = seeded(Windows)
    res = CamEngine(model).explain(torch.randn(2, 3, 16, 16))
    assert [i.name for i in res.layers] == ["stem"]
    [(name, shape, why)] = res.left_out
    assert name == "attn" and shape == (8, 16, 4) and "not the batch" in why


class WindowAttention(nn.Module):
    """A 4x4 grid of tokens attending to each other, 16x16 scores through a Dropout module, on
    a 64x64 input whose stem grid is 16x16: the scores fit a grid, but are no map."""

    def __init__(self, c=8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, stride=4)  # 16x16
        self.down = nn.Conv2d(c, c, 4, stride=4)  # 4x4
        self.qkv = nn.Linear(c, 3 * c)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        t = self.down(self.stem(x)).flatten(2).transpose(1, 2)  # (N, 16, C)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        scores = self.drop((q[:, None] @ k[:, None].transpose(-1, -2)).softmax(-1))  # (N,1,16,16)
        return self.head((scores @ v[:, None])[:, 0].mean(1))


def test_attention_scores_that_fit_a_grid_are_not_layers():
    res = CamEngine(seeded(WindowAttention)).explain(torch.randn(2, 3, 64, 64))
    names = [i.name for i in res.layers]
    assert "drop" not in names and names[:2] == ["stem", "down"]
    why = dict((n, w) for n, _, w in res.left_out)
    assert why["drop"].startswith("like attention scores (N, heads, T, T) over a sequence of 16")


def test_an_ambiguous_shape_follows_the_layer_it_comes_from_or_is_left_out():
    grids = Grids((64, 64))
    # (N, 32, 32, 32) on a 64x64 input: both readings are a stride-2 grid
    assert infer((1, 32, 32, 32), 1, None, grids) == "ambiguous"
    assert infer((1, 32, 32, 32), 1, "NCHW", grids).kind == "NCHW"
    assert infer((1, 32, 32, 32), 1, "NHWC", grids).kind == "NHWC"
    assert infer((1, 16, 32, 32), 1, None, grids).kind == "NCHW"
    assert infer((1, 32, 32, 16), 1, None, grids).kind == "NHWC"
    # attention (N, heads, T, d) and (N, heads, T, T) fit no grid of a 224 input
    vit = Grids((224, 224), {(14, 14)})
    assert isinstance(infer((1, 3, 197, 64), 1, None, vit), str)
    assert isinstance(infer((1, 3, 197, 197), 1, None, vit), str)
    assert infer((1, 197, 192), 1, None, vit).prefix == 1
    assert infer((1, 198, 192), 1, None, vit).prefix == 2
    assert infer((1, 201, 192), 1, None, vit).prefix == 5


def test_bad_layout_arguments_get_clear_errors():
    model = seeded(ChannelsLast)
    with pytest.raises(ValueError, match=r"layout: 'NWHC' is unknown; allowed: \['NCHW'"):
        CamEngine(model, layout="NWHC")
    with pytest.raises(TypeError, match=r"layout: expected None, one of"):
        CamEngine(model, layout=3)
    with pytest.raises(ValueError, match=r"layout\['fc'\]: 'tokens:x' is unknown"):
        CamEngine(model, layout={"fc": "tokens:x"})
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"layout: 'nrom' names no module output.*'norm'"):
        CamEngine(model, layout={"nrom": "NHWC"}).explain(torch.randn(1, 3, 16, 16))
    assert_untouched(model, before)
