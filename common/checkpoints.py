"""Checkpoints that rebuild themselves: networks remember their constructor arguments."""
from __future__ import annotations

import functools
import importlib
import inspect
from pathlib import Path

import torch
from torch import nn

from common.errors import ConfigError, DataError


def remember_init_args(cls: type) -> type:
    """Class decorator: keep the constructor's arguments in `self.init_args` so a checkpoint can rebuild it."""
    original = cls.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        original(self, *args, **kwargs)
        self.init_args = dict(list(bound.arguments.items())[1:])

    cls.__init__ = __init__
    return cls


def class_path(cls: type) -> str:
    """Return the importable name of a class, as checkpoints record it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(path: str) -> type:
    """Return the class a `class_path` names; ImportError or AttributeError if it cannot be imported here."""
    module_name, _, class_name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def rebuild_args(cls: type, init_args: dict) -> dict:
    """Return init_args with the class's `starting_weights_args` set to None: a checkpoint's state dict replaces them.

    A backbone that loads pretrained weights from a file at construction (ResNetBackbone's
    weights_path) must not need that file again to reload a checkpoint trained from it.
    """
    return {**init_args, **{name: None for name in getattr(cls, "starting_weights_args", ()) if name in init_args}}


def module_spec(module: nn.Module) -> dict:
    """Return {'class_path', 'init_args'} describing how to rebuild `module` (its trained weights aside)."""
    if not hasattr(module, "init_args"):
        raise ConfigError(f"{type(module).__name__} does not remember its arguments, so a checkpoint could not "
                          "rebuild it: decorate the class with @remember_init_args (common.checkpoints)")
    return {"class_path": class_path(type(module)), "init_args": rebuild_args(type(module), module.init_args)}


def build_from_spec(spec: dict) -> nn.Module:
    """Instantiate the module a `module_spec` describes; DataError if its class cannot be imported here."""
    try:
        cls = import_class(spec["class_path"])
    except (ImportError, AttributeError) as error:
        raise DataError(f"the checkpoint's {spec['class_path']} cannot be imported here ({error}): define that class "
                        "in a module both the training and this script import, not in the training script") from None
    return cls(**rebuild_args(cls, spec["init_args"]))  # older checkpoints still name their starting weights


def differing_args(saved: dict, built: dict) -> dict[str, tuple]:
    """Return {name: (saved, built)} for the constructor arguments both specs name but set differently.

    Tuples and lists compare alike (YAML gives lists where Python defaults are tuples); an argument
    only one side names (added or removed since the checkpoint was saved) is not compared.
    """
    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

    return {name: (saved[name], built[name]) for name in saved.keys() & built.keys()
            if plain(saved[name]) != plain(built[name])}


def accepted_hparams(cls: type, hparams: dict, keep: tuple[str, ...] = ()) -> dict:
    """Return the saved hyperparameters cls.__init__ accepts, plus the `keep` keys.

    LightningCLI adds others: private keys ("_class_path") and the values it links from the data
    (class names, task) into models that may not take them.
    """
    accepted = set(inspect.signature(cls.__init__).parameters) | set(keep)
    return {k: v for k, v in hparams.items() if k in accepted}


def read_checkpoint(path: str | Path, weights_only: bool = False) -> dict:
    """Load a checkpoint onto the CPU (so MPS/CUDA checkpoints open anywhere), with a clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:  # torch raises many types for a damaged file
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if "weights_only" in detail:  # torch's advice (load it unsafely) is not the fix: the file is the wrong one
            detail = "torch's safe loader refused it"
        raise DataError(f"checkpoint {path} could not be read: it is not a PyTorch checkpoint (.ckpt), or it is "
                        f"damaged ({error.__class__.__name__}: {detail})") from error
