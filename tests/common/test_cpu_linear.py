"""Dense layers predict through oneDNN only where it pays (big float32 products on AMD CPUs), with nn.Linear's values."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import profile

from common import cpu_linear
from common.cpu_linear import OneDnnLinear, linear
from tests.conftest import unavailable


@pytest.fixture(autouse=True)
def onednn() -> None:
    """Fail in CI (its torch has oneDNN), skip elsewhere, where torch is built without oneDNN."""
    if not torch.backends.mkldnn.is_available():
        unavailable("this torch is built without oneDNN")


@pytest.fixture
def vendor(monkeypatch):
    """Set the CPU vendor the layer sees: vendor("AuthenticAMD") or vendor("GenuineIntel")."""
    def set_vendor(name: str) -> None:
        monkeypatch.setattr(cpu_linear, "cpu_vendor", lambda: name)
        cpu_linear.onednn_linear_inference.cache_clear()

    yield set_vendor
    cpu_linear.onednn_linear_inference.cache_clear()


def ran_onednn(run) -> bool:
    """Return True when `run()` called oneDNN's linear kernel (torch profiler)."""
    with profile() as trace:
        run()
    return any(event.key == "mkldnn::_linear_pointwise" for event in trace.key_averages())


def test_big_float32_predictions_go_through_onednn_on_amd_cpus_with_linears_values(vendor):
    vendor("AuthenticAMD")
    torch.manual_seed(0)
    layer = OneDnnLinear(100, 120)
    reference = nn.Linear(100, 120)
    reference.load_state_dict(layer.state_dict())  # the same parameters and names as nn.Linear
    for x in (torch.randn(4096, 100), torch.randn(8, 512, 100), torch.randn(100, 4096).t()):
        with torch.no_grad():
            assert ran_onednn(lambda: layer(x))
            torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-5)
        with torch.inference_mode():
            torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-5)


def test_training_autocast_small_products_and_other_cpus_keep_torchs_linear(vendor):
    vendor("AuthenticAMD")
    layer, x = OneDnnLinear(100, 120), torch.randn(4096, 100)
    assert not ran_onednn(lambda: layer(x).sum().backward())  # a gradient to compute: training
    assert layer.weight.grad is not None
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not ran_onednn(lambda: layer(x))
            assert layer(x).dtype == torch.bfloat16  # autocast still casts the layer
        assert not ran_onednn(lambda: layer(x[:64]))  # 64 x 100 x 120 multiply-adds: set-up would cost more
        assert not ran_onednn(lambda: linear(x.double(), layer.weight.double()))  # float64
        vendor("GenuineIntel")
        assert not ran_onednn(lambda: layer(x))


def test_the_dense_models_predict_through_onednn_and_match_plain_linears(vendor):
    from regression.model import DenseRegressor

    vendor("AuthenticAMD")
    torch.manual_seed(0)
    model = DenseRegressor().eval()
    plain = nn.Sequential(*[nn.Linear(m.in_features, m.out_features) if isinstance(m, nn.Linear) else m
                            for m in model.net])
    plain.load_state_dict(model.net.state_dict())
    x = torch.rand(16384, 1) * 200
    with torch.no_grad():
        assert ran_onednn(lambda: model(x))
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)
        assert torch.equal(model(x[:100]), plain(x[:100]))  # small batches: torch's own kernel, bit for bit


def test_a_torch_without_the_onednn_op_keeps_torchs_linear(vendor, monkeypatch):
    def missing(*args, **kwargs):
        raise RuntimeError("no such kernel in this build")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", missing)
    vendor("AuthenticAMD")
    layer, x = OneDnnLinear(100, 120), torch.randn(4096, 100)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
