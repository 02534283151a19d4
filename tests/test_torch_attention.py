"""Attention on the PyTorch path: MACs of its matrix products and the receptive field it makes global.

Independent counts: ``FlopCounterMode`` (FLOPs = 2 x MACs) on the same weights with attention
computed as explicit matrix products (fused kernels hide their products from it on CPU),
hand-derived formulas, and torchvision's published GFLOPS.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import archlint

from conftest import import_torchvision


@contextlib.contextmanager
def explicit_attention():
    """Attention as explicit matrix products, which FlopCounterMode sees: no fused
    nn.MultiheadAttention path, scaled_dot_product_attention on its math kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def counted_macs(model, *inputs) -> int:
    """MACs FlopCounterMode counts on a real forward pass with attention as explicit products."""
    with torch.no_grad(), explicit_attention(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() // 2


class TinyViT(nn.Module):
    """A patch embedding, one attention block written in one of several forms, a head on the first token."""

    def __init__(self, form: str, dim: int = 32, heads: int = 4, patch: int = 8) -> None:
        super().__init__()
        self.form, self.heads = form, heads
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        if form == "mha":
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 10)

    def attend(self, t):
        if self.form == "mha":
            return self.attn(t, t, t, need_weights=False)[0]
        b, n, c = t.shape
        q, k, v = self.qkv(t).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        scale = (c // self.heads) ** -0.5
        if self.form == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        elif self.form == "einsum":
            weights = torch.einsum("bhid,bhjd->bhij", q, k).mul(scale).softmax(-1)
            out = torch.einsum("bhij,bhjd->bhid", weights, v)
        else:  # bmm on (batch * heads) stacks
            q, k, v = (a.reshape(b * self.heads, n, -1) for a in (q, k, v))
            weights = torch.bmm(q * scale, k.transpose(1, 2)).softmax(-1)
            out = torch.bmm(weights, v).reshape(b, self.heads, n, -1)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = tokens + self.attend(tokens)
        return self.head(tokens[:, 0])


def tiny_vit_macs(dim=32, patch=8, size=32, classes=10) -> int:
    """Hand count: patch conv, q/k/v projection, scores, weighted sum, output projection, head."""
    n = (size // patch) ** 2
    return (n * dim * 3 * patch * patch + n * dim * 3 * dim + n * n * dim + n * n * dim + n * dim * dim
            + dim * classes)


FORMS = ["mha", "sdpa", "einsum", "bmm"]


@pytest.mark.parametrize("form", FORMS)
def test_attention_is_counted_by_its_matrix_products(form):
    torch.manual_seed(0)
    model = TinyViT(form).eval()
    x = torch.randn(1, 3, 32, 32)
    report = archlint.lint(model, example_inputs=x)
    assert report.summary.macs == counted_macs(model, x) == tiny_vit_macs()
    assert report.summary.params == sum(p.numel() for p in model.parameters())
    assert not report.summary.unsupported_ops


@pytest.mark.parametrize("form", FORMS)
def test_attention_over_all_positions_makes_the_field_global(form):
    model = TinyViT(form).eval()
    report = archlint.lint(model, input_shapes=(1, 3, 32, 32), options={"min-receptive-field": 1.0})
    patch = report.layer("patch")
    assert (tuple(patch.receptive_field), tuple(patch.effective_stride)) == ((8, 8), (8, 8))
    # the token map before attention keeps each token's 8x8 field
    tokens = next(r for r in report.layers if r.op == "reshape" and r.output_shape == (1, 16, 32))
    assert tuple(tokens.receptive_field) == (8, 8) and not tokens.rf_global
    # the last spatial map is the token map after the residual add: every token sees the image
    summary = report.summary.receptive_field
    residual = [r for r in report.layers if r.op == "add" and r.output_shape == (1, 16, 32)][-1]
    assert summary.layer == residual.name and summary.is_global and summary.covers_input
    assert not [f for f in report.findings if f.code in ("AL503", "AL604")]


# --- torchvision transformers against published figures -------------------------------------

#: torchvision model -> its weights enum (``meta["_ops"]`` is the published GFLOPS, i.e. GMACs)
TRANSFORMERS = {"vit_b_16": "ViT_B_16_Weights", "swin_t": "Swin_T_Weights", "maxvit_t": "MaxVit_T_Weights"}


@pytest.fixture(scope="module")
def transformers():
    """Each torchvision transformer built once: (model, input, published GMACs)."""
    tv = import_torchvision()
    built = {}

    def get(name):
        if name not in built:
            torch.manual_seed(0)
            weights = getattr(tv.models, TRANSFORMERS[name]).DEFAULT
            size = weights.transforms().crop_size[0]
            built[name] = (getattr(tv.models, name)().eval(), torch.randn(1, 3, size, size),
                           weights.meta["_ops"])
        return built[name]

    return get


@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_torchvision_transformers_equal_flop_counter_and_published_gflops(transformers, name):
    model, x, published = transformers(name)
    report = archlint.lint(model, example_inputs=x)
    assert report.summary.macs == counted_macs(model, x)
    assert f"{report.summary.macs / 1e9:.3f}" == f"{published:.3f}"
    assert report.summary.params == sum(p.numel() for p in model.parameters())


def test_vit_summary_field_is_its_last_token_map_and_global(transformers):
    model, x, _ = transformers("vit_b_16")
    report = archlint.lint(model, example_inputs=x)
    summary = report.summary.receptive_field
    assert summary.layer == "encoder.ln" and summary.is_global and summary.covers_input


# --- timm hybrids: fused attention against the same weights unfused --------------------------

@pytest.fixture(scope="module")
def timm_models():
    """Each timm model built once (random weights, timm's default fused attention): (model, input)."""
    import_torchvision()
    import timm
    built = {}

    def get(name):
        if name not in built:
            torch.manual_seed(0)
            model = timm.create_model(name).eval()
            size = model.pretrained_cfg["input_size"][-1]
            built[name] = (model, torch.randn(1, 3, size, size))
        return built[name]

    return get


@pytest.mark.parametrize("name", ["mobilevit_s", "coatnet_0_rw_224"])
def test_timm_fused_attention_equals_flop_counter_with_fused_attention_off(timm_models, name):
    model, x = timm_models(name)
    report = archlint.lint(model, example_inputs=x)  # timm's default: F.scaled_dot_product_attention
    for module in model.modules():  # what TIMM_FUSED_ATTN=0 does: explicit q @ k^T and attn @ v
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = True
    assert report.summary.macs == counter.get_total_flops() // 2
    assert not report.summary.unsupported_ops


# --- the summary field is that of the last spatial map, or unknown ----------------------------

def test_summary_field_unknown_after_patch_unfolding_and_rules_do_not_judge_it(timm_models):
    """mobilevit_s unfolds its maps into patches (a reshape the field cannot follow): the field of
    its output is unknown, so the summary is unknown and AL503/AL604 stay silent, with a note."""
    model, x = timm_models("mobilevit_s")
    report = archlint.lint(model, example_inputs=x, options={"min-receptive-field": 0.5})
    assert report.summary.receptive_field is None
    assert not [f for f in report.findings if f.code in ("AL503", "AL604")]
    note = next(n for n in report.summary.notes if n.startswith("summary receptive field unknown"))
    assert "'stages.2.1/Reshape'" in note and "head.fc" in note


def test_levit_summary_field_is_its_last_token_map_not_the_stem(timm_models):
    model, x = timm_models("levit_128")
    report = archlint.lint(model, example_inputs=x, options={"min-receptive-field": 0.5})
    summary = report.summary.receptive_field
    assert summary.layer.startswith("stages.2.blocks.3") and summary.is_global and summary.covers_input
    assert not [f for f in report.findings if f.code in ("AL503", "AL604")]
    assert math.prod(report.layer(summary.layer).output_shape) == 16 * 384  # the 4x4 map of 384-d tokens
