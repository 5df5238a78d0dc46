"""Dropout: nn.Dropout's masks and scaling from torch.rand where bernoulli_ is serial, nn.Dropout elsewhere."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common import dropout
from common.dropout import Dropout


@pytest.fixture
def serial(monkeypatch):
    """Take the torch.rand mask, whatever this machine's CPU."""
    monkeypatch.setattr(dropout, "serial_bernoulli", lambda: True)


@pytest.mark.usefixtures("serial")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_rand_mask_keeps_1_minus_p_scaled_as_nn_dropout_and_passes_the_gradient_through_it(dtype):
    x = (torch.rand(400, 250) + 0.5).to(dtype).requires_grad_()
    layer = Dropout(0.3)
    y = layer(x)
    kept = y != 0
    share = kept.float().mean().item()
    assert abs(share - 0.7) < 4 * (0.21 / x.numel()) ** 0.5  # binomial: 4 standard deviations
    scale = torch.ones((), dtype=dtype).div_(0.7)  # nn.Dropout divides its mask in x's dtype
    assert torch.equal(y[kept], x.detach()[kept] * scale)
    upstream = torch.randn(x.shape).to(dtype)
    (grad,) = torch.autograd.grad(y, x, upstream)
    assert torch.equal(grad, torch.where(kept, upstream * scale, 0))


@pytest.mark.usefixtures("serial")
def test_a_seed_fixes_the_mask_and_evaluation_p_0_and_p_1_are_nn_dropout():
    x = torch.rand(64, 32)
    layer = Dropout(0.5)
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first) and not torch.equal(layer(x), first)
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x) and torch.equal(Dropout(1.0)(x), torch.zeros_like(x))


def test_where_bernoulli_is_parallel_it_is_nn_dropout_with_its_random_stream(monkeypatch):
    monkeypatch.setattr(dropout, "serial_bernoulli", lambda: False)
    x = torch.rand(64, 32)
    torch.manual_seed(4)
    got = Dropout(0.4)(x)
    torch.manual_seed(4)
    assert torch.equal(got, F.dropout(x, 0.4, training=True))
    assert isinstance(Dropout(0.4), nn.Dropout) and Dropout(0.4).state_dict() == {}


def test_only_intel_cpus_with_mkl_sample_bernoulli_in_parallel(monkeypatch):
    intel = not torch.backends.mkl.is_available()
    for vendor, expected in (("GenuineIntel", intel), ("AuthenticAMD", True), ("", True)):
        monkeypatch.setattr(dropout, "cpu_vendor", lambda vendor=vendor: vendor)
        dropout.serial_bernoulli.cache_clear()
        assert dropout.serial_bernoulli() == expected
    dropout.serial_bernoulli.cache_clear()
