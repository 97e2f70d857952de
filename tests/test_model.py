"""The RCNN of Table 1: feature-map sizes, the recurrent layer, the ablations without recurrence, input
normalisation."""

import pytest
import torch
import torch.nn.functional as F

from pipeline.model import RCNN, RCNNConfig, RecurrentConvLayer


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_feature_map_sizes_follow_table1():
    model = RCNN(RCNNConfig(maps=2, recurrent_steps=1, n_classes=4)).eval()
    x = torch.zeros(1, 3, 1966, 30, dtype=torch.uint8)
    sizes = {}
    h = x.float()
    for name, layer in model.body.named_children():
        h = layer(h)
        sizes[name] = tuple(h.shape[1:])
    assert sizes["conv1"] == (2, 1962, 26)
    assert sizes["pool1"] == (2, 490, 26)
    assert sizes["rcl2"] == (2, 490, 26)
    assert sizes["pool2"] == (2, 122, 26)
    assert sizes["pool3"] == (2, 30, 6)
    assert sizes["pool4"] == (2, 7, 3)
    assert sizes["rcl5"] == (2, 7, 3)
    assert model(x).shape == (1, 4)


def test_every_conv_has_m_maps():
    model = RCNN(RCNNConfig(maps=6, recurrent_steps=2, n_classes=3))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 4 * 2                      # conv1 + (feed-forward, recurrent) per RCL
    assert all(c.out_channels == 6 for c in convs)
    assert model.classifier.in_features == 6 and model.classifier.out_features == 3


def test_zero_recurrent_steps_leaves_only_the_1x1_convs():
    m = 8
    rcnn = RCNN(RCNNConfig(maps=m, recurrent_steps=3, n_classes=4))
    cnn = RCNN(RCNNConfig(maps=m, recurrent_steps=0, n_classes=4))
    assert all(rcl.recurrent is None for rcl in (cnn.body.rcl2, cnn.body.rcl3, cnn.body.rcl4, cnn.body.rcl5))
    assert not any(p.shape == (m, m, 3, 3) for p in cnn.parameters())
    # Per RCL the RCNN adds one 3x3 recurrent conv (no bias) and a BatchNorm (2m) per step.
    assert n_parameters(rcnn) - n_parameters(cnn) == 4 * (9 * m * m + 3 * 2 * m)


def test_the_feedforward_ablation_removes_only_the_recurrence():
    """rcnn_feedforward: every RCL keeps its 1x1 and its 3x3 conv and applies each once, in sequence,
    h = f(w_r * f(w_f * x)); the RCNN has the same conv weights and 2 more BatchNorms (2m each) per RCL."""
    m = 8
    rcnn = RCNN(RCNNConfig(maps=m, recurrent_steps=3, n_classes=4))
    feedforward = RCNN(RCNNConfig(maps=m, recurrent_steps=1, n_classes=4, recurrent=False))
    conv_shapes = sorted(tuple(p.shape) for p in feedforward.parameters() if p.ndim == 4)
    assert conv_shapes == sorted(tuple(p.shape) for p in rcnn.parameters() if p.ndim == 4)
    assert sum(p.shape == (m, m, 3, 3) for p in feedforward.parameters()) == 4
    assert n_parameters(rcnn) - n_parameters(feedforward) == 4 * 2 * (2 * m)
    assert n_parameters(feedforward) == 3 * 25 * m + m + 2 * m + 4 * (m * m + m + 9 * m * m + 2 * 2 * m) + 4 * m + 4
    x = torch.randint(0, 256, (2, 3, 1966, 30), dtype=torch.uint8)
    assert feedforward.eval()(x).shape == (2, 4)

    torch.manual_seed(0)
    layer = RecurrentConvLayer(m, recurrent_steps=1, recurrent=False).eval()
    h = torch.randn(1, m, 9, 7)
    f0, f1 = layer.norms

    def f(norm, v):
        return norm(F.relu(v))

    assert torch.allclose(layer(h), f(f1, layer.recurrent(f(f0, layer.feed_forward(h)))), atol=1e-6)
    with pytest.raises(ValueError, match="recurrent_steps must be 1"):
        RecurrentConvLayer(m, recurrent_steps=3, recurrent=False)


def test_recurrent_weights_are_shared_across_steps():
    m = 4
    one = RecurrentConvLayer(m, recurrent_steps=1)
    three = RecurrentConvLayer(m, recurrent_steps=3)
    for layer in (one, three):
        assert sum(p.shape == (m, m, 3, 3) for p in layer.parameters()) == 1
    # More steps add only the per-step BatchNorm affine parameters, never conv weights.
    assert n_parameters(three) - n_parameters(one) == 2 * (2 * m)


def test_recurrent_layer_unrolls_liang_hu_equations():
    torch.manual_seed(0)
    layer = RecurrentConvLayer(3, recurrent_steps=2).eval()
    for i, norm in enumerate(layer.norms):                 # distinct, known per-step normalisations
        norm.running_mean.fill_(0.1 * i)
        norm.running_var.fill_(1.0 + i)
    x = torch.randn(2, 3, 9, 5)

    def f(z, step):
        return (F.relu(z) - 0.1 * step) / torch.sqrt(torch.tensor(1.0 + step + layer.norms[step].eps))

    w_r = layer.recurrent.weight
    u = F.conv2d(x, layer.feed_forward.weight, layer.feed_forward.bias)
    h = f(u, 0)                                            # h(0) = f(u)
    for step in (1, 2):                                    # h(t) = f(u + w_r * h(t-1)), one w_r
        h = f(u + F.conv2d(h, w_r, padding=1), step)
    torch.testing.assert_close(layer(x), h)


def test_input_normalisation_and_uint8_input():
    torch.manual_seed(0)
    config = RCNNConfig(maps=2, recurrent_steps=1, n_classes=3, pixels=300, frames=16)
    plain = RCNN(config).eval()
    normalised = RCNN(config).eval()
    normalised.load_state_dict(plain.state_dict())
    normalised.set_input_normalisation([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    x = torch.randint(0, 256, (2, 3, 300, 16), dtype=torch.uint8)
    torch.testing.assert_close(plain(x), plain(x.float()))
    # (x/255 - 0.5) / 0.25 = (4x - 510) / 255: the same as the plain model on 4x - 510.
    torch.testing.assert_close(normalised(x), plain(4 * x.float() - 510), rtol=1e-4, atol=1e-4)
    assert torch.equal(normalised.state_dict()["input_std"].flatten(), torch.full((3,), 0.25))
