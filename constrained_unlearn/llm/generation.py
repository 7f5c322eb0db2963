"""Batched greedy generation for evaluation.

Prompts are tokenised exactly as [`encode_qa`][constrained_unlearn.llm.encode_qa]
tokenises them (so the model continues the ids it was trained and scored on), left-padded with
masks from lengths ([`pad_collate`][constrained_unlearn.llm.pad_collate]), and decoded greedily
with the KV cache. Prompts are sorted by length inside the call to reduce padding; results come
back in the input order.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.tokenization import encode_prompts

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "context_length",
    "cut_at_stop_strings",
    "default_max_new_tokens",
    "generate_batched",
]


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if config_eos is not None:
        for i in [config_eos] if isinstance(config_eos, int) else config_eos:
            if int(i) not in ids:
                ids.append(int(i))
    return ids


DEFAULT_MAX_NEW_TOKENS = 200
"""TOFU's generation budget (open-unlearning's ``max_new_tokens``)."""


def context_length(model: Any) -> int | None:
    """The model's maximum sequence length (``config.max_position_embeddings`` or the like),
    ``None`` when its config does not say."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def default_max_new_tokens(
    model: Any, prompt_length: int, *, cap: int = DEFAULT_MAX_NEW_TOKENS
) -> int:
    """The budget that fits the context: ``min(cap, context − prompt_length)``, at least 1.

    ``cap`` (200) when the model's config gives no context length. A mini-TOFU model with a
    128-token context and a 20-token prompt gets 108, instead of generation running past
    the positions the model knows (and transformers warning that 200 exceeds 128).
    """
    context = context_length(model)
    if context is None:
        return cap
    return max(1, min(cap, context - prompt_length))


def cut_at_stop_strings(text: str, stop_strings: Iterable[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop string."""
    end = len(text)
    for stop in stop_strings:
        if stop:
            at = text.find(stop)
            if at != -1:
                end = min(end, at)
    return text[:end]


def generate_batched(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int | None = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 32,
    stop_strings: Sequence[str] = (),
    progress: bool = False,
    add_special_tokens: bool = True,
) -> list[str]:
    """Greedy continuations of formatted prompts.

    Args:
        model: a Hugging Face causal LM.
        tokenizer: its tokenizer (needs a pad token: see
            [`ensure_pad_token`][constrained_unlearn.llm.ensure_pad_token]).
        prompts: formatted prompt strings (e.g. ``PromptTemplate.format_prompt``).
        max_new_tokens: generation budget per prompt; ``None``: what fits the model's
            context after the longest prompt (`default_max_new_tokens`).
        batch_size: prompts per forward batch.
        stop_strings: the text is cut before the first occurrence of any of them (generation
            also stops early on them).
        progress: show a tqdm bar over batches (only when stderr is a terminal).
        add_special_tokens: add the tokenizer's BOS (plain prompts); pass ``False`` for chat
            templates, whose text already contains it (``PromptTemplate.adds_special_tokens``).

    Returns:
        One string per prompt: only the new tokens, cut at the first EOS (any of the tokenizer's
        and the generation config's EOS ids) and at stop strings, decoded with special tokens
        skipped.

    The model runs in eval mode under ``torch.no_grad`` and ``tokenizer.padding_side`` is set to
    ``"left"``; both are restored afterwards, also on error.
    """
    from transformers import GenerationConfig

    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be ≥ 1 (or None), got {max_new_tokens}")
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, got a single str")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; call ensure_pad_token(tokenizer) first")
    if len(prompts) == 0:
        return []

    encoded = encode_prompts(tokenizer, prompts, add_special_tokens=add_special_tokens)
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(model, max(len(e) for e in encoded))
    eos_ids = _eos_ids(model, tokenizer)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos_ids or None,
        stop_strings=list(stop_strings) or None,
    )
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
    results: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device

    starts = range(0, len(order), batch_size)
    if progress and len(starts) > 1 and _stderr_is_tty():
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generate", unit="batch", leave=False)

    was_training = model.training
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    model.eval()
    try:
        with torch.no_grad():
            for start in starts:
                idx = order[start : start + batch_size]
                batch = pad_collate(
                    [{"input_ids": encoded[i]} for i in idx], tokenizer.pad_token_id, side="left"
                )
                out = model.generate(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    generation_config=config,
                    tokenizer=tokenizer if stop_strings else None,
                )
                new = out[:, batch["input_ids"].shape[1] :].tolist()
                for i, ids in zip(idx, new):
                    for k, tok in enumerate(ids):
                        if tok in eos_ids:
                            ids = ids[:k]
                            break
                    text = tokenizer.decode(ids, skip_special_tokens=True)
                    results[i] = cut_at_stop_strings(text, stop_strings)
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    return results
