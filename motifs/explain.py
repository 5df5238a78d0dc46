"""What the network looks at: in-silico mutagenesis (Captum zero-out and batched substitution), filters -> PFMs."""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import FeatureAblation
from torch import nn
from torchmetrics.functional.classification import binary_auroc

from common.cpu_memory import heap_reuse
from common.errors import DataError
from common.modes import restores_mode
from motifs.pwm import similarity


def class_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return (N, n_classes) probabilities of a Classifier; binary models give [P(negative), P(positive)]."""
    probs = model.probabilities(model(x))
    return torch.cat([1 - probs, probs], dim=1) if model.task == "binary" else probs


def as_windows(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Return one-hot DNA as a float tensor (N, 4, L); DataError naming the expected shape otherwise."""
    x = torch.as_tensor(x)
    if x.dim() != 3 or x.shape[1] != 4:
        raise DataError(f"one-hot DNA must be a batch (N, 4, L), got {tuple(x.shape)}: one window as x[None]; "
                        "sequences through motifs.encode.encode")
    return x if x.is_floating_point() else x.float()


def as_targets(target: torch.Tensor | np.ndarray | int, n: int) -> torch.Tensor:
    """Return class indices (n,) from one index or one per window; float labels (binary data's 0./1.) become indices."""
    target = torch.as_tensor(target)
    if target.is_floating_point():
        if not torch.equal(target, target.round()):
            raise DataError("targets are class indices: whole numbers (binary: 0 or 1), not probabilities")
        target = target.long()
    return target.expand(n) if target.dim() == 0 else target


@restores_mode
@heap_reuse()
@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Return class probabilities (N, n_classes) for one-hot DNA (N, 4, L), in batches, in eval mode."""
    model.eval()
    x = as_windows(x)
    return torch.cat([class_probabilities(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@restores_mode
@heap_reuse()
def zero_ism(model: nn.Module, x: torch.Tensor, target: torch.Tensor | int, batch_size: int = 4096) -> torch.Tensor:
    """Return (N, L): drop of the target class probability when each base is set to [0, 0, 0, 0] (course exercise).

    Uses Captum's FeatureAblation with the four channels of a position as one feature;
    `perturbations_per_eval` packs many ablated copies into one forward pass.
    """
    model.eval()
    x = as_windows(x)
    length = x.shape[-1]
    mask = torch.arange(length).expand(1, 4, length)
    ablation = FeatureAblation(lambda inputs: class_probabilities(model, inputs))
    target = as_targets(target, len(x))
    chunk = max(1, min(len(x), batch_size // 64))  # up to 64 windows at a time, batch_size copies per pass
    parts = []
    for i in range(0, len(x), chunk):
        rows = x[i:i + chunk]
        per_eval = max(1, min(length, batch_size // len(rows)))
        with torch.no_grad():
            attributions = ablation.attribute(rows, target=target[i:i + chunk], baselines=0.0, feature_mask=mask,
                                              perturbations_per_eval=per_eval)
        parts.append(attributions[:, 0])  # the four channels of a position share one value
    return torch.cat(parts)


@restores_mode
@heap_reuse()
@torch.no_grad()
def substitution_ism(model: nn.Module, x: torch.Tensor, target: torch.Tensor | int,
                     batch_size: int = 4096) -> torch.Tensor:
    """Return (N, 4, L): change of the target class probability when position j is set to base b (0 at the reference).

    Only the 3 alternative bases of each position are evaluated (3 x L variants a sequence; an N
    column counts A as its reference). Variants of several sequences share one forward pass: they
    are built by one indexed write, and sequences are packed until `batch_size`.
    """
    model.eval()
    x = as_windows(x)
    n, _, length = x.shape
    target = as_targets(target, n)
    n_variants = 3 * length
    variant_position = torch.arange(n_variants) % length  # variant v changes position v % L
    reference = predict(model, x)[torch.arange(n), target]
    per_pass = max(1, batch_size // n_variants)
    out = torch.zeros(n, 4, length)
    for i in range(0, n, per_pass):
        rows = x[i:i + per_pass]
        m = len(rows)
        # Variant k * L + j sets position j to the k-th base after the reference one (cyclically).
        alternatives = (rows.argmax(1)[:, None, :] + torch.arange(1, 4)[None, :, None]) % 4  # (m, 3, L)
        base = alternatives.reshape(m, n_variants)
        seq = torch.arange(m)[:, None].expand(m, n_variants)
        variant = torch.arange(n_variants)[None].expand(m, n_variants)
        position = variant_position[None].expand(m, n_variants)
        variants = rows[:, None].repeat(1, n_variants, 1, 1)  # (m, 3L, 4, L)
        variants[seq, variant, :, position] = 0
        variants[seq, variant, base, position] = 1
        probs = class_probabilities(model, variants.flatten(0, 1)).view(m, n_variants, -1)
        chosen = probs.gather(2, target[i:i + m, None, None].expand(-1, n_variants, 1))[..., 0]
        out[i + seq, base, position] = chosen - reference[i:i + m, None]
    return out


def position_importance(substitutions: torch.Tensor) -> torch.Tensor:
    """Return (N, L): the mean drop of the target probability over the three alternative bases."""
    return -substitutions.sum(1) / 3


def implant_auroc(importance: torch.Tensor, implant_mask: torch.Tensor | np.ndarray) -> float:
    """Return the AUROC of per-position importance (N, L) against the known implant positions (N, L)."""
    mask = torch.as_tensor(np.asarray(implant_mask)).flatten().long()
    return float(binary_auroc(importance.flatten().float(), mask))


def top_position_enrichment(importance: torch.Tensor, site_mask: torch.Tensor, top_k: int = 5) -> dict[str, float]:
    """Return how often the top_k ISM positions of each window fall in known sites, against all positions.

    enrichment = fraction of top positions inside a site / fraction of all positions inside a site.
    """
    top = importance.topk(top_k, dim=1).indices
    in_site_top = site_mask.gather(1, top).float().mean().item()
    in_site_all = site_mask.float().mean().item()
    return {"top_in_site": in_site_top, "random_in_site": in_site_all,
            "enrichment": in_site_top / in_site_all if in_site_all else float("nan")}


@torch.no_grad()
def filter_pfms(conv: nn.Conv1d, x: torch.Tensor, threshold: float = 0.5) -> np.ndarray:
    """Return (F, k, 4) position frequency matrices of first-layer filters from the windows that activate them most.

    A window counts for a filter where its activation exceeds `threshold` x that filter's
    maximum over x (the Basset / DeepBind recipe); filters that never fire give uniform rows.
    """
    activations = conv(x)  # (N, F, L - k + 1)
    peak = activations.amax(dim=(0, 2), keepdim=True).clamp(min=1e-8)
    selected = (activations > threshold * peak).float()
    windows = x.unfold(2, conv.kernel_size[0], 1)  # (N, 4, L - k + 1, k)
    counts = torch.einsum("nfl,nclk->fkc", selected, windows).double().numpy() + 0.25
    return counts / counts.sum(-1, keepdims=True)


def filter_similarities(pfms: np.ndarray, known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return {factor: (F,) similarity of each filter's PFM to the factor's matrix} (best offset and strand)."""
    return {name: np.array([similarity(p, matrix, min_overlap=min(5, len(p))) for p in pfms])
            for name, matrix in known.items()}
