"""The run signature: what determines a run, stored in every checkpoint and compared on resume.

A signature is a flat ``{key: JSON value}``. The engine's own part (`engine_signature`):

* ``solver`` and ``solver.<hyper-parameter>`` (λ₀, η, warm-up, cadence, penalty c, nuPI gains);
* ``constraint.<name>.bound`` (ε, ``None`` = calibrated) and ``constraint.<name>.slack``;
* ``optimizer.type`` and ``optimizer.group<i>.<hyper-parameter>`` (the starting ``lr``, betas,
  weight decay, eps, momentum … of every parameter group);
* ``engine.<field>`` for the [`EngineConfig`][constrained_unlearn.engine.EngineConfig] fields that shape the steps (accumulation K,
  clipping, schedule, warm-up ratio, precision, seed), ``world_size``;
* ``data.*``: forget/retain sizes, batch sizes, shuffle, seed, length grouping and ``data.forget_sha256`` /
  ``data.retain_sha256``, fingerprints of the items' tensors (token ids, labels, masks: another
  ``max_length`` or other data of the same size changes them).

The caller adds its own keys (``run_signature``: method and its options, model id …). The run's
length (``epochs``, ``max_steps``) is not part of it: extending a run is what a resume is for (a
changed total only warns, the LR schedule continues with the new length).

On resume `signature_differences` lists every key whose value differs; the engine refuses
with all of them at once unless each is in ``EngineConfig.resume_overrides``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.engine.data import PairedData
from constrained_unlearn.problem import UnlearningProblem
from constrained_unlearn.solvers import Solver

__all__ = [
    "ABSENT",
    "NOT_OVERRIDABLE",
    "SHAPING_FIELDS",
    "dataset_fingerprint",
    "describe_differences",
    "engine_signature",
    "merge_signatures",
    "signature_differences",
    "split_overrides",
]

SHAPING_FIELDS = (
    "gradient_accumulation_steps",
    "max_grad_norm",
    "lr_scheduler",
    "lr_warmup_ratio",
    "mixed_precision",
    "seed",
)
"""The [`EngineConfig`][constrained_unlearn.engine.EngineConfig] fields that change what a step computes."""

NOT_OVERRIDABLE = ("world_size",)
"""Keys a resume can never override: the data position inside an epoch depends on them."""

ABSENT = "<absent>"
"""Shown for a key that one of two signatures does not have."""


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples → lists, unknown objects → strings)."""
    return json.loads(json.dumps(value, default=str))


def _update(digest: Any, item: Any) -> None:
    if isinstance(item, torch.Tensor):
        tensor = item.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(item, Mapping):
        digest.update(b"{")
        for key in sorted(item, key=str):
            digest.update(str(key).encode() + b":")
            _update(digest, item[key])
        digest.update(b"}")
    elif isinstance(item, (list, tuple)):
        digest.update(b"[")
        for element in item:
            _update(digest, element)
            digest.update(b",")
        digest.update(b"]")
    else:
        digest.update(repr(item).encode())


def dataset_fingerprint(dataset: Any) -> str:
    """sha256 over every item of a map-style dataset (tensors by dtype, shape and bytes).

    A ``TensorDataset`` is hashed through its tensors directly (one pass over the memory);
    any other dataset item by item (``dataset[i]`` for ``i < len(dataset)``).
    """
    digest = hashlib.sha256()
    tensors = getattr(dataset, "tensors", None)
    if isinstance(dataset, torch.utils.data.TensorDataset) and tensors is not None:
        _update(digest, ["TensorDataset", list(tensors)])
    else:
        for i in range(len(dataset)):
            _update(digest, dataset[i])
    return digest.hexdigest()


def _optimizer_part(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the optimiser
    out: dict[str, Any] = {"optimizer.type": type(inner).__name__}
    for i, group in enumerate(optimizer.param_groups):
        for key, value in group.items():
            if key in ("params", "initial_lr"):
                continue
            if key == "lr":
                value = group.get("initial_lr", value)  # before any schedule
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if value is None or isinstance(value, (bool, int, float, str, tuple, list)):
                out[f"optimizer.group{i}.{key}"] = value
        out[f"optimizer.group{i}.size"] = sum(p.numel() for p in group["params"])
    return out


def engine_signature(
    solver: Solver,
    problem: UnlearningProblem,
    optimizer: torch.optim.Optimizer,
    config: EngineConfig,
    world_size: int,
    data: PairedData,
) -> dict[str, Any]:
    """The engine's part of the signature (see the module docstring); JSON-shaped."""
    out: dict[str, Any] = dict(solver.describe())
    for name, spec in problem.specs.items():
        out[f"constraint.{name}.bound"] = spec.bound
        out[f"constraint.{name}.slack"] = spec.slack
    out.update(_optimizer_part(optimizer))
    for key in SHAPING_FIELDS:
        out[f"engine.{key}"] = getattr(config, key)
    out["world_size"] = world_size
    # the batch order: sizes, batch sizes, shuffle, seed, length grouping
    out.update({f"data.{key}": value for key, value in data.order_settings().items()})
    out["data.forget_sha256"] = dataset_fingerprint(data.forget)
    out["data.retain_sha256"] = dataset_fingerprint(data.retain)
    return _as_json(out)


def merge_signatures(engine_part: Mapping[str, Any], caller: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's part plus the caller's ``run_signature`` (keys must not collide)."""
    if not isinstance(caller, Mapping):
        raise TypeError(f"run_signature must be a mapping, got {type(caller).__name__}")
    clash = sorted(set(engine_part) & set(caller))
    if clash:
        raise ValueError(
            f"run_signature keys {clash} are the engine's own; the engine records them itself. "
            "Drop them or prefix them (e.g. 'method.', 'model.', 'data.max_length')"
        )
    bad = sorted(str(k) for k in caller if not isinstance(k, str))
    if bad:
        raise TypeError(f"run_signature keys must be strings, got {bad}")
    return {**engine_part, **_as_json(dict(caller))}


def signature_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, current value)}`` for every key that differs (or is absent)."""
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key, ABSENT), current.get(key, ABSENT)
        if old != new:
            out[key] = (old, new)
    return out


def describe_differences(differences: Mapping[str, tuple[Any, Any]]) -> str:
    """One line per key: ``key: saved <old>, now <new>``."""
    return "\n".join(
        f"  {key}: saved {old!r}, now {new!r}" for key, (old, new) in differences.items()
    )


def split_overrides(
    differences: Mapping[str, tuple[Any, Any]], overrides: Sequence[str]
) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """``(refused, accepted)``: the differences outside and inside ``overrides``."""
    allowed = set(overrides) - set(NOT_OVERRIDABLE)
    refused = {k: v for k, v in differences.items() if k not in allowed}
    accepted = {k: v for k, v in differences.items() if k in allowed}
    return refused, accepted
