"""Bad input gives a clear error naming the problem, never a traceback from deep inside torch."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError, DataError
from common.seeding import seed_everything
from common.trainer import build_trainer
from regression import DenseRegressor, RegressionData, predict_array, validate_xy


def test_non_numeric_values_are_named():
    with pytest.raises(DataError, match="x contains non-numeric"):
        validate_xy(["1", "two", "3"], [1, 2, 3])


def test_nan_values_report_the_row():
    with pytest.raises(DataError, match="NaN or infinite value.*row 1"):
        validate_xy([1.0, 2.0, 3.0], [1.0, np.nan, 3.0])


def test_mismatched_lengths():
    with pytest.raises(DataError, match="x has 3 rows but y has 2"):
        validate_xy([1, 2, 3], [1, 2])


def test_empty_range_and_gaps_covering_everything():
    with pytest.raises(ConfigError, match="empty range"):
        RegressionData(low=5.0, high=5.0)
    with pytest.raises(ConfigError, match="leave nothing"):
        RegressionData(low=0.0, high=10.0, gaps=[[-1.0, 11.0]])


def test_overlapping_gaps_are_scored_once_and_a_csv_refuses_gaps(tmp_path):
    data = RegressionData(n_train=200, n_val=4000, high=200.0, gaps=[[80.0, 120.0], [100.0, 140.0]])
    assert ((data.x_gap >= 80) & (data.x_gap <= 140)).all()
    # One uniform sample of 80..140: 100..120 is not drawn twice as densely as the rest.
    assert abs(((data.x_gap >= 100) & (data.x_gap < 120)).mean() - 1 / 3) < 0.03
    csv = tmp_path / "xy.csv"
    csv.write_text("x,y\n" + "".join(f"{i},{i}\n" for i in range(10)))
    with pytest.raises(ConfigError, match="a CSV's rows are used as they are: drop gaps"):
        RegressionData(csv_path=str(csv), x_columns=["x"], y_columns=["y"], gaps=[[2.0, 4.0]])


def test_unknown_activation_and_function():
    with pytest.raises(ConfigError, match="unknown activation 'relux'.*relu"):
        DenseRegressor(activation="relux")
    with pytest.raises(ConfigError, match="unknown target function 'sqroot'"):
        RegressionData(function="sqroot")


def test_csv_with_a_bad_cell_names_file_line_and_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("dose,response\n1,2\n2,abc\n")
    with pytest.raises(DataError, match=r"data.csv, line 3: column 'response' is not a finite number: 'abc'"):
        RegressionData(csv_path=str(path), x_columns=["dose"], y_columns=["response"])
    with pytest.raises(DataError, match=r"columns \['weight'\] not found"):
        RegressionData(csv_path=str(path), x_columns=["weight"], y_columns=["response"])


@pytest.mark.parametrize("text, message", [
    ("", "data.csv is empty: it needs a header line"),
    ("dose,response\n1,2\n3\n", r"data.csv, line 3: fewer fields than the header \(2\)"),
    ("dose,response\n1,2\n3,nan\n", r"data.csv, line 3: column 'response' is not a finite number: 'nan'"),
    ("dose,response\n1,2\n\n3,x\n", r"data.csv, line 4: column 'response' is not a finite number: 'x'"),  # blank line 3
])
def test_csv_files_with_missing_values_say_where(tmp_path, text, message):
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        RegressionData(csv_path=str(path), x_columns=["dose"], y_columns=["response"])


def test_csv_from_a_spreadsheet_is_read_despite_its_byte_order_mark_and_spaces(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("\ufeffdose, response\n" + "".join(f"{i}, {i ** 0.5}\n" for i in range(20)), encoding="utf-8")
    data = RegressionData(csv_path=str(path), x_columns=["dose"], y_columns=["response"], val_fraction=0.2)
    assert len(data.x_train) == 16 and float(data.y_train.max()) > 4  # sqrt(19) = 4.36


def test_csv_data_is_read_and_split(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("dose,response\n" + "".join(f"{i},{i ** 0.5}\n" for i in range(100)))
    data = RegressionData(csv_path=str(path), x_columns=["dose"], y_columns=["response"], val_fraction=0.2)
    assert len(data.x_train) == 80 and len(data.x_val) == 20
    assert "data.csv" in data.data_source
    grid = data.predict_inputs()[:, 0]  # the data's x range and 10% beyond, not the course's 0..250
    assert len(grid) == 501 and grid[0] == pytest.approx(-9.9) and grid[-1] == pytest.approx(108.9, rel=1e-5)
    assert RegressionData().predict_inputs()[[0, 1, -1], 0].tolist() == [0.0, 0.5, 250.0]  # the course grid


def test_a_csv_with_several_inputs_trains(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("dose,time,response\n" + "".join(f"{i},{i % 7},{i ** 0.5 + i % 7}\n" for i in range(60)))
    data = RegressionData(csv_path=str(path), x_columns=["dose", "time"], y_columns=["response"])
    seed_everything(0)
    model = DenseRegressor(n_inputs=data.n_inputs)  # Lightning compares both modules' n_inputs
    before = float(np.mean((predict_array(model, data.x_val) - data.y_val) ** 2))
    trainer = build_trainer(max_epochs=30, default_root_dir=str(tmp_path), enable_progress_bar=False)
    trainer.fit(model, data)
    after = float(np.mean((predict_array(model, data.x_val) - data.y_val) ** 2))
    assert data.hparams.n_inputs == 2 and trainer.state.finished
    # Validation MSE measured: 87.5 untrained, 3.35 after 30 epochs (after/before 0.01-0.12 over seeds 0-7).
    assert after < before / 5, (before, after)
    one_input = build_trainer(default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match=r"the checkpoint's net has 2 input\(s\) and 1 output\(s\), but this run's "
                                          r"data gives 1 and 1"):
        one_input.predict(DenseRegressor(), RegressionData(), ckpt_path=trainer.checkpoint_callback.last_model_path)
