"""Experiment tracking: every run recorded in MLflow (a local sqlite store by default)."""

from constrained_unlearn.tracking.mlflow_run import (
    DEFAULT_TRACKING_URI,
    MlflowCallback,
    MlflowRun,
    flatten_params,
)

__all__ = ["DEFAULT_TRACKING_URI", "MlflowCallback", "MlflowRun", "flatten_params"]
