"""Loading a causal LM and its tokenizer from a hub id or a local folder.

Both go through the same ``from_pretrained`` calls: a hub id is just a string (DESIGN.md,
invariant 7). Two checks run first so that failures are immediate and say what to do:

* a string that looks like a filesystem path (absolute, ``./``, ``../``, ``~``, a backslash,
  more than one ``/``, or a trailing ``/``) but does not exist raises ``FileNotFoundError``
  at once, instead of being tried as a hub id;
* with ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set, a hub id whose ``config.json`` is
  not in the local cache raises [`HubUnavailableError`][constrained_unlearn.llm.HubUnavailableError] at once, instead of a slow retry;
* without the offline flag, a short TCP connect to the hub endpoint (``HF_ENDPOINT``, default
  ``https://huggingface.co``; `hub_unreachable`, ``timeout_s`` 3 s, cached for a minute)
  tells whether the hub can be reached. When it cannot, a cached id is loaded from the cache
  (``local_files_only=True``, still through ``from_pretrained``) and an uncached one raises
  [`HubUnavailableError`][constrained_unlearn.llm.HubUnavailableError] in seconds, not after a minute of retries.

Every message is one line naming the id, the local-folder alternative and ``HF_HUB_OFFLINE``.
After loading, [`check_vocabulary`][constrained_unlearn.llm.check_vocabulary] refuses a tokenizer whose ids do not all fit the model's
input embeddings (an id past the table would raise a raw ``IndexError`` mid-run).

Remote code is never executed unless ``trust_remote_code=True`` is passed.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from constrained_unlearn.llm.tokenization import ensure_pad_token

__all__ = [
    "HubUnavailableError",
    "LoraSettings",
    "VocabularyMismatchError",
    "apply_lora",
    "check_source",
    "check_vocabulary",
    "hub_endpoint",
    "hub_unreachable",
    "load_model_and_tokenizer",
    "looks_like_path",
    "resolve_dtype",
]


class HubUnavailableError(FileNotFoundError):
    """A hub id that cannot be fetched (offline, or the hub unreachable) and is not cached."""


class VocabularyMismatchError(ValueError):
    """The tokenizer has ids the model's input embeddings do not cover."""


_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters (Hu et al. 2021) on top of a frozen base model, via ``peft``.

    A weight ``W`` becomes ``W + (alpha / r) · B A`` with ``A ∈ R^{r×d_in}``, ``B ∈ R^{d_out×r}``;
    only ``A`` and ``B`` are trained.

    Attributes:
        r: adapter rank.
        alpha: scaling numerator (``alpha / r`` multiplies the update).
        dropout: dropout on the adapter input.
        target_modules: module names to adapt, or ``"all-linear"``.
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | str = "all-linear"

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"LoraSettings.r must be a positive rank, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoraSettings.dropout must be in [0, 1), got {self.dropout}")


def resolve_dtype(dtype: str | torch.dtype) -> str | torch.dtype:
    """``"auto"`` stays ``"auto"`` (the checkpoint's dtype); names map to ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return "auto"
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(
            f"dtype={dtype!r} is not understood; use 'auto' or one of {sorted(_DTYPES)}"
        )
    return _DTYPES[key]


def _offline() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any(f is not None and f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def hub_endpoint() -> str:
    """The hub's base URL: ``$HF_ENDPOINT`` or ``https://huggingface.co``."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


_PROBES: dict[str, tuple[float, str | None]] = {}
_PROBE_TTL_S = 60.0


def hub_unreachable(timeout_s: float = 3.0) -> str | None:
    """Why the hub endpoint cannot be reached (``None`` when a TCP connection opens).

    A connect probe only (no request, no credentials): cheap, and fast to fail. The answer is
    cached for a minute per endpoint. With an HTTPS proxy configured the probe is skipped
    (``None``): the proxy decides what can be reached.
    """
    endpoint = hub_endpoint()
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    now = time.monotonic()
    cached = _PROBES.get(endpoint)
    if cached is not None and now - cached[0] < _PROBE_TTL_S:
        return cached[1]
    parsed = urllib.parse.urlparse(endpoint)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    reason: str | None = None
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        reason = f"{endpoint} cannot be reached ({err.strerror or type(err).__name__})"
    _PROBES[endpoint] = (now, reason)
    return reason


def looks_like_path(name_or_path: str) -> bool:
    """Whether a string is meant as a filesystem path rather than an ``org/name`` hub id."""
    s = str(name_or_path)
    return (
        os.path.isabs(s)
        or s.startswith((".", "~"))
        or "\\" in s
        or s.endswith("/")
        or s.count("/") > 1
    )


def check_source(name_or_path: str | os.PathLike[str]) -> str:
    """Fail fast on a missing local folder or, offline, an uncached hub id.

    Returns:
        The string to hand to ``from_pretrained`` (``~`` expanded for paths).

    Raises:
        FileNotFoundError: a path that does not exist or has no ``config.json``.
        HubUnavailableError: a hub id absent from the local cache while offline or while the
            hub cannot be reached (found in seconds by `hub_unreachable`).
    """
    s = os.fspath(name_or_path)
    path = Path(s).expanduser()
    if isinstance(name_or_path, os.PathLike) or looks_like_path(s) or path.exists():
        if not path.exists():
            raise FileNotFoundError(
                f"model folder {str(path)!r} does not exist; pass an existing folder written by "
                "save_pretrained, or a hub id such as 'org/model'"
            )
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{str(path)!r} is not a model folder (no config.json); pass the folder that "
                "save_pretrained wrote"
            )
        return str(path)
    _hub_mode(s)
    return s


def _is_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def _hub_mode(name: str) -> bool:
    """``local_files_only`` for a hub id: ``True`` when offline or the hub is unreachable and the
    id is cached; raises [`HubUnavailableError`][constrained_unlearn.llm.HubUnavailableError] when it is not cached."""
    if _offline():
        if not _is_cached(name):
            raise HubUnavailableError(
                f"{name!r} is not a local folder and is not in the Hugging Face cache, and "
                "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set; pass a local folder "
                "(model.name_or_path=/path/to/model), download it once with network access, "
                "or unset the offline flag"
            )
        return True
    reason = hub_unreachable()
    if reason is None:
        return False
    if _is_cached(name):
        return True
    raise HubUnavailableError(
        f"{name!r} is not a local folder and is not in the Hugging Face cache, and {reason}; "
        "pass a local folder (model.name_or_path=/path/to/model), download it once where the "
        "hub can be reached, or set HF_HUB_OFFLINE=1 to use only the cache"
    )


def check_vocabulary(model: Any, tokenizer: Any) -> None:
    """Refuse a tokenizer with more ids than the model's input embedding table has rows.

    Raises:
        VocabularyMismatchError: ``len(tokenizer) > num_embeddings`` (the message gives both and
            the fix: the model's own tokenizer, or ``model.resize_token_embeddings``).
    """
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is None:
        weight = getattr(embeddings, "weight", None)
        rows = int(weight.shape[0]) if weight is not None else None
    if rows is None:
        return
    size = len(tokenizer)
    if size > rows:
        raise VocabularyMismatchError(
            f"the tokenizer has {size} ids but the model's input embeddings have {rows} rows: "
            f"ids {rows}..{size - 1} would index past the table. Use the tokenizer saved with "
            "the model, or call model.resize_token_embeddings(len(tokenizer)) and save the model"
        )


def apply_lora(model: torch.nn.Module, lora: LoraSettings) -> torch.nn.Module:
    """Wrap ``model`` in ``peft`` LoRA adapters (only adapter weights stay trainable)."""
    try:
        import peft
    except ImportError as exc:
        raise ImportError(
            "LoRA needs the optional dependency 'peft': pip install constrained-unlearn[lora]"
        ) from exc
    target = lora.target_modules
    config = peft.LoraConfig(
        task_type="CAUSAL_LM",
        r=lora.r,
        lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft uses it as a float (α / r)
        lora_dropout=lora.dropout,
        target_modules=target if isinstance(target, str) else list(target),
    )
    return peft.get_peft_model(model, config)


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    lora: LoraSettings | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for causal-LM unlearning.

    Args:
        name_or_path: a hub id (``"org/model"``) or a local folder written by
            ``save_pretrained``; the same code path loads both.
        dtype: ``"auto"`` (the checkpoint's dtype), ``"float32"``, ``"bfloat16"``,
            ``"float16"`` (or short forms ``fp32``, ``bf16``, ``fp16``) or a ``torch.dtype``.
        device: where to move the model (``None`` leaves it on CPU).
        trust_remote_code: run modelling code shipped with the checkpoint; off by default.
        lora: wrap the model in LoRA adapters (needs ``peft``).

    Returns:
        The model (in eval mode, as ``from_pretrained`` returns it) and its tokenizer. If the
        tokenizer had no pad token it now uses EOS ([`ensure_pad_token`][constrained_unlearn.llm.ensure_pad_token]); masks in this
        library come from lengths, so that is safe. The model's generation config gets the pad
        id if it had none.
    """
    source = check_source(name_or_path)  # before importing transformers: fails in milliseconds
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = resolve_dtype(dtype)
    hub_kwargs: dict[str, Any] = {}
    if not Path(source).is_dir() and _hub_mode(source):
        hub_kwargs["local_files_only"] = True  # same from_pretrained path, no network retries
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, **hub_kwargs
        )
        ensure_pad_token(tokenizer)
        model: Any = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=trust_remote_code, **hub_kwargs
        )
    except OSError as err:
        if isinstance(err, FileNotFoundError) and str(source) in str(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubUnavailableError(
            f"could not load the model {str(source)!r}: {first} — check the id (org/name) or "
            "pass a local folder written by save_pretrained; HF_HUB_OFFLINE=1 uses only the cache"
        ) from err
    check_vocabulary(model, tokenizer)
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model = model.to(device)
    if lora is not None:
        model = apply_lora(model, lora)
    return model, tokenizer
