"""Regression task: a dense net learns y = f(x) (course: sqrt), compared with a linear fit, with or without a gap."""
from regression.baseline import LinearFit, fit_linear
from regression.data import RegressionData, validate_xy
from regression.evaluate import compare_in_range, predict_array
from regression.model import DenseRegressor

__all__ = ["DenseRegressor", "LinearFit", "RegressionData", "compare_in_range", "fit_linear", "predict_array",
           "validate_xy"]
