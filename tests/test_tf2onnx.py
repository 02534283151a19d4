"""Keras models exported by tf2onnx (channels-last inputs turned into a Transpose, explicit Pad
nodes, ``auto_pad=SAME_UPPER``) report like the same architectures built in PyTorch.

The fixtures are built by ``fixtures/tf2onnx/build.py`` (in a separate environment with
tensorflow and tf2onnx) and committed xz-compressed; the PyTorch side is counted with
``FlopCounterMode``."""

from __future__ import annotations

import lzma
from collections import Counter
from pathlib import Path

import pytest
from onnx import helper

import archlint

from conftest import RESNET_DOWNSAMPLING_BLOCKS, import_torchvision, make_model, weight

TF2ONNX = Path(__file__).resolve().parent.parent / "fixtures" / "tf2onnx"
NHWC = (1, 224, 224, 3)


@pytest.fixture(scope="session")
def keras(tmp_path_factory):
    """name -> the unpacked tf2onnx export of that Keras application."""
    folder = tmp_path_factory.mktemp("tf2onnx")
    paths = {}
    for name in ("keras_resnet50", "keras_mobilenet_v2"):
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(lzma.decompress((TF2ONNX / f"{name}.onnx.xz").read_bytes()))
    return paths


def _torch_macs(module) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() // 2


def _conv_fields(report, with_padding: bool = True) -> Counter:
    """Multiset of (receptive field, effective stride[, effective padding], MACs) of the convolutions."""
    return Counter((row.receptive_field, row.effective_stride, row.effective_padding if with_padding else None,
                    row.macs) for row in report.layers if row.op == "conv")


def test_exports_carry_the_tf2onnx_idioms(keras):
    import onnx

    for path in keras.values():
        model = onnx.load(str(path), load_external_data=False)
        ops = Counter(n.op_type for n in model.graph.node)
        auto_pads = {a.s for n in model.graph.node for a in n.attribute if a.name == "auto_pad"}
        first = model.graph.node[0]
        assert model.producer_name == "tf2onnx" and ops["Pad"] >= 1 and b"SAME_UPPER" in auto_pads
        assert first.op_type == "Transpose" and list(first.attribute[0].ints) == [0, 3, 1, 2]


def test_keras_resnet50_matches_torchvision_resnet50_with_the_stride_on_the_first_1x1(keras):
    # Keras ResNet-50 (like the original paper) strides the first 1x1 conv of each downsampling
    # block; torchvision strides the 3x3. The torchvision model moved to the Keras placement is
    # the same architecture: same MACs, same fields conv by conv.
    tv = import_torchvision()
    module = tv.models.resnet50().eval()
    for name in RESNET_DOWNSAMPLING_BLOCKS:
        block = getattr(module, name)[0]
        block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
    report = archlint.lint(keras["keras_resnet50"], input_shapes=NHWC)
    reference = archlint.lint(module, input_shapes=(1, 3, 224, 224))
    assert report.summary.macs == _torch_macs(module) == 3_857_973_248
    field = report.summary.receptive_field
    assert (field.size, field.stride, field.padding, field.input_extent) == ((483, 483), (32, 32), (241, 241),
                                                                             (224, 224))
    assert field.size == reference.summary.receptive_field.size
    assert field.padding == reference.summary.receptive_field.padding
    assert _conv_fields(report) == _conv_fields(reference)
    # the same findings: the explicit Pad before Keras's max pool is folded into it, as torchvision writes it
    assert Counter(f.code for f in report.findings) == Counter(f.code for f in reference.findings)
    # the stride placement costs torchvision's layout 6% more MACs (its 3x3s run at full size)
    assert _torch_macs(tv.models.resnet50().eval()) == 4_089_184_256


def test_al201_fires_on_the_strided_1x1_convs_of_keras_resnet50(keras):
    report = archlint.lint(keras["keras_resnet50"], input_shapes=NHWC, select=["AL201"])
    flagged = {f.layer for f in report.findings}
    for stage in (3, 4, 5):
        # the first 1x1 of the block and its projection shortcut both read 1 position in 4
        assert f"resnet50/conv{stage}_block1_1_conv/BiasAdd" in flagged
        assert f"resnet50/conv{stage}_block1_0_conv/BiasAdd" in flagged
    assert len(flagged) == 6


def test_keras_mobilenet_v2_matches_torchvision_mobilenet_v2(keras):
    tv = import_torchvision()
    module = tv.models.mobilenet_v2().eval()
    report = archlint.lint(keras["keras_mobilenet_v2"], input_shapes=NHWC)
    reference = archlint.lint(module, input_shapes=(1, 3, 224, 224))
    assert report.summary.macs == _torch_macs(module) == 300_774_272
    assert _conv_fields(report, with_padding=False) == _conv_fields(reference, with_padding=False)
    field, ref = report.summary.receptive_field, reference.summary.receptive_field
    assert (field.size, field.stride) == (ref.size, ref.stride) == ((491, 491), (32, 32))
    # Keras pads its five stride-2 convs (0, 1) where torchvision pads (1, 1): each shifts the
    # field by the effective stride before it, 1 + 2 + 4 + 8 + 16 = 31 input pixels
    assert ref.padding == (245, 245) and field.padding == (245 - 31, 245 - 31)
    assert Counter(f.code for f in report.findings) == Counter(f.code for f in reference.findings)


def _nhwc_conv(extra_reader: bool = False):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["y"], name="conv", kernel_shape=[3, 3], strides=[2, 2])]
    outputs = {"y": None}
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["x"], ["r"], name="relu"))
        outputs["r"] = None
    return make_model(nodes, {"x": [1, 9, 7, 3]}, outputs, [weight("w", (4, 3, 3, 3))])


def test_channels_last_input_is_analysed_after_its_transpose():
    report = archlint.lint(_nhwc_conv())
    conv = report.layer("conv")
    assert conv.output_shape == (1, 4, 4, 3) and conv.macs == 4 * 4 * 3 * 3 * 9
    assert conv.receptive_field == (3, 3) and conv.effective_stride == (2, 2)
    assert report.summary.receptive_field.input_extent == (9, 7)
    assert report.summary.inputs == {"x": (1, 3, 9, 7)}
    assert any("channels-last (1x9x7x3)" in note for note in report.summary.notes)


def test_input_also_read_without_the_transpose_keeps_its_layout():
    report = archlint.lint(_nhwc_conv(extra_reader=True))
    assert report.summary.inputs == {"x": (1, 9, 7, 3)}
    assert not any("channels-last" in note for note in report.summary.notes)
    assert report.layer("conv").macs == 4 * 4 * 3 * 3 * 9
