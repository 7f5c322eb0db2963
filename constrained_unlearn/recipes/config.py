"""The run configuration: one YAML file drives a single-process run and ``accelerate launch``.

Sections: ``model``, ``data``, ``method``, ``training``, ``output``, ``tracking``, ``eval``.
Command-line overrides use dotted keys, ``training.lr=1e-4``; values are parsed as YAML.
Unknown keys are errors that name the nearest valid key; a key given twice in one YAML mapping
is an error naming the key and its line.

Each setting is defined and validated once, where it lives. The ``training`` section is
composed, not mirrored: its keys are the recipe's own (`TrainingConfig`: learning rate,
weight decay, batch sizes, loss options) plus every field of
[`EngineConfig`][constrained_unlearn.engine.EngineConfig] (``epochs``, ``max_steps``, ``resume``,
``resume_overrides``, ``feasibility_tolerance`` …), which build that ``EngineConfig`` and are
validated by it. Where the checkpoints go (``<output.dir>/checkpoints``), whether a final
checkpoint is written and whether a progress bar is shown are decided by the recipe.

Values are checked against the field's type when the config is read: a boolean is never a
number (``training.epochs: true`` is refused), an integer field refuses ``2.5`` and ``"abc"``,
a string field refuses an empty value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.solvers import (
    SHARED_HYPERPARAMETERS,
    Solver,
    make_solver,
    normalize_solver_name,
)

__all__ = [
    "ENGINE_KEYS",
    "MUSE_BENCHMARKS",
    "MUSE_CORPUS_CONFIGS",
    "RECIPE_ENGINE_KEYS",
    "TOKENIZATIONS",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "MethodConfig",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "TrackingConfig",
    "TrainingConfig",
    "load_config",
    "parse_muse_split",
    "read_yaml",
]


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
    tokenization: str = "separate"  # QA: "separate" (library) or "joint" (open-unlearning)
    allow_overlap: bool = False  # forget set identical to / inside the retain set: refused


MUSE_BENCHMARKS: tuple[str, ...] = ("muse", "minimuse")
"""Benchmarks whose forget and retain sets are text corpora (MUSE's layout)."""

MUSE_CORPUS_CONFIGS: tuple[str, ...] = ("raw", "train", "scal", "sust", "privleak")
"""MUSE configs with a ``text`` column that can serve as a forget or retain corpus."""

TOKENIZATIONS: tuple[str, ...] = ("separate", "joint")
"""``data.tokenization``: prompt and answer tokenised apart (the library's convention) or as one
string with the prompt's tokens masked (open-unlearning's)."""


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

    ``solver`` defaults to the method's own (PDU: gda; the scalarised baselines: penalty, with
    λ fixed at their weight). Setting ``solver`` to a primal-dual scheme turns any baseline's
    fixed weight into a constraint with λ₀ = weight.

    The solver's shared hyper-parameters (``multiplier_init``, ``dual_lr``, ``warmup_steps``,
    ``warmup_epochs``, ``dual_update``: [`SHARED_HYPERPARAMETERS`][constrained_unlearn.solvers.SHARED_HYPERPARAMETERS]) and
    ``solver_options`` (the solver's own, e.g. ``{penalty: 1.0}``, ``{kp: 1}``) are not
    defined here: they are forwarded to the solver, which defaults and validates them. A key
    left ``null`` takes the method's default (λ₀ = its weight) or else the solver's.
    """

    name: str = "pdu"
    solver: str | None = None
    epsilon: float | None = None  # None → (1 + slack) · L_retain(θ₀)
    slack: float = 0.1
    multiplier_init: float | None = None
    dual_lr: float | None = None
    warmup_steps: int | None = None
    warmup_epochs: int | None = None
    dual_update: str | None = None
    solver_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # method options, e.g. {beta: 0.1}

    def solver_overrides(self) -> dict[str, Any]:
        """The solver hyper-parameters this config sets (the rest: the method's defaults)."""
        kwargs = {k: getattr(self, k) for k in SHARED_HYPERPARAMETERS}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.update(self.solver_options)
        return kwargs

    def build_solver(self) -> Solver:
        """The solver this config runs (the method's default when ``solver`` is unset), built
        and validated by the solver itself; ``ValueError``/``TypeError`` name the argument."""
        from constrained_unlearn.methods import get_method

        method = get_method(self.name, **dict(self.options))
        name, kwargs = method.solver_settings(self.solver, **self.solver_overrides())
        return make_solver(name, **kwargs)


RECIPE_ENGINE_KEYS: tuple[str, ...] = ("checkpoint_dir", "save_final", "progress")
"""EngineConfig fields the recipe sets itself (not config keys): checkpoints go to
``<output.dir>/checkpoints``, a final checkpoint is written when ``training.save_every`` is set,
the progress bar follows the command's verbosity."""

ENGINE_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(EngineConfig) if f.name not in RECIPE_ENGINE_KEYS
)
"""Keys of the ``training`` section that build the run's [`EngineConfig`][constrained_unlearn.engine.EngineConfig]."""

_RECIPE_ENGINE_DEFAULTS: dict[str, Any] = {"epochs": 10, "keep_last": 2, "save_final": False}
"""Where the recipe's defaults differ from [`EngineConfig`][constrained_unlearn.engine.EngineConfig]'s (which suit the library)."""

_CHECKPOINTS_PLACEHOLDER = "checkpoints"  # replaced by <output.dir>/checkpoints in engine_config


def _default_engine() -> EngineConfig:
    return EngineConfig(checkpoint_dir=_CHECKPOINTS_PLACEHOLDER, **_RECIPE_ENGINE_DEFAULTS)


@dataclass
class TrainingConfig:
    """The ``training`` section: the recipe's own settings plus an [`EngineConfig`][constrained_unlearn.engine.EngineConfig].

    Attributes:
        lr: AdamW learning rate (> 0).
        weight_decay: AdamW decoupled weight decay (≥ 0).
        batch_size: forget examples per micro-batch and process.
        retain_batch_size: retain examples per micro-batch (default: ``batch_size``).
        fused_forward: one forward over forget and retain (every method; the default,
            ``false``: two forwards).
        loss_chunk_size: chunked, LM-head-fused losses (``None``: off); exact or refused on
            any architecture, and refused by methods whose objective cannot be chunked.
        group_by_length: batch examples of similar length together (fewer padded tokens;
            the order stays seeded, deterministic and resumable; see ``PairedData``).
        group_size: micro-batches per length-sorted group when ``group_by_length`` is on.
        final_retain_eval: after the last step, measure the retain loss over the whole retain
            set (batched, ``eval.batch_size``); ``False`` takes the last step's value instead.
        engine: the [`EngineConfig`][constrained_unlearn.engine.EngineConfig] built from the section's other keys (``epochs``,
            ``max_steps``, ``resume``, ``resume_overrides``, ``feasibility_tolerance`` …).
            Those keys read through: ``cfg.training.epochs`` is ``cfg.training.engine.epochs``.
    """

    lr: float = 1e-5
    weight_decay: float = 0.01
    batch_size: int = 8
    retain_batch_size: int | None = None
    fused_forward: bool = True
    loss_chunk_size: int | None = None
    group_by_length: bool = False
    group_size: int = 50
    final_retain_eval: bool = True
    engine: EngineConfig = field(default_factory=_default_engine)

    def __getattr__(self, name: str) -> Any:
        # called only when normal lookup fails: engine keys read through to the EngineConfig
        engine = self.__dict__.get("engine")
        if engine is not None and name in ENGINE_KEYS:
            return getattr(engine, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ENGINE_KEYS and "engine" in self.__dict__:
            setattr(self.engine, name, value)  # validated by RunConfig.validate (EngineConfig)
        else:
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The section as the user writes it: one flat mapping (engine keys included)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "engine"}
        engine = self.engine.to_dict()
        own.update({key: engine[key] for key in ENGINE_KEYS})
        own["resume_overrides"] = list(own["resume_overrides"])
        return own


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
    max_new_tokens: int | None = None  # None: what fits the model's context


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
        """The configuration as nested plain values (the ``training`` section flat)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            section = getattr(self, f.name)
            out[f.name] = section.to_dict() if f.name == "training" else asdict(section)
        return out

    def engine_config(self, *, progress: bool = True) -> EngineConfig:
        """The [`EngineConfig`][constrained_unlearn.engine.EngineConfig] of this run: the ``training`` section's engine keys, with
        checkpoints under ``<output.dir>/checkpoints`` and a final checkpoint when
        ``training.save_every`` is set. Validated by ``EngineConfig`` itself.

        Raises:
            ConfigError: an engine key is wrong (the message names ``training.<key>``).
        """
        engine = self.training.engine
        try:
            return dataclasses.replace(
                engine,
                checkpoint_dir=Path(self.output.dir) / "checkpoints",
                save_final=engine.save_every is not None,
                progress=progress,
                resume_overrides=tuple(engine.resume_overrides),
            )
        except (ValueError, TypeError) as err:
            raise ConfigError(f"training.{err}") from None

    def validate(self) -> RunConfig:
        """Check the whole config before any compute; raises `ConfigError`.

        Engine keys are validated by [`EngineConfig`][constrained_unlearn.engine.EngineConfig], solver names by
        [`normalize_solver_name`][constrained_unlearn.solvers.normalize_solver_name]; this method checks the
        recipe's own keys and how the sections fit together.
        """
        for f in fields(self):  # types first (a value set after loading is checked too)
            section = getattr(self, f.name)
            _check_section(section, f.name)
        m, t, d = self.method, self.training, self.data
        if not self.output.dir.strip():
            raise ConfigError(
                "output.dir is empty; give the folder the run writes to, e.g. "
                "output.dir=outputs/my_run"
            )
        if m.solver is not None:
            try:
                normalize_solver_name(m.solver)
            except ValueError:
                near = difflib.get_close_matches(
                    m.solver.lower().replace("_", "-"), _solvers(), n=1
                )
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(
                    f"method.solver={m.solver!r} is unknown{hint}; valid: {_solvers()}"
                ) from None
        if m.epsilon is not None and not (math.isfinite(m.epsilon) and m.epsilon > 0):
            raise ConfigError(f"method.epsilon must be > 0 or null (calibrate), got {m.epsilon}")
        if not (math.isfinite(m.slack) and m.slack >= 0):
            raise ConfigError(f"method.slack must be a finite number ≥ 0, got {m.slack}")
        from constrained_unlearn.methods import ALIASES, method_names

        if m.name.lower() not in method_names() and m.name.lower() not in ALIASES:
            near = difflib.get_close_matches(m.name.lower(), method_names(), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"method.name={m.name!r} is unknown{hint}; valid: {method_names()}")
        try:  # the method's options and the solver's hyper-parameters: validated by their owners
            m.build_solver()
        except (ValueError, TypeError) as err:
            raise ConfigError(f"method: {err}") from None
        if not (t.lr > 0 and math.isfinite(t.lr)):
            raise ConfigError(f"training.lr must be a number > 0, got {t.lr!r}")
        if not (t.weight_decay >= 0 and math.isfinite(t.weight_decay)):
            raise ConfigError(f"training.weight_decay must be a number ≥ 0, got {t.weight_decay!r}")
        for key in ("batch_size", "retain_batch_size", "loss_chunk_size"):
            value = getattr(t, key)
            if value is not None and value < 1:
                raise ConfigError(f"training.{key} must be an integer ≥ 1, got {value!r}")
        self.engine_config()  # every engine key, validated by EngineConfig
        if d.benchmark not in ("minitofu", "tofu", *MUSE_BENCHMARKS):
            raise ConfigError(
                "data.benchmark must be 'minitofu', 'tofu', 'muse' or 'minimuse', got "
                f"{d.benchmark!r}"
            )
        if d.tokenization not in TOKENIZATIONS:
            raise ConfigError(
                f"data.tokenization must be one of {list(TOKENIZATIONS)}, got {d.tokenization!r}"
            )
        if d.max_length < 2:
            raise ConfigError(f"data.max_length must be an integer ≥ 2, got {d.max_length!r}")
        if d.benchmark in ("tofu", "muse") and not self.model.name_or_path:
            raise ConfigError(f"model.name_or_path is required for data.benchmark={d.benchmark}")
        if d.benchmark in MUSE_BENCHMARKS:
            parse_muse_split(d.forget_split, "data.forget_split")
            parse_muse_split(d.retain_split or "retain1", "data.retain_split")
            if d.chunk_length < 2:
                raise ConfigError(
                    f"data.chunk_length must be an integer ≥ 2, got {d.chunk_length!r}"
                )
        if self.model.template not in ("plain", "chat"):
            raise ConfigError(
                f"model.template must be 'plain' or 'chat', got {self.model.template!r}"
            )
        if self.eval.retain_logs and not Path(self.eval.retain_logs).exists():
            raise ConfigError(f"eval.retain_logs={self.eval.retain_logs!r} does not exist")
        if self.eval.batch_size < 1:
            raise ConfigError(f"eval.batch_size must be an integer ≥ 1, got {self.eval.batch_size}")
        if self.eval.max_new_tokens is not None and self.eval.max_new_tokens < 1:
            raise ConfigError(
                f"eval.max_new_tokens must be an integer ≥ 1 or null, got {self.eval.max_new_tokens}"
            )
        return self


def _solvers() -> list[str]:
    from constrained_unlearn.solvers import SOLVERS

    return sorted(SOLVERS)


# ---------------------------------------------------------------------------------- types
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    optional = type(None) in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        text = " or ".join(_describe(a) for a in args)
    elif origin is typing.Literal:
        text = "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    elif origin in (tuple, list):
        text = "a list of strings"
    elif origin in (dict, Mapping) or hint is dict:
        text = "a mapping"
    elif hint is os.PathLike or origin is os.PathLike:
        text = "a path"
    else:
        text = names.get(hint, getattr(hint, "__name__", str(hint)))
    return f"{text} or null" if optional else text


_YAML_TRUE = frozenset({"y", "yes", "on", "true"})
_YAML_FALSE = frozenset({"n", "no", "off", "false"})


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """``(accepted, value)`` of ``value`` against the type ``hint`` (a bool is not a number)."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        return value is None, None
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):  # bool before str: YAML's true stays a bool
            ok, converted = _convert(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if isinstance(value, bool) and value not in choices:
            # YAML 1.1 reads `no`, `off`, `yes`, `on` as booleans: `mixed_precision: no` means
            # the choice spelled that way, when exactly one choice is such a word
            words = _YAML_TRUE if value else _YAML_FALSE
            spelled = [c for c in choices if isinstance(c, str) and c.lower() in words]
            if len(spelled) == 1:
                return True, spelled[0]
        return value in choices, value
    if origin in (tuple, list):
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items):
            return True, tuple(items) if origin is tuple else list(items)
        return False, value
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if hint is str:
        return isinstance(value, str), value
    if hint is os.PathLike or origin is os.PathLike:
        return isinstance(value, (str, os.PathLike)), value
    return True, value


def _checked(value: Any, hint: Any, key: str) -> Any:
    ok, converted = _convert(value, hint)
    if not ok:
        if value is None:
            raise ConfigError(
                f"{key} must be {_describe(hint)}, got null (an empty value); write a value "
                "after the colon, or remove the key to keep its default"
            )
        raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r}")
    return converted


def _check_section(section: Any, name: str) -> None:
    """Type-check (and normalise) every field of a section set after loading."""
    hints = _type_hints(type(section))
    for f in fields(section):
        if f.name == "engine":
            engine_hints = _type_hints(EngineConfig)
            for key in ENGINE_KEYS:
                value = getattr(section.engine, key)
                setattr(section.engine, key, _checked(value, engine_hints[key], f"{name}.{key}"))
            continue
        value = _checked(getattr(section, f.name), hints[f.name], f"{name}.{f.name}")
        object.__setattr__(section, f.name, value)


# ---------------------------------------------------------------------------------- building
def _unknown(key: Any, known: Sequence[str], where: str) -> ConfigError:
    near = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean {where}{near[0]!r}?" if near else ""
    return ConfigError(f"unknown config key {where}{key!r}{hint} Valid: {sorted(known)}")


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, Mapping):
        shown = "empty" if values is None else type(values).__name__
        raise ConfigError(f"{where.rstrip('.') or 'config'} must be a mapping, got {shown}")
    if cls is TrainingConfig:
        return _build_training(values, where)
    known = {f.name: f for f in fields(cls)}
    hints = _type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise _unknown(key, list(known), where)
        default = known[key].default_factory  # type: ignore[misc]
        if default is not dataclasses.MISSING and is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], {} if value is None else value, f"{where}{key}.")
        else:
            kwargs[key] = _checked(value, hints[key], f"{where}{key}")
    return cls(**kwargs)


def _build_training(values: Mapping[str, Any], where: str) -> TrainingConfig:
    own = {f.name for f in fields(TrainingConfig) if f.name != "engine"}
    hints = _type_hints(TrainingConfig)
    engine_hints = _type_hints(EngineConfig)
    kwargs: dict[str, Any] = {}
    engine: dict[str, Any] = dict(_RECIPE_ENGINE_DEFAULTS)
    for key, value in values.items():
        if key in own:
            kwargs[key] = _checked(value, hints[key], f"{where}{key}")
        elif key in ENGINE_KEYS:
            engine[key] = _checked(value, engine_hints[key], f"{where}{key}")
        elif key in RECIPE_ENGINE_KEYS:
            raise ConfigError(
                f"{where}{key} is set by the recipe, not the config: checkpoints go to "
                "<output.dir>/checkpoints, a final checkpoint is written when "
                "training.save_every is set, the progress bar follows --quiet; remove the key"
            )
        else:
            raise _unknown(key, sorted(own | set(ENGINE_KEYS)), where)
    try:
        kwargs["engine"] = EngineConfig(checkpoint_dir=_CHECKPOINTS_PLACEHOLDER, **engine)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}{err}") from None
    return TrainingConfig(**kwargs)


# ---------------------------------------------------------------------------------- YAML
class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        line = key_node.start_mark.line + 1
        if key in seen:
            where = f"{key_node.start_mark.name}: " if key_node.start_mark.name else ""
            raise ConfigError(
                f"{where}key {key!r} appears twice in the same mapping (lines {seen[key]} and "
                f"{line}); YAML would keep only the last one silently: remove one of them"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def read_yaml(text: str, name: str = "<config>") -> Any:
    """Parse YAML ``text`` strictly (duplicate keys refused).

    Raises:
        ConfigError: a syntax error (with its line) or a duplicate key (naming key and lines).
    """
    try:
        loader = _StrictLoader(text)
        loader.name = name  # type: ignore[attr-defined]
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{name}, line {mark.line + 1}" if mark is not None else name
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: invalid YAML ({problem}); fix the syntax there") from None


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if node is None:
            node = {}
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
    node[parts[-1]] = read_yaml(raw, f"override {override!r}") if raw.strip() else None


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config (optional), apply ``section.key=value`` overrides, validate.

    Args:
        path: a YAML file, or the name of a bundled config (``constrained-unlearn configs
            list``); ``None``: defaults only.
        overrides: ``section.key=value`` strings, values parsed as YAML.

    Raises:
        ConfigError: a missing file, invalid YAML, a duplicate or unknown key, a value of the
            wrong type or out of range (the message names the key and the fix).
    """
    tree: dict[str, Any] = {}
    if path is not None:
        from constrained_unlearn.configs import resolve_config

        try:
            path = resolve_config(path)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        loaded = read_yaml(Path(path).read_text(), str(path)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of sections")
        tree = loaded
    for override in overrides:
        _apply_override(tree, override)
    return _build(RunConfig, tree, "").validate()
