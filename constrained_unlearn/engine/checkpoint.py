"""Checkpoints that hold everything a run needs to continue exactly where it stopped.

Pure I/O over explicit objects (`RunObjects`: model, optimiser, scheduler, problem, dual
optimiser, run state, history, config); it knows nothing of the training loop.

Layout of ``<checkpoint_dir>``::

    checkpoint-<step>/             one complete checkpoint, <step> = optimiser steps done
        model.safetensors          model weights (unwrapped ``state_dict``); for a PEFT model only
                                   the adapter weights. Tensors that share storage (tied
                                   weights) are stored once; the aliases are in the metadata.
        optimizer.pt               {"optimizer": primal optimiser state, "lr_scheduler": …,
                                    "grad_scaler": fp16 scaler state or None}
        dual.pt                    {"constraint_names": [...registration order],
                                    "bounds": {name: ε}, "initial_values": {name: value(θ₀)},
                                    "problem": UnlearningProblem.state_dict()  (λ and c by name),
                                    "dual_param_names": [...order of the dual optimiser],
                                    "dual_optimizer": dual optimiser state or None}
        rng-<rank>.pt              python / numpy / torch (and CUDA) RNG states of each rank
        trainer_state.json         format version, RunState.state_dict() (progress, monitor,
                                   starting values, run signature, overridden keys), total steps
        history.json               the step records so far
        config.json                the user's resolved run config, EngineConfig, solver, constraints
        COMPLETE                   written last: JSON {"format_version", "written",
                                   "sha256": {file: hex digest}} over every other file
    tmp-checkpoint-<step>/         a checkpoint being written (ignored, removed by the next save)

Writing is atomic: every rank writes into ``tmp-checkpoint-<step>`` (the main process writes the
shared files, each rank its RNG file), all ranks agree that every write succeeded, the main
process hashes every file into ``COMPLETE`` and renames the directory to ``checkpoint-<step>``
with ``os.replace``, then prunes to the newest ``keep_last``. A crash at any point leaves the
previous checkpoints untouched and loadable. A shared file system is assumed across ranks.

Integrity: loading checks every file against its sha256 in ``COMPLETE`` (a flipped byte is
refused with [`CheckpointDamagedError`][constrained_unlearn.engine.CheckpointDamagedError]); [`latest_checkpoint`][constrained_unlearn.engine.latest_checkpoint] skips a damaged newest
checkpoint for the newest intact one, with a warning naming both.

Loading never unpickles arbitrary objects: weights come from safetensors and every ``.pt`` file
is read with ``torch.load(..., weights_only=True)`` (nuPI's ``nuPIInitType`` is registered as a
safe global by `constrained_unlearn.solvers.nupi`). Dual state is matched by constraint
name (invariant 2): the optimiser state is re-ordered to this run's registration order, and a
checkpoint of a different constraint set is refused. The run signature is compared with the
current one (`constrained_unlearn.engine.signature`): every difference is listed in one
[`CheckpointError`][constrained_unlearn.engine.CheckpointError] unless allowed by ``overrides``. Everything is validated before
anything is changed, so a refused load leaves the objects as they were.

The data order is not stored: [`PairedData`][constrained_unlearn.engine.PairedData] re-creates it
from its seed, and the engine skips the micro-batches already consumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

import constrained_unlearn.solvers.nupi  # noqa: F401  (registers nuPIInitType as a safe global)
from constrained_unlearn.engine.guards import check_finite_state
from constrained_unlearn.engine.history import History, StepRecord
from constrained_unlearn.engine.rng import capture_rng_state, restore_rng_state
from constrained_unlearn.engine.signature import (
    NOT_OVERRIDABLE,
    describe_differences,
    signature_differences,
    split_overrides,
)
from constrained_unlearn.engine.state import RunState
from constrained_unlearn.problem import UnlearningProblem

__all__ = [
    "CheckpointDamagedError",
    "CheckpointError",
    "CheckpointWarning",
    "FORMAT_VERSION",
    "LoadedCheckpoint",
    "RunObjects",
    "SHARED_FILES",
    "capture_rng_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "read_trainer_state",
    "restore_rng_state",
    "save_checkpoint",
    "verify_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
PREFIX = "checkpoint-"
TMP_PREFIX = "tmp-checkpoint-"
COMPLETE = "COMPLETE"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
DUAL_FILE = "dual.pt"
STATE_FILE = "trainer_state.json"
HISTORY_FILE = "history.json"
CONFIG_FILE = "config.json"
SHARED_FILES = (MODEL_FILE, OPTIMIZER_FILE, DUAL_FILE, STATE_FILE, HISTORY_FILE, CONFIG_FILE)


def rng_file(rank: int) -> str:
    """Name of the RNG file of one rank."""
    return f"rng-{rank}.pt"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the run it is loaded into."""


class CheckpointDamagedError(CheckpointError):
    """A checkpoint's files do not match the checksums in its ``COMPLETE`` marker (or are gone)."""


class CheckpointWarning(UserWarning):
    """An incomplete or damaged checkpoint was skipped, or a resumed run differs from the saved one."""


@dataclass
class RunObjects:
    """Everything a checkpoint saves and restores, named explicitly.

    Attributes:
        accelerator: the run's ``Accelerator`` (ranks, device, state-dict gathering).
        model: the prepared model.
        optimizer: the primal optimiser.
        lr_scheduler: its learning-rate scheduler.
        problem: the problem (multipliers, penalty coefficients, bounds by name).
        dual_optimizer: the dual optimiser (``None`` for a frozen multiplier).
        state: the run state (progress, monitor, starting values, signature).
        history: the step records.
        total_steps: the planned number of optimiser steps.
        config: the ``config.json`` payload (resolved run config, EngineConfig, solver …).
    """

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    problem: UnlearningProblem
    dual_optimizer: torch.optim.Optimizer | None
    state: RunState
    history: History
    total_steps: int
    config: Mapping[str, Any]


@dataclass
class LoadedCheckpoint:
    """What `load_checkpoint` hands back beside the restored objects.

    Attributes:
        path: the checkpoint.
        rng_state: this rank's saved RNG state, to restore right before the next step.
        overridden: ``{key: (saved, now)}`` signature differences accepted via ``overrides``.
    """

    path: Path
    rng_state: dict[str, Any]
    overridden: dict[str, tuple[Any, Any]]


# -- finding checkpoints --------------------------------------------------------------------
def _step_of(path: Path, prefix: str) -> int | None:
    suffix = path.name[len(prefix) :]
    return int(suffix) if path.name.startswith(prefix) and suffix.isdigit() else None


def list_checkpoints(directory: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """``(complete, incomplete)`` checkpoint directories, each sorted by step (oldest first).

    *Complete* means ``checkpoint-<step>`` with its ``COMPLETE`` marker; *incomplete* are
    ``checkpoint-<step>`` without it and unfinished ``tmp-checkpoint-<step>`` directories.
    """
    root = Path(directory)
    complete: list[tuple[int, Path]] = []
    incomplete: list[tuple[int, Path]] = []
    if not root.is_dir():
        return [], []
    for path in root.iterdir():
        if not path.is_dir():
            continue
        step = _step_of(path, PREFIX)
        if step is not None:
            target = complete if (path / COMPLETE).is_file() else incomplete
            target.append((step, path))
            continue
        step = _step_of(path, TMP_PREFIX)
        if step is not None:
            incomplete.append((step, path))
    return [p for _, p in sorted(complete)], [p for _, p in sorted(incomplete)]


def latest_checkpoint(
    directory: str | os.PathLike[str], *, report: bool = True, verify: bool = True
) -> Path | None:
    """The newest complete (and, with ``verify``, intact) checkpoint in ``directory``.

    With ``report``, every incomplete checkpoint is reported with a [`CheckpointWarning`][constrained_unlearn.engine.CheckpointWarning]
    (it was being written when a run stopped), and so is every damaged one skipped for an older
    intact one (naming both). ``None`` if there is none.
    """
    complete, incomplete = list_checkpoints(directory)
    newest = complete[-1] if complete else None
    if report:
        for path in incomplete:
            warnings.warn(
                f"ignoring incomplete checkpoint {path} (no {COMPLETE} marker: the run stopped "
                "while writing it); "
                + (f"the newest complete one is {newest}" if newest else "no complete one exists"),
                CheckpointWarning,
                stacklevel=2,
            )
    if not verify:
        return newest
    damaged: list[tuple[Path, str]] = []
    chosen = None
    for path in reversed(complete):
        try:
            verify_checkpoint(path)
        except CheckpointDamagedError as err:
            damaged.append((path, str(err)))
            continue
        chosen = path
        break
    if report:
        for path, reason in damaged:
            warnings.warn(
                f"skipping damaged checkpoint {path} ({reason}); "
                + (f"falling back to {chosen}" if chosen else "no intact checkpoint remains"),
                CheckpointWarning,
                stacklevel=2,
            )
    return chosen


def prune_checkpoints(directory: str | os.PathLike[str], keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints; returns the deleted ones."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be ≥ 1, got {keep_last}")
    complete, _ = list_checkpoints(directory)
    doomed = complete[:-keep_last]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


# -- integrity ------------------------------------------------------------------------------
def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 hex digest of one file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_marker(path: Path) -> dict[str, Any]:
    marker = path / COMPLETE
    if not marker.is_file():
        raise CheckpointError(
            f"{path} is not a complete checkpoint (no {COMPLETE} marker); it was being written "
            "when the run stopped. Use an older checkpoint-<step> directory."
        )
    try:
        content = json.loads(marker.read_text())
        if not isinstance(content, dict) or not isinstance(content.get("sha256"), dict):
            raise ValueError("no checksums")
    except (ValueError, OSError) as err:
        raise CheckpointDamagedError(
            f"the {COMPLETE} marker of {path} holds no checksums ({err}): it is damaged or was "
            f"written by an older version of constrained_unlearn (format 1; this one reads "
            f"format {FORMAT_VERSION})"
        ) from err
    return content


def verify_checkpoint(path: str | os.PathLike[str], files: Sequence[str] | None = None) -> None:
    """Check ``files`` (default: every file listed) against the sha256 in ``COMPLETE``.

    Raises:
        CheckpointError: ``path`` has no ``COMPLETE`` marker (incomplete).
        CheckpointDamagedError: a file is missing, unlisted or its checksum differs.
    """
    path = Path(path)
    sums = _read_marker(path)["sha256"]
    for name in files if files is not None else sorted(sums):
        if name not in sums:
            raise CheckpointDamagedError(f"{path / name} has no checksum in {COMPLETE}")
        target = path / name
        if not target.is_file():
            raise CheckpointDamagedError(f"checkpoint file {target} is missing")
        if file_sha256(target) != sums[name]:
            raise CheckpointDamagedError(
                f"{target} does not match its sha256 in {COMPLETE}: the file was changed or "
                "corrupted after the checkpoint was written"
            )


# -- low-level writing ----------------------------------------------------------------------
def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _torch_save(obj: Any, path: Path) -> None:
    torch.save(obj, path)
    _fsync_file(path)


def _json_save(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str))
    _fsync_file(path)


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing; the checkpoint is damaged")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds objects that are not plain tensors/containers "
            f"and is only read with weights_only=True ({err}). It was not written by this "
            "library, or it is corrupt."
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"cannot read {path} ({err}); the checkpoint is damaged") from err


def _json_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing; the checkpoint is damaged")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise CheckpointError(f"cannot read {path} ({err}); the checkpoint is damaged") from err


# -- model weights --------------------------------------------------------------------------
def _is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config")


def _model_tensors(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``{tensors, metadata}`` for safetensors: adapter-only for PEFT, tied tensors stored once."""
    kind = "full"
    if _is_peft(model):
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model, state_dict=dict(state))
        kind = "peft-adapter"
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    storages: set[int] = set()
    for name, tensor in state.items():
        tensor = tensor.detach()
        view = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
            tensor.dtype,
        )
        if view in seen and tensor.numel() > 0:
            aliases[name] = seen[view]
            continue
        seen[view] = name
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages and tensor.numel() > 0:
            tensor = tensor.clone()  # overlaps another saved tensor in a different shape
        storages.add(tensor.untyped_storage().data_ptr())
        tensors[name] = tensor.contiguous().cpu()
    metadata = {"format": "pt", "kind": kind, "aliases": json.dumps(aliases)}
    return {"tensors": tensors, "metadata": metadata}


def _read_model_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing; the checkpoint is damaged")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read {path} ({err}); the checkpoint is damaged") from err
    for alias, source in json.loads(metadata.get("aliases", "{}")).items():
        tensors[alias] = tensors[source]
    return tensors, metadata


def _load_model_weights(
    model: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    metadata: Mapping[str, str],
    path: Path,
) -> None:
    kind = metadata.get("kind", "full")
    if (kind == "peft-adapter") != _is_peft(model):
        raise CheckpointError(
            f"{path} holds {'adapter' if kind == 'peft-adapter' else 'full model'} weights but the "
            f"model is {'a PEFT' if _is_peft(model) else 'not a PEFT'} model; build the model the "
            "way the checkpointed run did (same base model, same adapters)"
        )
    if kind == "peft-adapter":
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, tensors)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise CheckpointError(
                f"adapter weights in {path} do not fit the model: unexpected keys {unexpected[:5]}"
            )
        return
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {path} do not fit the model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}; build the same architecture the checkpointed run used"
        )
    for name, tensor in tensors.items():
        if tuple(own[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"weight {name!r} in {path} has shape {tuple(tensor.shape)}, the model has "
                f"{tuple(own[name].shape)}; build the same architecture the checkpointed run used"
            )
    model.load_state_dict(tensors, strict=True)


# -- dual state -----------------------------------------------------------------------------
def _dual_payload(objects: RunObjects) -> dict[str, Any]:
    problem = objects.problem
    return {
        "constraint_names": problem.constraint_names,
        "bounds": problem.require_bounds(),
        "initial_values": dict(objects.state.initial_values),
        "problem": problem.state_dict(),
        "dual_param_names": [name for name, _ in problem.named_multiplier_parameters()],
        "dual_optimizer": (
            objects.dual_optimizer.state_dict() if objects.dual_optimizer is not None else None
        ),
    }


def _reorder_dual_state(
    state: dict[str, Any], saved: Sequence[str], current: Sequence[str], path: Path
) -> dict[str, Any]:
    """Re-index a positional optimiser state saved for names ``saved`` to the order ``current``."""
    if list(saved) == list(current):
        return state
    groups = state["param_groups"]
    if len(groups) != 1 or sorted(groups[0]["params"]) != list(range(len(saved))):
        raise CheckpointError(
            f"the dual optimiser state in {path} has {len(groups)} parameter groups; only a single "
            "group can be matched to the constraints by name"
        )
    new_index = {old: current.index(name) for old, name in enumerate(saved)}
    return {
        "state": {new_index[int(i)]: value for i, value in state["state"].items()},
        "param_groups": [{**groups[0], "params": list(range(len(current)))}],
    }


# -- save ----------------------------------------------------------------------------------
def _agree(accelerator: Accelerator, ok: bool) -> bool:
    """True on every rank iff ``ok`` on every rank (doubles as a barrier)."""
    if accelerator.num_processes == 1:
        return ok
    flag = torch.tensor([0.0 if ok else 1.0], device=accelerator.device)
    return float(accelerator.reduce(flag, reduction="sum").item()) == 0.0


def save_checkpoint(
    objects: RunObjects,
    directory: str | os.PathLike[str],
    *,
    rng_state: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write ``<directory>/checkpoint-<global_step>`` atomically; call it on every rank.

    Args:
        objects: the run's objects, at an optimiser-step boundary.
        directory: the checkpoint directory.
        rng_state: this rank's RNG state to store (default: the current one).
        keep_last: prune to the newest this many complete checkpoints afterwards.

    Raises:
        NonFiniteError: a parameter or multiplier is NaN/inf; nothing is written, so the last
            good checkpoint stays the newest.
        CheckpointError: a write failed on some rank; previous checkpoints are untouched.
    """
    acc = objects.accelerator
    root = Path(directory)
    step = objects.state.progress.global_step
    final = root / f"{PREFIX}{step}"
    tmp = root / f"{TMP_PREFIX}{step}"
    check_finite_state(acc.unwrap_model(objects.model), objects.problem, step)
    model_state = acc.get_state_dict(objects.model)
    rng = dict(rng_state) if rng_state is not None else capture_rng_state()
    error: BaseException | None = None
    if acc.is_main_process:
        try:
            root.mkdir(parents=True, exist_ok=True)
            for stale in root.glob(f"{TMP_PREFIX}*"):  # left by a crashed save
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
        except OSError as err:
            error = err
    if not _agree(acc, error is None):
        raise CheckpointError(f"cannot create {tmp}: {error or 'failed on the main process'}")
    try:
        _torch_save(rng, tmp / rng_file(acc.process_index))
        if acc.is_main_process:
            _write_shared_files(objects, tmp, model_state)
    except Exception as err:
        error = err
    if not _agree(acc, error is None):
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"writing checkpoint {final} failed ({error or 'on another rank'}); the previous "
            "checkpoints are untouched"
        ) from error
    if acc.is_main_process:
        try:
            _commit(tmp, final)
            if keep_last is not None:
                prune_checkpoints(root, keep_last)
        except OSError as err:
            error = err
    if not _agree(acc, error is None):
        raise CheckpointError(
            f"committing checkpoint {final} failed ({error or 'on the main process'}); the "
            "previous checkpoints are untouched"
        ) from error
    return final


def _write_shared_files(
    objects: RunObjects, tmp: Path, model_state: Mapping[str, torch.Tensor]
) -> None:
    acc = objects.accelerator
    weights = _model_tensors(acc.unwrap_model(objects.model), model_state)
    save_file(weights["tensors"], str(tmp / MODEL_FILE), metadata=weights["metadata"])
    _fsync_file(tmp / MODEL_FILE)
    scaler = getattr(acc, "scaler", None)
    _torch_save(
        {
            "optimizer": objects.optimizer.state_dict(),
            "lr_scheduler": objects.lr_scheduler.state_dict(),
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
        },
        tmp / OPTIMIZER_FILE,
    )
    _torch_save(_dual_payload(objects), tmp / DUAL_FILE)
    trainer_state = {
        "format_version": FORMAT_VERSION,
        **objects.state.state_dict(),
        "total_steps": objects.total_steps,
        "world_size": acc.num_processes,
    }
    _json_save(trainer_state, tmp / STATE_FILE)
    _json_save([asdict(r) for r in objects.history.records], tmp / HISTORY_FILE)
    _json_save(dict(objects.config), tmp / CONFIG_FILE)


def _commit(tmp: Path, final: Path) -> None:
    sums = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    marker = tmp / COMPLETE
    content = {
        "format_version": FORMAT_VERSION,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "sha256": sums,
    }
    marker.write_text(json.dumps(content, indent=1))
    _fsync_file(marker)
    _fsync_dir(tmp)
    aside = None
    if final.exists():  # the same step saved again (e.g. the final save after a periodic one)
        aside = final.with_name(f"{TMP_PREFIX}old-{final.name}")
        os.replace(final, aside)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# -- load -----------------------------------------------------------------------------------
def read_trainer_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``trainer_state.json`` of a complete checkpoint (for inspection)."""
    path = Path(path)
    _read_marker(path)
    state = _json_load(path / STATE_FILE)
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path / STATE_FILE} is not a JSON object; the checkpoint is damaged"
        )
    return state


_RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "step": int,
    "epoch": int,
    "objective": (int, float),
    "values": dict,
    "violations": dict,
    "multipliers": dict,
    "lr": (int, float),
    "dual_live": bool,
    "metrics": dict,
}


def _parse_history(raw: Any, path: Path) -> list[StepRecord]:
    """Step records from ``history.json``; anything malformed is a [`CheckpointError`][constrained_unlearn.engine.CheckpointError]."""
    where = path / HISTORY_FILE
    if not isinstance(raw, list):
        raise CheckpointError(f"{where} must hold a list of step records, got {type(raw).__name__}")
    names = {f.name for f in fields(StepRecord)}
    records = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - names or not set(_RECORD_TYPES) <= set(item):
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise CheckpointError(
                f"record {i} of {where} is not a step record (keys {keys}, expected "
                f"{sorted(names)}); the checkpoint is damaged"
            )
        for key, kind in _RECORD_TYPES.items():
            if not isinstance(item[key], kind):
                raise CheckpointError(
                    f"record {i} of {where}: {key!r} is {item[key]!r}; the checkpoint is damaged"
                )
        records.append(StepRecord(**item))
    return records


def _check_signature(
    saved: Mapping[str, Any], current: Mapping[str, Any], overrides: Sequence[str], path: Path
) -> dict[str, tuple[Any, Any]]:
    differences = signature_differences(saved, current)
    refused, accepted = split_overrides(differences, overrides)
    if refused:
        allowed = [k for k in refused if k not in NOT_OVERRIDABLE]
        how = (
            f"resume with the same settings, start fresh (resume=False), or allow the change "
            f"deliberately with EngineConfig(resume_overrides={tuple(allowed)!r})"
            if allowed
            else "resume with the same settings or start fresh (resume=False)"
        )
        fixed = [k for k in refused if k in NOT_OVERRIDABLE]
        never = f" ({', '.join(fixed)} can never be overridden)" if fixed else ""
        raise CheckpointError(
            f"cannot resume from {path}: the run differs from the checkpoint's in "
            f"{len(refused)} setting(s):\n{describe_differences(refused)}\n{how}{never}"
        )
    return accepted


def load_checkpoint(
    objects: RunObjects,
    path: str | os.PathLike[str],
    *,
    overrides: Sequence[str] = (),
    verify: bool = True,
) -> LoadedCheckpoint:
    """Restore ``objects`` from a complete checkpoint; call it on every rank.

    The RNG state is not applied here but returned, to be restored right before the next
    optimiser step. ``objects.state.signature`` must hold the current run's signature; keys in
    ``overrides`` may differ (they are returned, logged and recorded in the state).

    Raises:
        CheckpointDamagedError: a file does not match its checksum (with ``verify``).
        CheckpointError: the checkpoint is incomplete, damaged, or was written for a different
            run (every differing signature key is listed) or constraint set.
    """
    acc = objects.accelerator
    path = Path(path)
    if verify:
        verify_checkpoint(path, [*SHARED_FILES, rng_file(acc.process_index)])
    state = read_trainer_state(path)
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state.get('format_version')!r}; this version of "
            f"constrained_unlearn reads format {FORMAT_VERSION}"
        )
    problem = objects.problem
    dual = _torch_load(path / DUAL_FILE)
    names = problem.constraint_names
    if sorted(dual["constraint_names"]) != sorted(names):
        raise CheckpointError(
            f"cannot resume from {path}: it was written for constraints "
            f"{dual['constraint_names']}, this engine has {names}. Multipliers and dual optimiser "
            "state are matched by name; build the engine with the same ConstraintSpec names or "
            "start a fresh run (resume=False)."
        )
    try:
        saved_signature = dict(state["signature"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path / STATE_FILE} has no run signature ({err})") from err
    accepted = _check_signature(saved_signature, objects.state.signature, overrides, path)
    dual_names = [name for name, _ in problem.named_multiplier_parameters()]
    if sorted(dual["dual_param_names"]) != sorted(dual_names):
        raise CheckpointError(
            f"cannot resume from {path}: its dual optimiser covers {dual['dual_param_names']}, "
            f"this engine's covers {dual_names}"
        )
    if (dual["dual_optimizer"] is None) != (objects.dual_optimizer is None):
        raise CheckpointError(
            f"cannot resume from {path}: the dual optimiser is "
            f"{'absent' if dual['dual_optimizer'] is None else 'present'} in the checkpoint but "
            f"{'absent' if objects.dual_optimizer is None else 'present'} here; use the same solver"
        )
    dual_state = None
    if dual["dual_optimizer"] is not None:
        dual_state = _reorder_dual_state(
            dual["dual_optimizer"], dual["dual_param_names"], dual_names, path
        )
    primal = _torch_load(path / OPTIMIZER_FILE)
    rng = _torch_load(path / rng_file(acc.process_index))
    tensors, metadata = _read_model_file(path / MODEL_FILE)
    history = _parse_history(_json_load(path / HISTORY_FILE), path)
    if state["total_steps"] != objects.total_steps:
        warnings.warn(
            f"{path} was saved by a run of {state['total_steps']} optimiser steps, this one has "
            f"{objects.total_steps}: the learning-rate schedule continues with the new length",
            CheckpointWarning,
            stacklevel=3,
        )

    # everything read and checked: apply
    _load_model_weights(acc.unwrap_model(objects.model), tensors, metadata, path)
    try:
        objects.optimizer.load_state_dict(primal["optimizer"])
    except (ValueError, KeyError) as err:
        raise CheckpointError(
            f"the primal optimiser state in {path} does not fit this optimiser ({err}); build "
            "the same optimiser over the same trainable parameters"
        ) from err
    objects.lr_scheduler.load_state_dict(primal["lr_scheduler"])
    scaler = getattr(acc, "scaler", None)
    if scaler is not None and primal.get("grad_scaler") is not None:
        scaler.load_state_dict(primal["grad_scaler"])
    device = acc.device
    problem.load_state_dict(
        {
            "multipliers": dual["problem"]["multipliers"],
            "penalty_coefficients": {
                name: {key: value.to(device) for key, value in entry.items()}
                for name, entry in dual["problem"]["penalty_coefficients"].items()
            },
        }
    )
    for name, bound in dual["bounds"].items():
        problem.set_bound(name, bound)
    if dual_state is not None and objects.dual_optimizer is not None:
        objects.dual_optimizer.load_state_dict(dual_state)
    objects.history.records = history
    objects.state.load_state_dict(state, device)
    objects.state.initial_values = {k: float(v) for k, v in dual["initial_values"].items()}
    for key, (old, new) in accepted.items():
        logger.warning("resume from %s overrides %s: saved %r, now %r", path, key, old, new)
        objects.state.resume_overridden[key] = {"saved": old, "now": new}
    acc.wait_for_everyone()
    return LoadedCheckpoint(path=path, rng_state=rng, overridden=accepted)
