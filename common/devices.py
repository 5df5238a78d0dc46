"""Pick the accelerator and the fastest safe precision for it."""
from __future__ import annotations

import ctypes
import os

import torch

from common.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}  # Lightning precision -> autocast dtype


def available_cpu_cores() -> int:
    """Return the CPU cores this process may run on (its affinity, where the system reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_has_native_bf16() -> bool:
    """Return True when this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX)."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return bool(amx or avx512_bf16)


NVML_CUDA_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def nvml_loadable() -> bool:
    """Return True when NVIDIA's management library (libnvidia-ml, part of the GPU driver) loads."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def skip_nvml_cuda_check_without_nvml() -> None:
    """Stop torch looking for NVML at every CUDA check where NVML is absent; its answer is the same without.

    Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (a fork-safe check). Adam asks for
    the accelerator at every step, and without NVML (CPU-only Linux) each ask tried to load the
    library, failed and fell back to the CUDA runtime: ~0.1 ms per step, a third of the sqrt
    net's (training 66k -> 93k samples/s). Without NVML torch asks the runtime directly: same answer.
    """
    if os.environ.get(NVML_CUDA_CHECK) == "1" and not nvml_loadable():
        del os.environ[NVML_CUDA_CHECK]


def resolve_accelerator(accelerator: str = "auto") -> str:
    """Return 'cuda', 'mps' or 'cpu' for a requested accelerator name."""
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"unknown accelerator {accelerator!r}; choose one of {', '.join(ACCELERATORS)}")
    if accelerator == "gpu":
        return "cuda"
    if accelerator != "auto":
        return accelerator
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_precision(accelerator: str, precision: str = "auto", cpu_bf16: bool = False) -> str:
    """Return the Lightning precision string for 'auto' (bf16 on CUDA, bf16 on CPU only where it pays)."""
    if precision != "auto":
        return precision
    if accelerator == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if accelerator == "cpu" and cpu_bf16 and cpu_has_native_bf16():
        return "bf16-mixed"
    # MPS autocast has shown wrong metrics and slow kernels; fp32 is the safe default there.
    return "32-true"
