"""DirectFusedAdam: the same steps as torch's fused Adam, and torch's own step wherever more is asked of it."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from common.optim import DirectFusedAdam, DirectFusedAdamW, make_optimizer


def net_and_batch(seed: int = 0):
    """Return a small net (one frozen bias: no gradient) and a regression batch."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    net[2].bias.requires_grad_(False)
    return net, torch.randn(32, 3), torch.randn(32, 1)


def train(net, optimizer, x, y, steps: int = 6, schedule: bool = True):
    """Take `steps` optimiser steps on x, y (halving the learning rate after three when `schedule`)."""
    for step in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
        if schedule and step == 2:
            for group in optimizer.param_groups:
                group["lr"] /= 2


def same_state(net, optimizer, reference_net, reference) -> bool:
    """Return True when weights and optimiser states agree bit for bit."""
    weights = all(torch.equal(p, q) for p, q in zip(net.parameters(), reference_net.parameters()))
    mine, theirs = optimizer.state_dict()["state"], reference.state_dict()["state"]
    return weights and mine.keys() == theirs.keys() and all(
        torch.equal(mine[k][name], theirs[k][name]) for k in mine for name in mine[k])


@pytest.mark.parametrize("direct, torch_optimizer", [(DirectFusedAdam, torch.optim.Adam),
                                                     (DirectFusedAdamW, torch.optim.AdamW)])
def test_direct_steps_give_torchs_fused_weights_and_state(direct, torch_optimizer, monkeypatch):
    """Weight decay, a learning rate changed mid-run, a parameter without gradient: all as torch's fused step."""
    net, x, y = net_and_batch()
    reference_net = copy.deepcopy(net)
    optimizer = direct(net.parameters(), lr=1e-2, weight_decay=0.1, fused=True)
    reference = torch_optimizer(reference_net.parameters(), lr=1e-2, weight_decay=0.1, fused=True)
    kernel_calls = []
    original = torch._fused_adamw_ if direct is DirectFusedAdamW else torch._fused_adam_
    monkeypatch.setattr(torch, original.__name__, lambda *a, **k: (kernel_calls.append(1), original(*a, **k)))
    train(net, optimizer, x, y)
    monkeypatch.undo()
    train(reference_net, reference, x, y)
    assert len(kernel_calls) == 6  # the direct path ran every step
    assert same_state(net, optimizer, reference_net, reference)
    assert not torch.equal(net[0].weight, net_and_batch()[0][0].weight)  # it trained


def test_torch_steps_where_hooks_a_closure_a_profiler_or_amsgrad_ask_for_more():
    """Step hooks fire, a closure's loss comes back, a profiler records the step, amsgrad is torch's."""
    net, x, y = net_and_batch()
    optimizer = DirectFusedAdam(net.parameters(), lr=1e-2, fused=True)
    calls = []
    pre = optimizer.register_step_pre_hook(lambda *args: calls.append("pre"))
    post = optimizer.register_step_post_hook(lambda *args: calls.append("post"))
    optimizer.zero_grad()
    nn.functional.mse_loss(net(x), y).backward()
    optimizer.step()
    pre.remove(), post.remove()
    assert calls == ["pre", "post"]

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        return loss

    assert torch.is_tensor(optimizer.step(closure))
    with torch.profiler.profile() as profile:
        optimizer.step(closure)
    assert "Optimizer.step#DirectFusedAdam.step" in {event.name for event in profile.events()}

    reference_net = copy.deepcopy(net)
    amsgrad = DirectFusedAdam(net.parameters(), lr=1e-2, amsgrad=True, fused=True)
    reference = torch.optim.Adam(reference_net.parameters(), lr=1e-2, amsgrad=True, fused=True)
    train(net, amsgrad, x, y, schedule=False)
    train(reference_net, reference, x, y, schedule=False)
    assert same_state(net, amsgrad, reference_net, reference)


def test_make_optimizer_gives_the_direct_steps_and_they_reload_as_torchs():
    """adam and adamw use them; their state dict loads into torch's Adam and back."""
    net, x, y = net_and_batch()
    optimizer = make_optimizer(net.parameters(), "adam", lr=1e-2)
    assert type(optimizer) is DirectFusedAdam and optimizer.param_groups[0]["fused"]
    assert type(make_optimizer(net.parameters(), "adamw")) is DirectFusedAdamW
    train(net, optimizer, x, y, steps=2, schedule=False)
    reference_net = copy.deepcopy(net)
    reference = torch.optim.Adam(reference_net.parameters(), lr=1e-2, fused=True)
    reference.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # else both update the same tensors
    train(net, optimizer, x, y, steps=2, schedule=False)
    train(reference_net, reference, x, y, steps=2, schedule=False)
    assert same_state(net, optimizer, reference_net, reference)
