"""What the protocol compares (arms), over which settings (search spaces), and how it picks one.

Arms
    Taken from the method registry at run time (:func:`constrained_unlearn.methods.method_names`),
    so a method registered later joins without a code change:

    * ``pdu``: one arm per primal-dual solver (every solver in the registry but ``penalty``);
    * any other method whose default solver is primal-dual (``pdu-entropy``): that solver;
    * every scalarised baseline (default solver ``penalty``): twice, with its **fixed weight**
      (``penalty``) and with the **retain constraint** ``L_r ≤ ε`` (``gda``, the weight becoming
      λ₀).

Search spaces (one per arm, fixed before running; ``log`` = log-uniform)
    * every arm: ``training.lr`` and ``training.epochs`` (the benchmark's ranges,
      :data:`BENCHMARK_RANGES`);
    * the method's own float options (β, γ, the steering coefficient …), found from its
      dataclass fields: log-uniform on ``[d/4, 4d]`` around the default ``d > 0``, uniform on
      ``[0, 1]`` for a default of 0; options that are not hyper-parameters (:data:`NOT_TUNED`)
      stay at their defaults;
    * fixed-weight arms: the weight ``method.multiplier_init`` (the frozen λ) log-uniform on
      ``[w/10, 10w]`` around the method's weight ``w`` (GradAscent, ``w = 0``, has none);
    * constrained arms: ε (mini-TOFU: absolute, log-uniform on the benchmark's range; mini-MUSE:
      ``ε = (1 + α) L_r(θ₀)`` with the slack α uniform; a retain term that is a divergence to the
      reference, 0 at θ₀, always takes an absolute ε on ``[1e-3, 1e-1]``), λ₀ log-uniform on
      ``[w/10, 10w]`` (``w`` = the method's weight, 1 if it is 0), and the dual step η
      log-uniform on ``[10, 1000]`` (the augmented Lagrangian: its penalty c on ``[1, 100]``,
      which is also its dual step).

    Trial 0 of every arm is its **reference setting** (the centre of each range: the method's
    defaults, the demo's lr and epochs, the demo's ε / λ₀ / η); the other trials come from
    Optuna's TPE sampler with a fixed seed.

Selection rule (the same for every arm, stated before running)
    mini-TOFU: among the tuning trials with model utility ≥ 0.9 × the target's and, for
    constrained arms, final retain loss ≤ ε, the highest forget quality (ties: higher model
    utility). mini-MUSE: among the trials with retain KnowMem ≥ 0.9 × the target's and, for
    constrained arms, final retain loss ≤ ε, the smallest |PrivLeak| (ties: lower forget
    VerbMem). When no trial is admissible the arm is marked so and the trial with the highest
    utility ratio is carried to the seeds (it is reported, not hidden).
"""

from __future__ import annotations

__all__ = [
    "BENCHMARK_RANGES",
    "NOT_TUNED",
    "SELECTION_RULES",
    "UTILITY_FRACTION",
    "Arm",
    "Param",
    "admissible",
    "arms_from_registry",
    "reference_setting",
    "search_space",
    "select",
    "tuning_score",
]

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from constrained_unlearn.methods import METHODS, method_names
from constrained_unlearn.solvers import SOLVERS, normalize_solver_name

UTILITY_FRACTION = 0.9
"""A trial is admissible only with utility ≥ this fraction of the target's."""

NOT_TUNED = frozenset(
    {"retain_weight", "dual_lr", "fused", "pad_token_id", "chunk_size", "seed", "layer"}
)
"""Method fields that are not hyper-parameters of the objective (or are tuned elsewhere:
``retain_weight`` is the multiplier, ``dual_lr`` the dual step)."""

BENCHMARK_RANGES: dict[str, dict[str, Any]] = {
    # mini-TOFU: the demo trains 12 epochs at lr 1e-3; the retain NLL starts near 1e-3, and the
    # demo's ε = 0.03 sits in the middle of [0.01, 0.1] on a log scale
    "minitofu": {
        "lr": (2e-4, 3e-3, 1e-3),
        "epochs": (4, 16, 12),
        "epsilon": (0.01, 0.1, 0.03),
    },
    # mini-MUSE: the demo trains 15 epochs at lr 3e-4 with ε = 1.1 L_r(θ₀)
    "minimuse": {
        "lr": (1e-4, 1e-3, 3e-4),
        "epochs": (5, 20, 15),
        "slack": (0.05, 1.0, 0.1),
    },
}
"""``(low, high, reference)`` per benchmark for the shared knobs."""

DIVERGENCE_EPSILON = (1e-3, 1e-1, 1e-2)
DUAL_STEP = (10.0, 1000.0, 100.0)
AL_PENALTY = (1.0, 100.0, 5.0)

SELECTION_RULES: dict[str, str] = {
    "minitofu": (
        "highest forget quality among trials with model utility ≥ 0.9 × target's and, for "
        "constrained arms, final retain loss ≤ ε (ties: higher model utility); if none, the "
        "trial with the highest utility ratio, marked inadmissible"
    ),
    "minimuse": (
        "smallest |PrivLeak| among trials with retain KnowMem ≥ 0.9 × target's and, for "
        "constrained arms, final retain loss ≤ ε (ties: lower forget VerbMem); if none, the "
        "trial with the highest utility ratio, marked inadmissible"
    ),
}


@dataclass(frozen=True)
class Arm:
    """One method under one treatment of its retain term.

    Attributes:
        method: canonical method name.
        solver: ``"penalty"`` (fixed weight) or a primal-dual solver (constraint ``L_r ≤ ε``).
    """

    method: str
    solver: str

    @property
    def constrained(self) -> bool:
        """Whether the retain term is a constraint (a primal-dual solver) rather than a weight."""
        return self.solver != "penalty"

    @property
    def label(self) -> str:
        """``"pdu (gda)"``, ``"npo"`` (fixed weight), ``"npo + constraint (gda)"``."""
        if METHODS[self.method].default_solver != "penalty":
            return f"{self.method} ({self.solver})"
        return f"{self.method} + constraint ({self.solver})" if self.constrained else self.method

    @property
    def slug(self) -> str:
        """A file-name-safe id: ``pdu--gda``, ``npo--penalty``."""
        return f"{self.method}--{self.solver}"


def arms_from_registry(
    methods: Sequence[str] | None = None, pdu_solvers: Sequence[str] | None = None
) -> list[Arm]:
    """The arms of the protocol for ``methods`` (default: every registered method).

    Args:
        methods: method names to keep (any spelling :func:`get_method` accepts is not needed:
            canonical names from ``method_names()``).
        pdu_solvers: the solvers PDU runs with (default every primal-dual solver).

    Raises:
        ValueError: a name that is not a registered method (the message lists them).
    """
    names = method_names()
    chosen = names if methods is None else list(methods)
    unknown = [m for m in chosen if m not in names]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; registered methods are {names}")
    primal_dual = sorted(s for s in SOLVERS if s != "penalty")
    solvers = (
        primal_dual if pdu_solvers is None else [normalize_solver_name(s) for s in pdu_solvers]
    )
    arms: list[Arm] = []
    for name in chosen:
        default = METHODS[name].default_solver
        if name == "pdu":
            arms.extend(Arm(name, s) for s in solvers)
        elif default != "penalty":
            arms.append(Arm(name, default))
        else:
            arms.extend([Arm(name, "penalty"), Arm(name, "gda")])
    return arms


@dataclass(frozen=True)
class Param:
    """One searched hyper-parameter: ``low ≤ value ≤ high``; ``reference`` is trial 0's value."""

    key: str
    low: float
    high: float
    reference: float
    log: bool = True
    integer: bool = False


def _method_defaults(method: str) -> dict[str, Any]:
    cls = METHODS[method]
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return out


def _is_float_field(field: dataclasses.Field, default: Any) -> bool:
    return field.type in (float, "float") and isinstance(default, float)


def _is_divergence(method: str) -> bool:
    # the property lives on an instance; defaults suffice to ask it
    return bool(METHODS[method]().retain_is_divergence)


def search_space(arm: Arm, benchmark: str) -> list[Param]:
    """The written-down search space of ``arm`` on ``benchmark`` (see the module docstring).

    Raises:
        ValueError: an unknown benchmark.
    """
    if benchmark not in BENCHMARK_RANGES:
        raise ValueError(f"benchmark must be one of {sorted(BENCHMARK_RANGES)}, got {benchmark!r}")
    ranges = BENCHMARK_RANGES[benchmark]
    lr, epochs = ranges["lr"], ranges["epochs"]
    space = [
        Param("training.lr", lr[0], lr[1], lr[2]),
        Param("training.epochs", epochs[0], epochs[1], epochs[2], log=False, integer=True),
    ]
    cls = METHODS[arm.method]
    defaults = _method_defaults(arm.method)
    for f in dataclasses.fields(cls):
        default = defaults.get(f.name)
        if f.name in NOT_TUNED or not _is_float_field(f, default):
            continue
        if default > 0:
            space.append(Param(f"method.options.{f.name}", default / 4, default * 4, default))
        elif default == 0:
            space.append(Param(f"method.options.{f.name}", 0.0, 1.0, 0.0, log=False))
    weight = float(defaults.get("retain_weight", 1.0))
    if not arm.constrained:
        if weight > 0:
            space.append(Param("method.multiplier_init", weight / 10, weight * 10, weight))
        return space
    if _is_divergence(arm.method):
        lo, hi, ref = DIVERGENCE_EPSILON
        space.append(Param("method.epsilon", lo, hi, ref))
    elif "epsilon" in ranges:
        lo, hi, ref = ranges["epsilon"]
        space.append(Param("method.epsilon", lo, hi, ref))
    else:
        lo, hi, ref = ranges["slack"]
        space.append(Param("method.slack", lo, hi, ref, log=False))
    w = weight if weight > 0 else 1.0
    # the demo's λ₀ = 20 for PDU (weight 100) is inside [10, 1000]; reference: the demo's value
    lam_ref = 20.0 if arm.method == "pdu" and benchmark == "minitofu" else w
    space.append(Param("method.multiplier_init", w / 10, w * 10, lam_ref))
    if arm.solver == "augmented-lagrangian":
        lo, hi, ref = AL_PENALTY
        space.append(Param("method.solver_options.penalty", lo, hi, ref))
    else:
        lo, hi, ref = DUAL_STEP
        space.append(Param("method.dual_lr", lo, hi, ref))
    return space


def reference_setting(space: Sequence[Param]) -> dict[str, float]:
    """Trial 0: every parameter at its reference value."""
    return {p.key: (int(p.reference) if p.integer else p.reference) for p in space}


def _f(value: Any) -> float:
    """A float from a record value; ``None`` (a NaN after a JSON round trip) → NaN."""
    return math.nan if value is None else float(value)


def admissible(record: Mapping[str, Any], benchmark: str) -> bool:
    """Whether a trial passes the selection rule's bars (utility ≥ 0.9 × target; for
    constrained arms, final retain loss ≤ ε). A NaN utility ratio fails."""
    ratio = _f(record.get("utility_ratio", math.nan))
    if not ratio >= UTILITY_FRACTION:
        return False
    if record.get("constrained"):
        return _f(record["final_retain_loss"]) <= _f(record["epsilon"])
    return True


def _goal_key(record: Mapping[str, Any], benchmark: str) -> tuple[float, float]:
    """Larger is better: (primary, tie-break)."""
    if benchmark == "minitofu":
        fq = _f(record.get("forget_quality", math.nan))
        return (fq if fq == fq else -math.inf, _f(record.get("utility_ratio", -math.inf)))
    leak = _f(record.get("privleak", math.nan))
    verb = _f(record.get("forget_verbmem", math.nan))
    return (-abs(leak) if leak == leak else -math.inf, -verb if verb == verb else -math.inf)


def select(records: Sequence[Mapping[str, Any]], benchmark: str) -> tuple[int, bool]:
    """``(index of the selected trial, whether it is admissible)`` under the selection rule.

    Raises:
        ValueError: no trial records.
    """
    if not records:
        raise ValueError("select() needs at least one trial record")
    ok = [i for i, r in enumerate(records) if admissible(r, benchmark)]
    if ok:
        return max(ok, key=lambda i: _goal_key(records[i], benchmark)), True

    def ratio(i: int) -> float:
        value = _f(records[i].get("utility_ratio", math.nan))
        return value if value == value else -math.inf

    return max(range(len(records)), key=ratio), False


def tuning_score(record: Mapping[str, Any], benchmark: str) -> float:
    """The scalar Optuna maximises, ordered like the selection rule: every admissible trial
    scores above every inadmissible one.

    mini-TOFU admissible: ``31 + log10(max(FQ, 1e-30))`` ∈ [1, 31]; mini-MUSE admissible:
    ``1 + 100 − |PrivLeak|`` ∈ [1, 101]. Inadmissible: ``min(u/0.9, 1) + min(ε/L_r, 1) − 2``
    ∈ [−2, 0] (``u`` = utility ratio; the second term is 1 for fixed-weight arms), so the
    sampler is pulled towards admissibility first.
    """
    if admissible(record, benchmark):
        if benchmark == "minitofu":
            fq = _f(record.get("forget_quality", 0.0))
            return 31.0 + math.log10(max(fq if fq == fq else 0.0, 1e-30))
        leak = _f(record.get("privleak", math.nan))
        return 101.0 - min(abs(leak), 100.0) if leak == leak else 1.0
    ratio = _f(record.get("utility_ratio", math.nan))
    u = min(ratio / UTILITY_FRACTION, 1.0) if ratio == ratio else 0.0
    feasible = 1.0
    if record.get("constrained"):
        loss = _f(record["final_retain_loss"])
        feasible = min(_f(record["epsilon"]) / loss, 1.0) if loss > 0 else 1.0
    return max(u, 0.0) + feasible - 2.0
