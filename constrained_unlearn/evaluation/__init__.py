"""Evaluation: TOFU / MUSE metrics as pure functions (``metrics``) and the evaluators above them.

Evaluation never imports the engine. Every number it reports names the convention that produced
it (see ``metrics.conventions``).
"""

from constrained_unlearn.evaluation.muse import MuseEvaluator, write_retrain_log
from constrained_unlearn.evaluation.provenance import ProvenanceMismatchError
from constrained_unlearn.evaluation.tofu import TofuEvaluator, write_retain_log

__all__ = [
    "MuseEvaluator",
    "ProvenanceMismatchError",
    "TofuEvaluator",
    "write_retain_log",
    "write_retrain_log",
]
