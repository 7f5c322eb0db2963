"""Loading a causal LM and its tokenizer from a hub id or a local folder.

Both go through the same ``from_pretrained`` calls: a hub id is just a string (DESIGN.md,
invariant 7). Two checks run first so that failures are immediate and say what to do:

* a string that looks like a filesystem path (absolute, ``./``, ``../``, ``~``, a backslash,
  more than one ``/``, or a trailing ``/``) but does not exist raises ``FileNotFoundError``
  at once, instead of being tried as a hub id;
* with ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set, a hub id whose ``config.json`` is
  not in the local cache raises ``FileNotFoundError`` at once, instead of a slow retry.

Remote code is never executed unless ``trust_remote_code=True`` is passed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from constrained_unlearn.llm.tokenization import ensure_pad_token

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
        FileNotFoundError: a path that does not exist or has no ``config.json``; or, offline,
            a hub id absent from the local cache.
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
    if _offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(s, "config.json")
        if not isinstance(cached, str):
            raise FileNotFoundError(
                f"{s!r} is not a local folder and is not in the Hugging Face cache, and "
                "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set; download it first with network "
                "access, unset the offline flag, or pass a local folder"
            )
    return s


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
        tokenizer had no pad token it now uses EOS (:func:`ensure_pad_token`); masks in this
        library come from lengths, so that is safe. The model's generation config gets the pad
        id if it had none.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = check_source(name_or_path)
    torch_dtype = resolve_dtype(dtype)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    ensure_pad_token(tokenizer)
    model: Any = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch_dtype, trust_remote_code=trust_remote_code
    )
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model = model.to(device)
    if lora is not None:
        model = apply_lora(model, lora)
    return model, tokenizer
