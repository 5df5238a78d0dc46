"""RegressionData: x ~ U(low, high) (optionally with gaps), y = f(x); or x/y columns from a CSV file."""
from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch

from common.data import BatchTensors, batch_loader, random_split_indices, read_csv_table, step_batches_loader
from common.errors import ConfigError, DataError
from regression.targets import apply_target


def validate_xy(x, y, source: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Return x, y as float32 arrays of shape (n, k); raise DataError for non-numeric, NaN, empty or mismatched data."""
    arrays = []
    for name, values in (("x", x), ("y", y)):
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(f"{source}: {name} contains non-numeric values ({error})") from None
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or len(array) == 0:
            raise DataError(f"{source}: {name} must be a non-empty vector or table, got shape {array.shape}")
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f"{source}: {name} has {int(bad.sum())} NaN or infinite value(s), first at row {row}")
        arrays.append(array.astype(np.float32))
    if len(arrays[0]) != len(arrays[1]):
        raise DataError(f"{source}: x has {len(arrays[0])} rows but y has {len(arrays[1])}")
    return arrays[0], arrays[1]


def allowed_intervals(low: float, high: float, gaps: list[list[float]] | None) -> list[tuple[float, float]]:
    """Return the sub-intervals of [low, high] left after removing the gaps; raise ConfigError if none is left."""
    if not high > low:
        raise ConfigError(f"empty range: low={low} must be below high={high}")
    intervals = [(low, high)]
    for gap in gaps or []:
        if len(gap) != 2 or not gap[1] > gap[0]:
            raise ConfigError(f"a gap must be [start, end] with end > start, got {gap}")
        intervals = [piece for a, b in intervals
                     for piece in ((a, min(b, gap[0])), (max(a, gap[1]), b)) if piece[1] > piece[0]]
    if not intervals:
        raise ConfigError(f"the gaps {gaps} leave nothing of [{low}, {high}] to sample from")
    return intervals


def gap_intervals(low: float, high: float, gaps: list[list[float]] | None) -> list[tuple[float, float]]:
    """Return the parts of [low, high] the gaps cover, overlapping gaps merged (the complement of allowed_intervals)."""
    edges = [low, *(x for piece in allowed_intervals(low, high, gaps) for x in piece), high]
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]


def sample_uniform(n: int, low: float, high: float, n_inputs: int = 1, gaps: list[list[float]] | None = None,
                   seed: int = 0) -> np.ndarray:
    """Return (n, n_inputs) float32 samples uniform on [low, high] minus the gaps."""
    return sample_intervals(n, allowed_intervals(low, high, gaps), n_inputs, seed)


def sample_intervals(n: int, intervals: list[tuple[float, float]], n_inputs: int = 1, seed: int = 0) -> np.ndarray:
    """Return (n, n_inputs) float32 samples uniform on the union of disjoint intervals."""
    if n <= 0:
        raise ConfigError(f"the number of samples must be positive, got {n}")
    intervals = np.array(intervals, dtype=np.float64)
    lengths = intervals[:, 1] - intervals[:, 0]
    rng = np.random.default_rng(seed)
    which = rng.choice(len(intervals), size=(n, n_inputs), p=lengths / lengths.sum())
    return (intervals[which, 0] + rng.random((n, n_inputs)) * lengths[which]).astype(np.float32)


def read_xy_csv(path: str | Path, x_columns: list[str], y_columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read the named x and y columns of a CSV file; errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    columns = [*x_columns, *y_columns]
    header, table_rows = read_csv_table(path)
    if header is None:
        raise DataError(f"{path} is empty: it needs a header line naming the columns, then one row per sample")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: columns {missing} not found; the header has {header}")
    rows = []
    for line, row in table_rows:
        if None in (row[c] for c in columns):
            raise DataError(f"{path}, line {line}: fewer fields than the header ({len(header)})")
        bad = next((c for c in columns if not _is_finite_number(row[c])), None)
        if bad is not None:
            raise DataError(f"{path}, line {line}: column {bad!r} is not a finite number: {row[bad]!r}")
        rows.append([float(row[c]) for c in columns])
    table = np.array(rows, dtype=np.float64).reshape(-1, len(columns))
    return validate_xy(table[:, :len(x_columns)], table[:, len(x_columns):], str(path))


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


class RegressionData(L.LightningDataModule):
    """Training and independently drawn validation data for learning y = f(x).

    Course defaults: 50 samples of x ~ U(0, 100), f = sqrt. The gap experiment: train and
    validate on [0, 200] minus gaps [[80, 120]] (validation chooses the epoch, so it must not see
    the gaps either), and score the gaps on `n_val` separate samples drawn inside them (x_gap,
    y_gap). With `csv_path`, x and y columns come from a file instead, split at random by `val_fraction`.
    Predictions run on the grid predict_low..predict_high (step predict_step) for one input: unset,
    the course's 0..250 by 0.5, or for a CSV its x range and 10% beyond it on each side, in 500 steps.
    Training takes optimiser steps of `batch_size` rows; `steps_per_execution` of them run in one
    Lightning step (as keras' option of that name), which for this tiny net removes most of the
    loop's cost without changing the steps (1 under DDP). Validation and prediction run
    `eval_batch_size` rows at a time: that changes their speed, not their results (float rounding aside).
    The default is large because on AMD CPUs the net predicts a batch in cache-sized chunks of rows
    (common.cpu_linear.DenseStack): a bigger batch only spreads the loop's cost per batch.
    """

    def __init__(
        self,
        function: str = "sqrt",
        n_train: int = 50,
        n_val: int = 50,
        low: float = 0.0,
        high: float = 100.0,
        gaps: list[list[float]] | None = None,
        n_inputs: int = 1,
        noise_sd: float = 0.0,
        csv_path: str | None = None,
        x_columns: list[str] | None = None,
        y_columns: list[str] | None = None,
        val_fraction: float = 0.2,
        predict_low: float | None = None,
        predict_high: float | None = None,
        predict_step: float | None = None,
        batch_size: int = 32,
        steps_per_execution: int = 16,
        eval_batch_size: int = 262144,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.x_gap: np.ndarray | None = None
        self.y_gap: np.ndarray | None = None
        if csv_path:
            if gaps:
                raise ConfigError("gaps leave ranges out of the synthetic data; a CSV's rows are used as they are: "
                                  "drop gaps, or leave those rows out of the file")
            self.x_train, self.y_train, self.x_val, self.y_val = self._from_csv()
            self.data_source = f"CSV file {csv_path}"
        else:
            self.x_train, self.y_train = self._draw(n_train, gaps, seed)
            # Validation chooses the epoch: it must not see the gaps either, or the net's gap score flatters it.
            self.x_val, self.y_val = self._draw(n_val, gaps, seed + 1)
            inside = gap_intervals(low, high, gaps)
            if inside:
                self.x_gap, self.y_gap = self._targets(sample_intervals(n_val, inside, n_inputs, seed + 2), seed + 2)
            self.data_source = f"synthetic: y = {function}(x) on [{low}, {high}], gaps {gaps or 'none'}, seed {seed}"
        self.n_inputs = self.x_train.shape[1]
        # A CSV's x_columns decide it; Lightning checks the saved value against the model's.
        self.save_hyperparameters({**self.hparams, "n_inputs": self.n_inputs})
        self.n_outputs = self.y_train.shape[1]
        self.input_shape = (self.n_inputs,)

    def _draw(self, n: int, gaps, seed: int) -> tuple[np.ndarray, np.ndarray]:
        hp = self.hparams
        return self._targets(sample_uniform(n, hp.low, hp.high, hp.n_inputs, gaps, seed), seed)

    def _targets(self, x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        hp = self.hparams
        y = apply_target(hp.function, x)
        if hp.noise_sd:
            y = y + np.random.default_rng(seed + 100).normal(0, hp.noise_sd, y.shape).astype(np.float32)
        return validate_xy(x, y, f"function {hp.function!r}")

    def _from_csv(self):
        hp = self.hparams
        if not hp.x_columns or not hp.y_columns:
            raise ConfigError("csv_path needs x_columns and y_columns (lists of column names)")
        x, y = read_xy_csv(hp.csv_path, hp.x_columns, hp.y_columns)
        val, train = random_split_indices(len(x), [hp.val_fraction, 1 - hp.val_fraction], hp.seed)
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"{hp.csv_path}: {len(x)} rows are too few to split into training and validation")
        return x[train], y[train], x[val], y[val]

    def predict_inputs(self) -> np.ndarray:
        """Return the inputs predictions are made for: the grid (one input, predict_grid) or the validation x."""
        if self.n_inputs != 1:
            return self.x_val
        low, high, step = self.predict_grid()
        return np.arange(low, high + step / 2, step, dtype=np.float32)[:, None]

    def predict_grid(self) -> tuple[float, float, float]:
        """Return (low, high, step) of the one-input prediction grid: as set, else the defaults the class describes."""
        hp = self.hparams
        if hp.csv_path:  # the course grid would leave a CSV's data in a corner of fit.png
            x = np.concatenate([self.x_train, self.x_val])[:, 0]
            margin = 0.1 * (float(x.max() - x.min()) or 1.0)
            low, high = float(x.min()) - margin, float(x.max()) + margin
        else:
            low, high = 0.0, 250.0
        low = low if hp.predict_low is None else hp.predict_low
        high = high if hp.predict_high is None else hp.predict_high
        step = hp.predict_step if hp.predict_step is not None else (high - low) / 500 if hp.csv_path else 0.5
        return low, high, step

    def train_dataloader(self):
        """Return the training loader: shuffled StepBatches, up to `steps_per_execution` steps of `batch_size` rows."""
        # Several optimiser steps per Lightning step need one process: DDP expects one backward per forward.
        steps = self.hparams.steps_per_execution if self.trainer is None or self.trainer.world_size == 1 else 1
        return step_batches_loader(BatchTensors(torch.from_numpy(self.x_train), torch.from_numpy(self.y_train)),
                                   self.hparams.batch_size, steps, shuffle=True)

    def val_dataloader(self):
        """Return the validation loader: (x_val, y_val) in order, `eval_batch_size` rows per slice."""
        return batch_loader(BatchTensors(torch.from_numpy(self.x_val), torch.from_numpy(self.y_val)),
                            self.hparams.eval_batch_size)

    @property
    def predict_source(self) -> str:
        """Say what predict runs on (logged with a predict run)."""
        return ("the grid {:g}..{:g} step {:g}".format(*self.predict_grid()) if self.n_inputs == 1
                else "the validation inputs")

    def predict_dataloader(self):
        """Return the prediction loader: batches (x,) of predict_inputs(), `eval_batch_size` rows per slice."""
        return batch_loader(BatchTensors(torch.from_numpy(self.predict_inputs())), self.hparams.eval_batch_size)
