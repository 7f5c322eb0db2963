"""Checkpoints that hold everything a run needs to continue exactly where it stopped.

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
        trainer_state.json         format version, global step, epoch and position inside it
                                   (micro-batches consumed), epoch-level dual sums, warning
                                   counters, world size, K, data fingerprint, solver name
        history.json               the step records so far
        config.json                the user's resolved run config, EngineConfig, solver, constraints
        COMPLETE                   written last; a directory without it is ignored
    tmp-checkpoint-<step>/         a checkpoint being written (ignored, removed by the next save)

Writing is atomic: every rank writes into ``tmp-checkpoint-<step>`` (the main process writes the
shared files, each rank its RNG file), all ranks agree that every write succeeded, the main
process writes ``COMPLETE`` and renames the directory to ``checkpoint-<step>`` with
``os.replace``, then prunes to the newest ``keep_last``. A crash at any point leaves the
previous checkpoints untouched and loadable. A shared file system is assumed across ranks.

Loading never unpickles arbitrary objects: weights come from safetensors and every ``.pt`` file
is read with ``torch.load(..., weights_only=True)`` (nuPI's ``nuPIInitType`` is registered as a
safe global by :mod:`constrained_unlearn.solvers.nupi`). Dual state is matched by constraint
name (invariant 2): the optimiser state is re-ordered to this engine's registration order, and a
checkpoint of a different constraint set is refused. Everything is validated before anything is
changed, so a refused load leaves the engine as it was.

The data order is not stored: :class:`~constrained_unlearn.engine.data.PairedData` re-creates it
from its seed, and the engine skips the micro-batches already consumed.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import constrained_unlearn.solvers.nupi  # noqa: F401  (registers nuPIInitType as a safe global)
from constrained_unlearn.engine.history import StepRecord

if TYPE_CHECKING:
    from constrained_unlearn.engine.loop import UnlearningEngine

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "FORMAT_VERSION",
    "capture_rng_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT_VERSION = 1
PREFIX = "checkpoint-"
TMP_PREFIX = "tmp-checkpoint-"
COMPLETE = "COMPLETE"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
DUAL_FILE = "dual.pt"
STATE_FILE = "trainer_state.json"
HISTORY_FILE = "history.json"
CONFIG_FILE = "config.json"
_SHARED_FILES = (MODEL_FILE, OPTIMIZER_FILE, DUAL_FILE, STATE_FILE, HISTORY_FILE, CONFIG_FILE)


def rng_file(rank: int) -> str:
    """Name of the RNG file of one rank."""
    return f"rng-{rank}.pt"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the engine it is loaded into."""


class CheckpointWarning(UserWarning):
    """An incomplete checkpoint was skipped, or a resumed run differs from the saved one."""


# -- RNG ------------------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) RNG states of this process, weights_only-safe."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


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


def latest_checkpoint(directory: str | os.PathLike[str], *, report: bool = True) -> Path | None:
    """The newest complete checkpoint in ``directory`` (``None`` if there is none).

    With ``report``, every incomplete checkpoint is reported with a :class:`CheckpointWarning`
    (it was being written when a run stopped).
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
    return newest


def prune_checkpoints(directory: str | os.PathLike[str], keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints; returns the deleted ones."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be ≥ 1, got {keep_last}")
    complete, _ = list_checkpoints(directory)
    doomed = complete[:-keep_last]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


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
def _dual_payload(engine: UnlearningEngine) -> dict[str, Any]:
    problem = engine.problem
    return {
        "constraint_names": problem.constraint_names,
        "bounds": problem.require_bounds(),
        "initial_values": dict(engine.initial_values),
        "problem": problem.state_dict(),
        "dual_param_names": [name for name, _ in problem.named_multiplier_parameters()],
        "dual_optimizer": (
            engine.dual_optimizer.state_dict() if engine.dual_optimizer is not None else None
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
def _agree(engine: UnlearningEngine, ok: bool) -> bool:
    """True on every rank iff ``ok`` on every rank (doubles as a barrier)."""
    acc = engine.accelerator
    if acc.num_processes == 1:
        return ok
    flag = torch.tensor([0.0 if ok else 1.0], device=acc.device)
    return float(acc.reduce(flag, reduction="sum").item()) == 0.0


def save_checkpoint(
    engine: UnlearningEngine,
    directory: str | os.PathLike[str],
    *,
    rng_state: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write ``<directory>/checkpoint-<global_step>`` atomically; call it on every rank.

    Args:
        engine: the engine, at an optimiser-step boundary.
        directory: the checkpoint directory.
        rng_state: this rank's RNG state to store (default: the current one).
        keep_last: prune to the newest this many complete checkpoints afterwards.

    Raises:
        NonFiniteError: a parameter or multiplier is NaN/inf; nothing is written, so the last
            good checkpoint stays the newest.
        CheckpointError: a write failed on some rank; previous checkpoints are untouched.
    """
    acc = engine.accelerator
    root = Path(directory)
    step = engine.global_step
    final = root / f"{PREFIX}{step}"
    tmp = root / f"{TMP_PREFIX}{step}"
    engine._check_finite_state()
    model_state = acc.get_state_dict(engine.model)
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
    if not _agree(engine, error is None):
        raise CheckpointError(f"cannot create {tmp}: {error or 'failed on the main process'}")
    try:
        _torch_save(rng, tmp / rng_file(acc.process_index))
        if acc.is_main_process:
            _write_shared_files(engine, tmp, model_state)
    except Exception as err:
        error = err
    if not _agree(engine, error is None):
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
    if not _agree(engine, error is None):
        raise CheckpointError(
            f"committing checkpoint {final} failed ({error or 'on the main process'}); the "
            "previous checkpoints are untouched"
        ) from error
    return final


def _write_shared_files(
    engine: UnlearningEngine, tmp: Path, model_state: Mapping[str, torch.Tensor]
) -> None:
    acc = engine.accelerator
    weights = _model_tensors(engine.unwrapped_model, model_state)
    save_file(weights["tensors"], str(tmp / MODEL_FILE), metadata=weights["metadata"])
    _fsync_file(tmp / MODEL_FILE)
    scaler = getattr(acc, "scaler", None)
    _torch_save(
        {
            "optimizer": engine.optimizer.state_dict(),
            "lr_scheduler": engine.lr_scheduler.state_dict(),
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
        },
        tmp / OPTIMIZER_FILE,
    )
    _torch_save(_dual_payload(engine), tmp / DUAL_FILE)
    _json_save(engine._trainer_state(), tmp / STATE_FILE)
    _json_save([asdict(r) for r in engine.history.records], tmp / HISTORY_FILE)
    _json_save(
        {
            "run_config": engine.run_config,
            "engine_config": engine.config.to_dict(),
            "solver": engine.solver.describe(),
            "constraints": [asdict(s) for s in engine.problem.specs.values()],
        },
        tmp / CONFIG_FILE,
    )


def _commit(tmp: Path, final: Path) -> None:
    marker = tmp / COMPLETE
    marker.write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
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
    if not (path / COMPLETE).is_file():
        raise CheckpointError(
            f"{path} is not a complete checkpoint (no {COMPLETE} marker); it was being written "
            "when the run stopped. Use an older checkpoint-<step> directory."
        )
    return _json_load(path / STATE_FILE)


def _check_same(key: str, saved: Any, current: Any, path: Path, fix: str) -> None:
    if saved != current:
        raise CheckpointError(
            f"cannot resume from {path}: {key} was {saved!r} when it was saved, now {current!r}; "
            f"{fix}"
        )


def load_checkpoint(engine: UnlearningEngine, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Restore ``engine`` from a complete checkpoint; call it on every rank.

    The RNG state is not applied here but kept for :meth:`UnlearningEngine.fit`, which restores
    it right before the next optimiser step. Returns the checkpoint's trainer state.

    Raises:
        CheckpointError: the checkpoint is incomplete, damaged, or was written for a different
            constraint set, solver, number of processes, accumulation or data.
    """
    acc = engine.accelerator
    path = Path(path)
    state = read_trainer_state(path)
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state.get('format_version')!r}; this version of "
            f"constrained_unlearn reads format {FORMAT_VERSION}"
        )
    current = engine._trainer_state()
    _check_same(
        "the number of processes",
        state["world_size"],
        acc.num_processes,
        path,
        "resume with as many processes (the position inside the epoch depends on it)",
    )
    _check_same(
        "gradient_accumulation_steps",
        state["gradient_accumulation_steps"],
        engine.config.gradient_accumulation_steps,
        path,
        "resume with the same EngineConfig.gradient_accumulation_steps",
    )
    for key, value in state["data"].items():
        _check_same(
            f"data.{key}",
            value,
            current["data"].get(key),
            path,
            "resume with the same PairedData (datasets, batch sizes, shuffle and seed)",
        )
    _check_same(
        "the solver",
        state["solver"],
        engine.solver.name,
        path,
        "resume with the same solver",
    )
    dual = _torch_load(path / DUAL_FILE)
    names = engine.problem.constraint_names
    if sorted(dual["constraint_names"]) != sorted(names):
        raise CheckpointError(
            f"cannot resume from {path}: it was written for constraints "
            f"{dual['constraint_names']}, this engine has {names}. Multipliers and dual optimiser "
            "state are matched by name; build the engine with the same ConstraintSpec names or "
            "start a fresh run (resume=False)."
        )
    dual_names = [name for name, _ in engine.problem.named_multiplier_parameters()]
    if sorted(dual["dual_param_names"]) != sorted(dual_names):
        raise CheckpointError(
            f"cannot resume from {path}: its dual optimiser covers {dual['dual_param_names']}, "
            f"this engine's covers {dual_names}"
        )
    if (dual["dual_optimizer"] is None) != (engine.dual_optimizer is None):
        raise CheckpointError(
            f"cannot resume from {path}: the dual optimiser is "
            f"{'absent' if dual['dual_optimizer'] is None else 'present'} in the checkpoint but "
            f"{'absent' if engine.dual_optimizer is None else 'present'} here; use the same solver"
        )
    dual_state = None
    if dual["dual_optimizer"] is not None:
        dual_state = _reorder_dual_state(
            dual["dual_optimizer"], dual["dual_param_names"], dual_names, path
        )
    primal = _torch_load(path / OPTIMIZER_FILE)
    rng = _torch_load(path / rng_file(acc.process_index))
    tensors, metadata = _read_model_file(path / MODEL_FILE)
    history = [StepRecord(**record) for record in _json_load(path / HISTORY_FILE)]
    if state["total_steps"] != engine.total_steps:
        warnings.warn(
            f"{path} was saved by a run of {state['total_steps']} optimiser steps, this one has "
            f"{engine.total_steps}: the learning-rate schedule continues with the new length",
            CheckpointWarning,
            stacklevel=3,
        )

    # everything read and checked: apply
    _load_model_weights(engine.unwrapped_model, tensors, metadata, path)
    try:
        engine.optimizer.load_state_dict(primal["optimizer"])
    except (ValueError, KeyError) as err:
        raise CheckpointError(
            f"the primal optimiser state in {path} does not fit this optimiser ({err}); build "
            "the same optimiser over the same trainable parameters"
        ) from err
    engine.lr_scheduler.load_state_dict(primal["lr_scheduler"])
    scaler = getattr(acc, "scaler", None)
    if scaler is not None and primal.get("grad_scaler") is not None:
        scaler.load_state_dict(primal["grad_scaler"])
    device = acc.device
    problem_state = {
        "multipliers": dual["problem"]["multipliers"],
        "penalty_coefficients": {
            name: {key: value.to(device) for key, value in entry.items()}
            for name, entry in dual["problem"]["penalty_coefficients"].items()
        },
    }
    engine.problem.load_state_dict(problem_state)
    for name, bound in dual["bounds"].items():
        engine.problem.set_bound(name, bound)
    engine.initial_values = {k: float(v) for k, v in dual["initial_values"].items()}
    if dual_state is not None and engine.dual_optimizer is not None:
        engine.dual_optimizer.load_state_dict(dual_state)
    engine.history.records = history
    engine._load_trainer_state(state)
    engine._pending_rng = rng
    acc.wait_for_everyone()
    return state
