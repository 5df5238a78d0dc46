"""Training-time augmentation of one-hot DNA batches: random shift (jitter) and random reverse complement."""
from __future__ import annotations

import torch

from motifs.encode import reverse_complement


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return x (N, 4, L) with each window shifted by a random -max_shift..max_shift bases; vacated ends read as N."""
    if max_shift <= 0:
        return x
    n, _, length = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 1), generator=generator).to(x.device)
    source = torch.arange(length, device=x.device)[None] - shifts  # (N, L)
    inside = (source >= 0) & (source < length)
    shifted = x.gather(2, source.clamp(0, length - 1)[:, None].expand(-1, x.shape[1], -1))
    return shifted * inside[:, None].to(x.dtype)


def random_reverse_complement(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return x (N, 4, L) with a random half of the windows replaced by their reverse complement."""
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)[:, None, None]
    return torch.where(flip, reverse_complement(x), x)
