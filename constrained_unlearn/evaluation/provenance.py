"""Provenance of an evaluation: what was evaluated, on what, and how.

Every report carries a ``provenance`` block (a plain JSON dict)::

    evaluator          "TOFU" / "MUSE"                    evaluator_version   EVALUATOR_VERSION
    library_version    constrained-unlearn's version      convention (+ its settings)
    model              name_or_path, model_type, architectures, dtype, num_parameters,
                       weights_sha256 (hash of every state-dict tensor's bytes)
    tokenizer          name_or_path, fingerprint (vocabulary, special tokens, chat template)
    template           prompt template fields
    data               splits used, the question column, a SHA-256 per config of its rows
    generation         greedy, max_new_tokens, batch size, stop strings, budget rule
    scoring            batch size, max_length
    seed, environment (torch / transformers / python / device; informative only), created

Two derived keys drive reuse and comparability:

* ``settings_sha256``: hash of everything except the model weights, ``created`` and
  ``environment`` (a changed split, template, convention, generation setting … changes it);
* ``cache_key``: hash of ``weights_sha256`` and ``settings_sha256``. Results are reused only
  under the same cache key: a different checkpoint or any changed setting recomputes.

Forget quality and privacy leak compare against a retain model's log. That log is only valid
for the same split and data, model family, tokenizer, template, question column, convention
and evaluator version (open-unlearning asked users to re-download logs after metric changes).
`check_reference_log` raises [`ProvenanceMismatchError`][constrained_unlearn.evaluation.ProvenanceMismatchError] naming the first setting
that differs; open-unlearning logs, which carry no provenance, are accepted only with
``compat="open-unlearning"`` (and a warning).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import warnings
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

import torch

from constrained_unlearn.evaluation.metrics.conventions import (
    Convention,
    ConventionSettings,
    convention_settings,
)

EVALUATOR_VERSION = "1"
"""Bump when any evaluator computation changes: logs of other versions are then refused."""

OPEN_UNLEARNING_COMPAT = "open-unlearning"


class ProvenanceMismatchError(ValueError):
    """A reference (retain-model) log was made under settings that differ from this run."""


def library_version() -> str:
    """The installed ``constrained-unlearn`` version (``"unknown"`` when not installed)."""
    try:
        return metadata.version("constrained-unlearn")
    except metadata.PackageNotFoundError:
        return "unknown"


def sha256_json(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (keys sorted)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (tuple, list)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state dict: for each entry in name order, its name, dtype,
    shape and raw bytes. Two models hash equal iff they hold bit-identical tensors under the
    same names (tied weights are hashed under each name). Cost: one pass over the weights
    (≈1-2 GB/s; a few seconds for a 7B model, moved to the CPU tensor by tensor)."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach()
        digest.update(name.encode("utf-8"))
        digest.update(str(t.dtype).encode("ascii"))
        digest.update(str(tuple(t.shape)).encode("ascii"))
        flat = t.contiguous().reshape(-1).cpu()
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def data_fingerprint(rows: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 of the rows as canonical JSON (keys sorted, order of rows kept).

    Accepts a list of dicts or a ``datasets.Dataset`` (iterated row by row)."""
    digest = hashlib.sha256()
    count = 0
    for row in rows:
        line = json.dumps(dict(row), sort_keys=True, ensure_ascii=False, default=_json_default)
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
        count += 1
    digest.update(f"rows={count}".encode("ascii"))
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of the vocabulary, the special tokens and the chat template."""
    try:
        vocab = sorted(tokenizer.get_vocab().items())
    except (AttributeError, NotImplementedError):
        vocab = []
    payload = {
        "class": type(tokenizer).__name__,
        "vocab": vocab,
        "special": {
            "bos": getattr(tokenizer, "bos_token", None),
            "eos": getattr(tokenizer, "eos_token", None),
            "pad": getattr(tokenizer, "pad_token", None),
            "unk": getattr(tokenizer, "unk_token", None),
        },
        "chat_template": getattr(tokenizer, "chat_template", None),
    }
    return sha256_json(payload)


def model_identity(model: torch.nn.Module, *, model_id: str | None = None) -> dict[str, Any]:
    """Name, family and weights hash of a model (see the module docstring).

    Args:
        model: the evaluated model.
        model_id: how to name it in reports; defaults to ``config._name_or_path`` or the
            class name.
    """
    config = getattr(model, "config", None)
    name = model_id or getattr(config, "_name_or_path", None) or type(model).__name__
    try:
        first = next(model.parameters())
        dtype, device = str(first.dtype).removeprefix("torch."), str(first.device)
    except StopIteration:
        dtype, device = "unknown", "cpu"
    return {
        "name_or_path": str(name),
        "model_type": getattr(config, "model_type", None) or type(model).__name__,
        "architectures": list(getattr(config, "architectures", None) or [type(model).__name__]),
        "dtype": dtype,
        "device": device,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "weights_sha256": weights_hash(model),
    }


def environment() -> dict[str, Any]:
    """Software versions (informative; not part of the settings hash)."""
    out = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        out["transformers"] = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        pass
    return out


_NOT_SETTINGS = ("created", "environment", "cache_key", "settings_sha256", "role")


def _settings_view(provenance: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in provenance.items() if k not in _NOT_SETTINGS}
    model = dict(view.get("model", {}))
    for key in ("weights_sha256", "name_or_path", "device", "num_parameters", "dtype"):
        model.pop(key, None)
    view["model"] = model
    return view


def finalize(provenance: dict[str, Any]) -> dict[str, Any]:
    """Add ``settings_sha256``, ``cache_key`` and ``created`` to a provenance dict (in place)."""
    provenance["settings_sha256"] = sha256_json(_settings_view(provenance))
    weights = provenance.get("model", {}).get("weights_sha256", "")
    provenance["cache_key"] = sha256_json([weights, provenance["settings_sha256"]])
    provenance.setdefault(
        "created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )
    return provenance


def _get(provenance: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = provenance
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def describe_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Dotted paths of the settings on which two provenance dicts differ (weights excluded)."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{prefix}.{key}" if prefix else str(key))
        elif x != y:
            out.append(prefix)

    walk(_settings_view(a), _settings_view(b), "")
    return out


# (human name, path in the provenance dict) of what a retain log must share with this run.
REFERENCE_SETTINGS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "forget_quality": (
        ("forget split", ("data", "forget_split")),
        ("forget data", ("data", "forget_data_sha256")),
        ("convention", ("convention",)),
        ("evaluator", ("evaluator",)),
        ("evaluator version", ("evaluator_version",)),
        ("model family", ("model", "model_type")),
        ("tokenizer", ("tokenizer", "fingerprint")),
        ("prompt template", ("template",)),
        ("question column", ("data", "question_key")),
        ("number of questions", ("data", "max_questions")),
        ("max sequence length", ("scoring", "max_length")),
        ("tokenization", ("scoring", "tokenization")),
    ),
}
REFERENCE_SETTINGS["privleak"] = REFERENCE_SETTINGS["forget_quality"] + (
    ("holdout split", ("data", "holdout_split")),
    ("holdout data", ("data", "holdout_data_sha256")),
    ("MIA text length", ("scoring", "mia_max_tokens")),
)


def check_reference_log(
    current: Mapping[str, Any],
    reference: Mapping[str, Any] | None,
    *,
    metric: str,
    compat: str | None = None,
    source: str = "retain log",
) -> None:
    """Refuse a retain/retrain log made under settings that differ from this run.

    Args:
        current: this run's provenance.
        reference: the log's ``provenance`` block (``None`` for an open-unlearning log).
        metric: ``"forget_quality"`` or ``"privleak"`` (which settings must match).
        compat: ``"open-unlearning"`` accepts a log without provenance (with a warning).
        source: how to name the log in messages (e.g. its path).

    Raises:
        ProvenanceMismatchError: naming the first differing setting, both values, and the fix.
    """
    if metric not in REFERENCE_SETTINGS:
        raise ValueError(f"metric={metric!r}; use one of {sorted(REFERENCE_SETTINGS)}")
    if reference is None:
        if compat == OPEN_UNLEARNING_COMPAT:
            warnings.warn(
                f"{source} has no provenance block (an open-unlearning log): accepted because "
                f"compat='open-unlearning', but nothing checks that it was made on the same "
                f"split, model family, template and evaluator version as this run",
                UserWarning,
                stacklevel=3,
            )
            return
        raise ProvenanceMismatchError(
            f"{source} has no provenance, so {metric} cannot check that it was made under this "
            "run's settings. Regenerate it with write_retain_log(...), or pass "
            "compat='open-unlearning' to accept an open-unlearning TOFU_EVAL.json as is"
        )
    for label, path in REFERENCE_SETTINGS[metric]:
        mine, theirs = _get(current, path), _get(reference, path)
        if mine != theirs:
            raise ProvenanceMismatchError(
                f"{source} was made with a different {label} ({'.'.join(path)}): "
                f"log has {_short(theirs)}, this run has {_short(mine)}. {metric} is only "
                "meaningful against a retain model evaluated under the same settings: "
                "regenerate the retain log with the same split, template, convention and "
                "library version (write_retain_log)"
            )


def check_not_self_reference(
    current: Mapping[str, Any],
    reference: Mapping[str, Any] | None,
    *,
    source: str = "retain log",
    allow: bool = False,
    option: str = "allow_self_reference=True",
) -> None:
    """Refuse a reference log made by the very weights under evaluation.

    A model compared with its own log gets forget quality 1 (the KS test of a sample against
    itself) and privleak 0 by construction, which reads as perfect unlearning. The log's
    ``model.weights_sha256`` is compared with this run's.

    Args:
        current: this run's provenance.
        reference: the log's provenance (``None``: an open-unlearning log, nothing to check).
        source: how to name the log in messages.
        allow: accept it anyway (a ``UserWarning`` says so): e.g. to check the evaluator.
        option: the keyword that sets ``allow``, named in the message.

    Raises:
        ValueError: when the hashes are equal and ``allow`` is false.
    """
    if reference is None:
        return
    mine = _get(current, ("model", "weights_sha256"))
    theirs = _get(reference, ("model", "weights_sha256"))
    if mine is None or mine != theirs:
        return
    message = (
        f"{source} was made by the very weights under evaluation (weights_sha256 "
        f"{str(mine)[:12]}…): forget quality would be 1 and privleak 0 by construction"
    )
    if not allow:
        raise ValueError(
            f"{message}. Pass the log of the retain (or retrained) model, made with "
            f"write_retain_log / write_retrain_log, or {option} to compare a model with "
            "itself on purpose"
        )
    warnings.warn(f"{message}; accepted because {option}", UserWarning, stacklevel=3)


def evaluator_provenance(evaluator: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance block every evaluator writes: the shared header (evaluator, versions,
    convention and its settings, model identity with weights hash, tokenizer fingerprint,
    seed, environment) plus the evaluator's own ``fields`` (template, data, generation,
    scoring, reference), finalised (`finalize`)."""
    out: dict[str, Any] = {
        "evaluator": evaluator.name,
        "evaluator_version": EVALUATOR_VERSION,
        "library_version": library_version(),
        "convention": evaluator.convention.value,
        "convention_settings": evaluator.settings.to_dict(),
        "model": model_identity(evaluator.model, model_id=evaluator.model_id),
        "tokenizer": {
            "name_or_path": str(getattr(evaluator.tokenizer, "name_or_path", "") or ""),
            "fingerprint": tokenizer_fingerprint(evaluator.tokenizer),
        },
        **fields,
        "seed": evaluator.seed,
        "environment": environment(),
    }
    return finalize(out)


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=_json_default)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cache_matches(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether results stored under ``stored`` provenance may be reused for ``current``."""
    if not stored:
        return False
    return stored.get("cache_key") == current.get("cache_key")


__all__ = [
    "EVALUATOR_VERSION",
    "OPEN_UNLEARNING_COMPAT",
    "REFERENCE_SETTINGS",
    "ProvenanceMismatchError",
    "cache_matches",
    "check_not_self_reference",
    "check_reference_log",
    "evaluator_provenance",
    "data_fingerprint",
    "describe_differences",
    "environment",
    "finalize",
    "library_version",
    "sha256_json",
    "model_identity",
    "tokenizer_fingerprint",
    "weights_hash",
]


def evaluator_settings(
    benchmark: str, convention: Convention | str, *, compat: str | None, batch_size: int
) -> ConventionSettings:
    """Check the arguments every evaluator shares and return the convention's settings.

    Args:
        benchmark: ``"TOFU"`` or ``"MUSE"``, the evaluator asking.
        convention: a [`Convention`][constrained_unlearn.evaluation.metrics.Convention]
            or its name; the other benchmark's ``*-original`` convention is refused.
        compat: ``None`` or ``"open-unlearning"``.
        batch_size: sequences per forward pass, ≥ 1.

    Returns:
        The [`ConventionSettings`][constrained_unlearn.evaluation.metrics.ConventionSettings].
    """
    settings = convention_settings(convention)
    original = {"TOFU": Convention.TOFU_ORIGINAL, "MUSE": Convention.MUSE_ORIGINAL}
    other = "MUSE" if benchmark == "TOFU" else "TOFU"
    if Convention(settings.convention) is original[other]:
        raise ValueError(
            f"convention={original[other].value!r} is a {other} convention; "
            f"{benchmark.capitalize()}Evaluator accepts 'open-unlearning' or "
            f"{original[benchmark].value!r}"
        )
    if compat not in (None, OPEN_UNLEARNING_COMPAT):
        raise ValueError(f"compat={compat!r}; use None or 'open-unlearning'")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be ≥ 1")
    return settings
