"""Shared fixtures: the course's real data and a C++ compiler (required in CI, skipped with a reason elsewhere)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from common.paths import data_root
from common.seeding import seed_everything

# Two cores are all CI has; more threads than cores only adds contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Seed every test alike, so that what a test draws does not depend on which tests ran before it."""
    seed_everything(0)


def unavailable(message: str) -> None:
    """Fail the test in CI, where everything it needs must be there; skip it elsewhere, saying why."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def bf16_fits_as_taken_and_in_float32(make_model, data, tmp_path, monkeypatch) -> list[tuple[set, list, dict]]:
    """Fit and validate a fresh Classifier from make_model() under bf16-mixed twice, inputs first in the dtype it
    takes (Classifier.input_dtype), then in float32; return each run's (dtypes its backbone saw, metrics, weights)."""
    from common.classifier import Classifier
    from common.trainer import build_trainer

    runs = []
    for inputs in ("as the module takes them", "float32"):
        if inputs == "float32":
            monkeypatch.setattr(Classifier, "input_dtype", lambda self: torch.float32)
        torch.manual_seed(0)
        model = make_model()
        seen = set()
        model.backbone.register_forward_pre_hook(lambda module, args: seen.add(args[0].dtype))
        trainer = build_trainer(max_epochs=1, accelerator="cpu", precision="bf16-mixed", default_root_dir=str(tmp_path),
                                logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                num_sanity_val_steps=0)
        trainer.fit(model, data)
        runs.append((seen, trainer.validate(model, data, verbose=False), model.state_dict()))
    return runs


@pytest.fixture(scope="session")
def course_data() -> Path:
    """Return the real course data folder; fail in CI when it is missing, skip elsewhere."""
    root = data_root()
    if root is None or not root.is_dir():
        unavailable("real course data not found: set DEEPBIO_DATA or place it at ../shared/data")
    return root


@pytest.fixture(scope="session")
def cxx_compiler() -> str:
    """Return the C++ compiler torch.compile would use; fail in CI when there is none, skip elsewhere."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        return get_cpp_compiler()
    except Exception as error:  # inductor raises its own InvalidCxxCompiler
        unavailable(f"compiled max-pooling needs a C++ compiler ({type(error).__name__})")


@pytest.fixture
def failing_compile(monkeypatch):
    """Return a function that makes compiling `function` fail (others run as they are) in a long training run."""
    from common.pooling import CompiledPooling

    def fail_for(function):
        def compiled(candidate):
            if candidate is function:
                def fail(*args):
                    raise RuntimeError("compile error")
                return fail
            return candidate

        monkeypatch.setattr(CompiledPooling, "training_steps", float("inf"))
        monkeypatch.setattr(CompiledPooling, "failure", None)
        monkeypatch.setattr(CompiledPooling, "compiled", compiled)

    return fail_for
