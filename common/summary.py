"""A keras-style model summary: each layer's output shape and parameter count."""
from __future__ import annotations

import torch
from torch import nn


def summarize(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> str:
    """Return a table of leaf layers (name, type, output shape, parameters) for one input of `input_shape`.

    input_shape excludes the batch dimension, e.g. (3, 90, 160) or (4, 200).
    """
    rows: list[tuple[str, str, str, int]] = []
    hooks = []
    for name, layer in model.named_modules():
        if list(layer.children()) or name == "":
            continue

        def record(module, inputs, output, name=name):
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else "?"
            rows.append((name, type(module).__name__, str((None, *shape)),
                         sum(p.numel() for p in module.parameters(recurse=False))))

        hooks.append(layer.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=dtype, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    width = max([len(r[0]) + len(r[1]) + 3 for r in rows] + [24])
    lines = [f"{'Layer (type)':<{width}} {'Output Shape':<22} {'Param #':>10}", "=" * (width + 34)]
    lines += [f"{f'{n} ({t})':<{width}} {s:<22} {p:>10,}" for n, t, s, p in rows]
    lines += ["=" * (width + 34), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(lines)


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameters of `model`."""
    return sum(p.numel() for p in model.parameters())
