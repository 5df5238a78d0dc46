"""LightningCLI set up the deepbio way: our Trainer factory is the `trainer:` section of every YAML config."""
from __future__ import annotations

import argparse
import difflib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from common.checkpoints import class_path, import_class, read_checkpoint, rebuild_args
from common.errors import ConfigError, DataError, DeepBioError
from common.plots import plot_training_curves
from common.summary import summarize
from common.trainer import build_trainer


class ConciseErrorParser(LightningArgumentParser):
    """LightningArgumentParser whose errors are one line and a tip, with a suggestion for a misspelled option.

    jsonargparse printed the subcommand's whole usage first (~55 lines for rickmorty's fit), which
    pushed the error itself out of sight; `--help` still lists every setting.
    """

    def print_usage(self, file=None) -> None:
        """Print nothing: an error names the problem and `--help` gives the usage."""

    def error(self, message: str, *args, **kwargs):
        """Exit with the message (and the closest known option for each unrecognized one)."""
        ex = kwargs.get("ex", args[0] if args else None)  # newer jsonargparse versions pass the exception
        parser = getattr(ex, "subcommand_parser", None) or self
        unknown = re.findall(r"--[\w.-]+", message) if message.startswith("unrecognized arguments") else []
        known = [option for option in parser._option_string_actions if option.startswith("--")]
        close = [match for option in unknown for match in difflib.get_close_matches(option, known, n=1)]
        if close:
            message += f" (did you mean {', '.join(close)}?)"
        super().error(message, *args, **kwargs)


class DeepBioCLI(LightningCLI):
    """`python -m <task> fit|validate|test|predict --config <yaml>`; constructor type hints are the config.

    `links` pass values the datamodule knows (class names, task) to the model, as (source, target)
    or (source, target, compute_fn) where the source is a whole object (subclass mode: "data").
    `command` is how help and error messages name the program. Options must be spelled out in
    full: argparse's default would take `--trainer.max_epoch` silently as `--trainer.max_epochs`.
    """

    def __init__(self, model_class, datamodule_class, links: tuple[tuple, ...] = (), command: str = "deepbio",
                 **kwargs) -> None:
        self.links = links
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_class", ConciseErrorParser)
        kwargs["parser_kwargs"] = {"prog": command, "allow_abbrev": False, **kwargs.get("parser_kwargs", {})}
        super().__init__(model_class, datamodule_class, trainer_class=build_trainer, **kwargs)

    def parse_arguments(self, parser, args) -> None:
        """Parse the command line; refuse evaluating without a checkpoint, a missing one, or another model's."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if subcommand in ("validate", "test", "predict") and not ckpt_path:
            # Lightning would run the freshly built, untrained model and write its guesses as results.
            raise ConfigError(f"{subcommand} needs the trained model: give --ckpt_path <run folder>/checkpoints/"
                              "<name>.ckpt")
        if ckpt_path and Path(ckpt_path).is_dir():
            raise DataError(f"checkpoint {ckpt_path} is a folder: give a .ckpt file inside it")
        if ckpt_path and is_missing_local_file(ckpt_path):
            raise DataError(f"checkpoint {ckpt_path} does not exist")
        if ckpt_path and Path(ckpt_path).is_file():
            # Otherwise LightningCLI feeds the checkpoint's settings to this model's parser, which prints its
            # whole usage, or (subclass mode) builds the checkpoint's class instead of the configured one.
            model = self.config[subcommand].get("model")
            built = model.get("class_path") if self.subclass_mode_model and model else None
            check_checkpoint_model(ckpt_path, built or class_path(self._model_class))
            drop_starting_weights(model)  # the checkpoint holds the trained weights: no pretrained file needed

    def add_arguments_to_parser(self, parser) -> None:
        """Link each of `links` (datamodule value -> model argument), applied when the classes are instantiated."""
        for source, target, *compute_fn in self.links:
            parser.link_arguments(source, target, compute_fn=compute_fn[0] if compute_fn else None,
                                  apply_on="instantiate")

    def before_fit(self) -> None:
        """Print the keras-style summary of the model before training."""
        input_shape = getattr(self.datamodule, "input_shape", None)
        if input_shape and self.trainer.is_global_zero:
            print(summarize(self.model, tuple(input_shape)), flush=True)

    def after_fit(self) -> None:
        """Write training_curves.png into the run folder."""
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        metrics = Path(run_dir or "") / "metrics.csv"
        if self.trainer.is_global_zero and metrics.is_file():
            print(f"training curves: {plot_training_curves(metrics, Path(run_dir) / 'training_curves.png')}",
                  flush=True)


def deepbio_error(error: BaseException | None) -> DeepBioError | None:
    """Return the DeepBioError an exception is or was raised from (jsonargparse wraps those of configured classes).

    Only `raise ... from` links count: a bug raised while a DeepBioError was being handled keeps its traceback.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DeepBioError):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def drop_starting_weights(config) -> None:
    """Set to None, in place, the `starting_weights_args` of every class a (nested) model config builds.

    A transfer backbone loads its ImageNet weights file when built; built to load a checkpoint,
    it must not need that file (moved, or another machine's path) (common.checkpoints.rebuild_args).
    """
    if not isinstance(config, argparse.Namespace):
        return
    fields = vars(config)  # a jsonargparse Namespace's own items() flattens nested ones into dotted keys
    init_args = fields.get("init_args")
    if fields.get("class_path") and isinstance(init_args, argparse.Namespace):
        try:
            vars(init_args).update(rebuild_args(import_class(fields["class_path"]), vars(init_args)))
        except (ImportError, AttributeError, ValueError):  # not importable here: the parser reports it
            pass
    for value in fields.values():
        drop_starting_weights(value)


def is_missing_local_file(ckpt_path: str | Path) -> bool:
    """Return True for a ckpt_path naming a local file that is not there (Lightning's own names and URLs excluded)."""
    text = str(ckpt_path)
    # "best", "last", "hpc" and "registry[:name]" Lightning resolves itself; "s3://..." fsspec opens.
    lightning_resolves = text in ("best", "last", "hpc") or text.lower().startswith("registry") or "://" in text
    return not lightning_resolves and not Path(text).is_file()


def check_checkpoint_model(path: str | Path, built: str) -> None:
    """Raise ConfigError when a checkpoint was saved by another kind of model than the class path `built`."""
    saved = read_checkpoint(path, weights_only=True).get("hyper_parameters", {})
    advice = "use it with the command and the config it was trained with (config.yaml in its run folder)"
    if "_class_path" in saved:  # LightningCLI recorded the class: that settles it
        if saved["_class_path"] != built:
            raise ConfigError(f"checkpoint {path} holds a {saved['_class_path']}, but the config builds a {built}: "
                              f"{advice}")
        return
    class_name = built.rpartition(".")[2]
    try:
        parameters = inspect.signature(import_class(built).__init__).parameters
    except (ImportError, AttributeError, ValueError):  # a nested class path, say: the parser judges it
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    foreign = sorted(k for k in saved if not k.startswith("_") and k not in parameters)
    if foreign:
        raise ConfigError(f"checkpoint {path} holds settings a {class_name} does not take ({', '.join(foreign)}): "
                          f"another kind of model saved it; {advice}")


def run_command_line(main: Callable[[], object]) -> None:
    """Run a task's `main` as a command: an error deepbio raises on purpose ends it with its message alone (exit 1)."""
    try:
        main()
    except Exception as error:
        cause = deepbio_error(error)
        if cause is None:
            raise
        sys.exit(f"error: {cause}")
