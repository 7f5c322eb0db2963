"""The training engine: primal-dual steps on accelerate; knows no LLM and no classifier."""

from constrained_unlearn.engine.checkpoint import (
    CheckpointDamagedError,
    CheckpointError,
    CheckpointWarning,
    latest_checkpoint,
    list_checkpoints,
)
from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.engine.data import PairedData
from constrained_unlearn.engine.errors import (
    ConstraintInfeasibleWarning,
    LaunchError,
    NonFiniteError,
    TermsError,
)
from constrained_unlearn.engine.feasibility import (
    FeasibilityReport,
    check_feasibility,
    warn_if_infeasible,
)
from constrained_unlearn.engine.history import Callback, History, StepRecord
from constrained_unlearn.engine.loop import UnlearningEngine
from constrained_unlearn.engine.state import RunState
from constrained_unlearn.engine.terms import Terms, TermsFn

__all__ = [
    "Callback",
    "CheckpointDamagedError",
    "CheckpointError",
    "CheckpointWarning",
    "ConstraintInfeasibleWarning",
    "EngineConfig",
    "FeasibilityReport",
    "History",
    "LaunchError",
    "NonFiniteError",
    "PairedData",
    "RunState",
    "StepRecord",
    "Terms",
    "TermsError",
    "TermsFn",
    "UnlearningEngine",
    "check_feasibility",
    "latest_checkpoint",
    "list_checkpoints",
    "warn_if_infeasible",
]
