"""Dense layers predict through oneDNN only where it pays (big float32 products on x86 CPUs), with nn.Linear's values."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.profiler import profile

from common import cpu_linear
from common.cpu_linear import DenseStack, OneDnnLinear, linear
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
        cpu_linear.onednn_linear_inference()  # its probe call is not counted in the tests

    yield set_vendor
    cpu_linear.onednn_linear_inference.cache_clear()


def onednn_calls(run) -> dict[str, int]:
    """Return how often `run()` called oneDNN's linear kernel and torch's ReLU kernels (torch profiler)."""
    with profile() as trace:
        run()
    counts = {event.key: event.count for event in trace.key_averages()}
    return {"onednn": counts.get("mkldnn::_linear_pointwise", 0),
            "relu": counts.get("aten::relu", 0) + counts.get("aten::relu_", 0)}


def ran_onednn(run) -> bool:
    """Return True when `run()` called oneDNN's linear kernel."""
    return onednn_calls(run)["onednn"] > 0


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


def test_on_intel_cpus_only_big_outputs_go_through_onednn(vendor):
    vendor("GenuineIntel")
    with torch.no_grad():
        assert ran_onednn(lambda: linear(torch.randn(16384, 100), torch.randn(120, 100)))  # 1.97M outputs
        assert not ran_onednn(lambda: linear(torch.randn(4096, 100), torch.randn(120, 100)))  # 491k outputs
        # 432M multiply-adds but 100 outputs a row: MKL's product is faster (the dense image baseline)
        assert not ran_onednn(lambda: linear(torch.randn(100, 4320), torch.randn(100, 4320)))
        vendor("AuthenticAMD")
        assert ran_onednn(lambda: linear(torch.randn(100, 4320), torch.randn(100, 4320)))


def test_training_autocast_small_products_and_other_cpus_keep_torchs_linear(vendor):
    vendor("AuthenticAMD")
    layer, x = OneDnnLinear(100, 120), torch.randn(4096, 100)
    assert not ran_onednn(lambda: layer(x).sum().backward())  # a gradient to compute: training
    assert layer.weight.grad is not None
    layer.weight.requires_grad_(False)  # only the bias trains (frozen weights)
    assert not ran_onednn(lambda: linear(x, layer.weight, layer.bias, "relu").sum().backward())
    assert layer.bias.grad is not None
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not ran_onednn(lambda: layer(x))
            assert layer(x).dtype == torch.bfloat16  # autocast still casts the layer
        assert not ran_onednn(lambda: layer(x[:64]))  # 64 x 100 x 120 multiply-adds: set-up would cost more
        assert not ran_onednn(lambda: linear(x.double(), layer.weight.double()))  # float64
        vendor("")  # an ARM CPU, say: no /proc/cpuinfo vendor of the two
        assert not ran_onednn(lambda: layer(x))


@pytest.mark.parametrize("cpu", ["AuthenticAMD", "GenuineIntel"])
def test_dense_stacks_predict_each_linear_and_relu_in_one_onednn_call_with_sequentials_values(vendor, cpu):
    vendor(cpu)
    torch.manual_seed(0)
    stack = DenseStack(nn.Linear(1, 100), nn.ReLU(), nn.Linear(100, 120), nn.ReLU(), OneDnnLinear(120, 1))
    plain = nn.Sequential(*stack)
    assert list(stack.state_dict()) == list(plain.state_dict())  # checkpoints load either way
    x = torch.rand(16384, 1) * 200
    with torch.no_grad():
        calls = onednn_calls(lambda: stack(x))
        # The ReLUs ride on oneDNN's writes; the 1-output layer pays on AMD only (2M multiply-adds, 16k outputs)
        assert calls == {"onednn": 2 + (cpu == "AuthenticAMD"), "relu": 0}
        torch.testing.assert_close(stack(x), plain(x), rtol=1e-5, atol=1e-4)
        assert torch.equal(stack(x[:64]), plain(x[:64]))  # small batches: torch's kernels, bit for bit
        assert onednn_calls(lambda: stack(x[:64])) == {"onednn": 0, "relu": 2}


def test_the_dense_models_predict_through_fused_onednn_calls_and_match_plain_linears(vendor):
    from regression.model import DenseRegressor
    from rickmorty.models import DenseBaseline

    vendor("GenuineIntel")
    torch.manual_seed(0)
    model = DenseRegressor().eval()
    plain = nn.Sequential(*[nn.Linear(m.in_features, m.out_features) if isinstance(m, nn.Linear) else m
                            for m in model.net])
    plain.load_state_dict(model.net.state_dict())
    x = torch.rand(16384, 1) * 200
    with torch.no_grad():
        assert onednn_calls(lambda: model(x)) == {"onednn": 2, "relu": 0}
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-4)
    assert isinstance(DenseBaseline((3, 9, 16)).layers, DenseStack)


def test_dense_stacks_train_as_sequential_and_run_hooked_layers_one_by_one(vendor):
    vendor("GenuineIntel")
    torch.manual_seed(0)
    stack = DenseStack(nn.Linear(4, 600), nn.ReLU(), nn.Linear(600, 1))
    plain = copy.deepcopy(nn.Sequential(*stack))
    x = torch.randn(1024, 4)
    stack(x).square().sum().backward()
    plain(x).square().sum().backward()
    for ours, theirs in zip(stack.parameters(), plain.parameters()):
        assert torch.equal(ours.grad, theirs.grad)  # training takes torch's kernels, bit for bit
    seen = []
    stack[1].register_forward_hook(lambda layer, args, out: seen.append(out.shape))
    with torch.no_grad():
        assert onednn_calls(lambda: stack(x)) == {"onednn": 0, "relu": 1}  # the hooked ReLU runs on its own
    assert seen == [(1024, 600)]

    class ScaledLinear(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    scaled = DenseStack(ScaledLinear(4, 600), nn.ReLU())
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), nn.Sequential(*scaled)(x))  # its own forward, not fused away


def test_linear_names_the_activations_it_can_fuse():
    with pytest.raises(ValueError, match="activation must be one of .*'relu'.*not 'tanh'"):
        linear(torch.randn(2, 3), torch.randn(4, 3), activation="tanh")


def test_a_torch_without_the_onednn_op_keeps_torchs_linear(vendor, monkeypatch):
    def missing(*args, **kwargs):
        raise RuntimeError("no such kernel in this build")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", missing)
    vendor("AuthenticAMD")
    layer, x = OneDnnLinear(100, 120), torch.randn(4096, 100)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), nn.functional.linear(x, layer.weight, layer.bias))


def test_big_predictions_run_in_cache_sized_chunks_of_rows_with_one_pass_values(vendor):
    vendor("AuthenticAMD")
    torch.manual_seed(0)
    stack = DenseStack(nn.Linear(1, 100), nn.ReLU(), nn.Linear(100, 120), nn.ReLU(), OneDnnLinear(120, 1)).eval()
    x = torch.rand(3 * 16384, 1) * 200
    assert stack.chunk_rows(x) is None  # a gradient may be wanted: one pass
    with torch.no_grad():
        # 8 MiB of 120 float32 outputs is 17,476 rows: down to a power of two
        assert stack.chunk_rows(x) == 16384 and stack.chunk_rows(x[:16384]) is None
        assert onednn_calls(lambda: stack(x)) == {"onednn": 3 * 3, "relu": 0}  # three chunks through all layers
        torch.testing.assert_close(stack(x), nn.Sequential(*stack)(x), rtol=1e-5, atol=1e-4)
        assert stack.train().chunk_rows(x) is None  # train-mode layers (batch norm) may need the whole batch
        stack.eval()
        vendor("GenuineIntel")
        assert stack.chunk_rows(x) is None  # one pass was faster on a Xeon
        vendor("AuthenticAMD")
        seen = []
        stack[3].register_forward_hook(lambda layer, args, out: seen.append(out.shape))
        assert stack.chunk_rows(x) is None
        stack(x)
    assert seen == [(3 * 16384, 120)]  # a hook sees the whole batch, as without chunks
