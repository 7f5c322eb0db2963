"""The run configuration: one YAML file drives a single-process run and ``accelerate launch``.

Sections: ``model``, ``data``, ``method``, ``training``, ``output``, ``tracking``, ``eval``.
Command-line overrides use dotted keys, ``training.lr=1e-4``; values are parsed as YAML.
Unknown keys are errors that name the nearest valid key.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from constrained_unlearn.solvers import SOLVERS


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names the key and the fix."""


@dataclass
class ModelConfig:
    name_or_path: str = ""
    dtype: str = "float32"
    trust_remote_code: bool = False
    template: str = "plain"  # "plain" or "chat"


@dataclass
class DataConfig:
    benchmark: str = "minitofu"  # "minitofu", "tofu", "muse", "minimuse" (hub id/folder: `path`)
    path: str | None = None
    forget_split: str = "forget10"  # MUSE: "forget" (raw/forget), "scal/forget_2", …
    retain_split: str | None = None  # default: the complement (TOFU), "retain1" (MUSE)
    max_length: int = 256
    minitofu_seed: int = 0
    minitofu_size: str = "default"
    chunk_length: int = 2048  # MUSE corpora: tokens per chunk (2048 for MUSE's Llama-2)
    pack: bool = True  # MUSE corpora: pack documents into chunks (False: one per chunk run)
    minimuse_seed: int = 0
    minimuse_size: str = "default"


MUSE_BENCHMARKS: tuple[str, ...] = ("muse", "minimuse")
"""Benchmarks whose forget and retain sets are text corpora (MUSE's layout)."""

MUSE_CORPUS_CONFIGS: tuple[str, ...] = ("raw", "train", "scal", "sust", "privleak")
"""MUSE configs with a ``text`` column that can serve as a forget or retain corpus."""


def parse_muse_split(name: str, key: str = "data.forget_split") -> tuple[str, str]:
    """``(config, split)`` of a MUSE corpus split named ``"split"`` (config ``raw``) or
    ``"config/split"``, e.g. ``"forget"`` → ``("raw", "forget")``, ``"sust/forget_3"`` →
    ``("sust", "forget_3")``.

    Raises:
        ConfigError: an unknown config or split (the message names ``key`` and the valid names).
    """
    from constrained_unlearn.benchmarks.muse import MUSE_SPLITS

    config, _, split = name.rpartition("/")
    config = config or "raw"
    if config not in MUSE_CORPUS_CONFIGS:
        raise ConfigError(
            f"{key}={name!r}: MUSE config {config!r} holds no text corpus; use one of "
            f"{list(MUSE_CORPUS_CONFIGS)}, e.g. 'forget', 'scal/forget_2', 'sust/forget_3'"
        )
    if split not in MUSE_SPLITS[config]:
        hint = f" ({name!r} is a TOFU split)" if re.fullmatch(r"forget\d\d", name) else ""
        raise ConfigError(
            f"{key}={name!r} is not a MUSE split{hint}; {config!r} has "
            f"{list(MUSE_SPLITS[config])}, e.g. data.forget_split=forget, "
            "data.retain_split=retain1"
        )
    return config, split


@dataclass
class MethodConfig:
    """The method and how its retain term is treated.

    ``solver``, ``multiplier_init`` and ``dual_lr`` default to the method's own (PDU: gda, λ₀ 100,
    η 5; the scalarised baselines: penalty with λ fixed at their weight). Setting ``solver`` to
    a primal-dual scheme turns any baseline's fixed weight into a constraint with λ₀ = weight.
    """

    name: str = "pdu"
    solver: str | None = None
    epsilon: float | None = None  # None → (1 + slack) · L_retain(θ₀)
    slack: float = 0.1
    multiplier_init: float | None = None
    dual_lr: float | None = None
    warmup_epochs: int = 0
    warmup_steps: int = 0
    dual_update: str = "step"
    solver_options: dict[str, Any] = field(default_factory=dict)  # e.g. {penalty: 1.0}, {kp: 1}
    options: dict[str, Any] = field(default_factory=dict)  # method options, e.g. {beta: 0.1}


@dataclass
class TrainingConfig:
    epochs: int = 10
    max_steps: int | None = None
    lr: float = 1e-5
    weight_decay: float = 0.01
    batch_size: int = 8
    retain_batch_size: int | None = None
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    lr_scheduler: str = "constant"
    lr_warmup_ratio: float = 0.0
    mixed_precision: str = "no"
    seed: int = 0
    fused_forward: bool = False
    loss_chunk_size: int | None = None  # chunked, LM-head-fused losses (PDU only)
    save_every: int | None = None  # checkpoint every N optimiser steps (<output.dir>/checkpoints)
    keep_last: int | None = 2
    resume: bool = False  # continue from the newest complete checkpoint


@dataclass
class OutputConfig:
    dir: str = "outputs/run"
    save_model: bool = True


@dataclass
class TrackingConfig:
    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "constrained-unlearn"
    run_name: str | None = None
    log_model: bool = False


@dataclass
class EvalConfig:
    enabled: bool = True
    retain_logs: str | None = None
    batch_size: int = 32
    max_new_tokens: int = 200


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> RunConfig:
        """Check the whole config before any compute; raises :class:`ConfigError`."""
        m, t, d = self.method, self.training, self.data
        if m.solver is not None and m.solver.replace("_", "-") not in SOLVERS:
            near = difflib.get_close_matches(m.solver, SOLVERS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(
                f"method.solver={m.solver!r} is unknown{hint}; valid: {sorted(SOLVERS)}"
            )
        if m.epsilon is not None and not (math.isfinite(m.epsilon) and m.epsilon > 0):
            raise ConfigError(f"method.epsilon must be > 0 or null (calibrate), got {m.epsilon}")
        if m.multiplier_init is not None and not m.multiplier_init >= 0:
            raise ConfigError(f"method.multiplier_init must be ≥ 0, got {m.multiplier_init}")
        if m.slack < 0:
            raise ConfigError(f"method.slack must be ≥ 0, got {m.slack}")
        from constrained_unlearn.methods import ALIASES, method_names

        if m.name.lower() not in method_names() and m.name.lower() not in ALIASES:
            near = difflib.get_close_matches(m.name.lower(), method_names(), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"method.name={m.name!r} is unknown{hint}; valid: {method_names()}")
        if m.dual_update not in ("step", "epoch"):
            raise ConfigError(
                f"method.dual_update must be 'step' or 'epoch', got {m.dual_update!r}"
            )
        for key in ("epochs", "batch_size", "gradient_accumulation_steps"):
            value = getattr(t, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"training.{key} must be an integer ≥ 1, got {value!r}")
        if not (isinstance(t.lr, (int, float)) and t.lr > 0 and math.isfinite(t.lr)):
            raise ConfigError(f"training.lr must be a number > 0, got {t.lr!r}")
        if t.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(
                f"training.mixed_precision must be no|bf16|fp16, got {t.mixed_precision!r}"
            )
        if d.benchmark not in ("minitofu", "tofu", *MUSE_BENCHMARKS):
            raise ConfigError(
                "data.benchmark must be 'minitofu', 'tofu', 'muse' or 'minimuse', got "
                f"{d.benchmark!r}"
            )
        if d.benchmark in ("tofu", "muse") and not self.model.name_or_path:
            raise ConfigError(f"model.name_or_path is required for data.benchmark={d.benchmark}")
        if d.benchmark in MUSE_BENCHMARKS:
            parse_muse_split(d.forget_split, "data.forget_split")
            parse_muse_split(d.retain_split or "retain1", "data.retain_split")
            if not isinstance(d.chunk_length, int) or d.chunk_length < 2:
                raise ConfigError(
                    f"data.chunk_length must be an integer ≥ 2, got {d.chunk_length!r}"
                )
        if self.model.template not in ("plain", "chat"):
            raise ConfigError(
                f"model.template must be 'plain' or 'chat', got {self.model.template!r}"
            )
        if self.eval.retain_logs and not Path(self.eval.retain_logs).exists():
            raise ConfigError(f"eval.retain_logs={self.eval.retain_logs!r} does not exist")
        return self


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {where}{near[0]!r}?" if near else ""
            raise ConfigError(f"unknown config key {where}{key!r}{hint} Valid: {sorted(known)}")
        default = getattr(cls(), key)
        if is_dataclass(default):
            kwargs[key] = _build(type(default), value or {}, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(value, str(known[key].type), f"{where}{key}")
    return cls(**kwargs)


def _coerce(value: Any, annotation: str, key: str) -> Any:
    # YAML 1.1 reads "1e-5" as a string; numbers are what the field asks for
    if isinstance(value, str) and "float" in annotation:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    return value


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config (optional), apply ``section.key=value`` overrides, validate."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of sections")
        tree = loaded
    for override in overrides:
        _apply_override(tree, override)
    return _build(RunConfig, tree, "").validate()
