"""Reading users' CSV tables (read_csv_table) and Lightning's metrics.csv (read_metrics_csv)."""
import pytest

from common.data import read_csv_table
from common.errors import DataError
from common.plots import plot_training_curves, read_metrics_csv


@pytest.mark.parametrize("content, message", [
    ("x,y, x\n1,2,3\n", r"data.csv: the header names the column\(s\) \['x'\] more than once"),  # old: the last x
    # decimal commas on line 4 (line 3 is blank)
    ("x,y\n1.5,1.22\n\n1,5,1,22\n", r"data.csv, line 4: 4 fields, more than the header's 2; a decimal comma"),
])
def test_a_column_named_twice_or_a_row_longer_than_the_header_is_refused(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_csv_table(path)


def test_blank_names_of_trailing_empty_columns_are_not_duplicates(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x,y,,\n1,2,,\n")
    header, rows = read_csv_table(path)
    assert header == ["x", "y", "", ""] and rows[0][1]["x"] == "1" and rows[0][1]["y"] == "2"


def test_a_quoted_comma_is_one_field_and_line_numbers_are_kept(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('x,y\n1,"2,5"\n\n3,4\n')
    header, rows = read_csv_table(path)
    assert header == ["x", "y"] and rows == [(2, {"x": "1", "y": "2,5"}), (4, {"x": "3", "y": "4"})]


@pytest.mark.parametrize("content, where", [
    ("dose,response (µM)\n1,2\n".encode("latin-1"), r"line 1: not UTF-8 text \(byte b'\\xb5'"),
    ("dose,response\n1,2\n".encode("utf-16"), r"line 1: not UTF-8 text \(byte b'\\xff'"),  # Excel's 'Unicode text'
    (b"\xef\xbb\xbfdose,response\n1,2\n3,\xb5\n", r"line 3: not UTF-8 text \(byte b'\\xb5'"),  # BOM, then Latin-1
], ids=["latin-1", "utf-16", "bom-then-latin-1"])
def test_a_file_that_is_not_utf8_is_refused_with_how_to_save_it(tmp_path, content, where):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"data.csv, {where}.*save the file as UTF-8"):
        read_csv_table(path)


def test_a_utf8_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffdose,response (µM)\n1,2\n".encode("utf-8"))
    assert read_csv_table(path) == (["dose", "response (µM)"], [(2, {"dose": "1", "response (µM)": "2"})])


def test_metrics_rows_without_an_epoch_are_skipped_and_the_curves_drawn(tmp_path):
    # As CSVLogger writes it with a LearningRateMonitor: lr-Adam is logged per step with an empty epoch cell.
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,lr-Adam,step,train_mse,val_mae,val_mse\n"
                       ",0.001,0,,,\n0,,0,,4.7,23.6\n0,,0,29.2,,\n"
                       ",0.001,1,,,\n1,,1,,4.3,19.8\n1,,1,24.4,,\n")
    series = read_metrics_csv(metrics)
    assert series == {"val_mae": [(0.0, 4.7), (1.0, 4.3)], "val_mse": [(0.0, 23.6), (1.0, 19.8)],
                      "train_mse": [(0.0, 29.2), (1.0, 24.4)]}
    for names in (None, ["mse", "mae"]):  # the classifier CLI's default and regression's summarize_fit
        assert plot_training_curves(metrics, tmp_path / "curves.png", names).stat().st_size > 1000
