"""Batching variable-length token sequences.

The attention mask is built from each sequence's **length**, never from
``input_ids != pad_token_id``: EOS is often reused as the pad token and is also a real token
(the supervised end of every answer, chat turn separators), so an id comparison would silently
mask it (DESIGN.md, invariant 4; metrics.md §8, "EOS-as-pad mask").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch.utils.data import default_collate

from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = ["PadCollator", "pad_collate"]

_SEQUENCE_KEYS = ("input_ids", "labels")


def _as_long(x: Any, key: str, i: int) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.long)
    if t.dim() != 1:
        raise ValueError(f"examples[{i}][{key!r}] must be 1-D, got shape {tuple(t.shape)}")
    return t


def pad_collate(
    examples: Sequence[dict[str, Any]],
    pad_token_id: int,
    side: Literal["right", "left"] = "right",
) -> dict[str, torch.Tensor]:
    """Pad a list of examples into one batch.

    Args:
        examples: dicts with ``"input_ids"`` (1-D ids, list or tensor of length ``T_b``) and
            optionally ``"labels"`` (same length, ``-100`` where unsupervised). Other keys are
            collated with ``torch.utils.data.default_collate``.
        pad_token_id: id written into padded ``input_ids`` positions (its value never affects
            the masks).
        side: ``"right"`` for teacher-forced training and scoring, ``"left"`` for generation.

    Returns:
        ``input_ids`` ``[B, T]`` long, ``attention_mask`` ``[B, T]`` long with ones on the
        ``T_b`` real positions of row ``b``, and ``labels`` ``[B, T]`` padded with ``-100``
        (if given); ``T = max_b T_b``.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if len(examples) == 0:
        raise ValueError("pad_collate got an empty list of examples")
    if pad_token_id is None:
        raise ValueError(
            "pad_token_id is None: call ensure_pad_token(tokenizer) and pass tokenizer.pad_token_id"
        )
    has_labels = "labels" in examples[0]
    ids = []
    labels = []
    for i, ex in enumerate(examples):
        if "input_ids" not in ex:
            raise KeyError(f"examples[{i}] has no 'input_ids'; keys: {sorted(ex)}")
        if ("labels" in ex) != has_labels:
            raise KeyError("either every example or none must have 'labels'")
        ids.append(_as_long(ex["input_ids"], "input_ids", i))
        if has_labels:
            lab = _as_long(ex["labels"], "labels", i)
            if lab.shape != ids[-1].shape:
                raise ValueError(
                    f"examples[{i}]: labels length {lab.numel()} != input_ids length "
                    f"{ids[-1].numel()}"
                )
            labels.append(lab)

    lengths = torch.tensor([t.numel() for t in ids], dtype=torch.long)
    batch_size, width = len(ids), int(lengths.max())
    input_ids = torch.full((batch_size, width), int(pad_token_id), dtype=torch.long)
    out_labels = torch.full((batch_size, width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.arange(width).unsqueeze(0)
    if side == "right":
        attention_mask = positions < lengths.unsqueeze(1)
    else:
        attention_mask = positions >= (width - lengths).unsqueeze(1)
    for b in range(batch_size):
        n = int(lengths[b])
        sl = slice(0, n) if side == "right" else slice(width - n, width)
        input_ids[b, sl] = ids[b]
        if has_labels:
            out_labels[b, sl] = labels[b]

    batch: dict[str, torch.Tensor] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask.long(),
    }
    if has_labels:
        batch["labels"] = out_labels
    rest = [{k: v for k, v in ex.items() if k not in _SEQUENCE_KEYS} for ex in examples]
    if rest[0]:
        batch.update(default_collate(rest))
    return batch


class PadCollator:
    """Picklable ``collate_fn`` for a ``DataLoader``: ``PadCollator(tokenizer.pad_token_id)``."""

    def __init__(self, pad_token_id: int, side: Literal["right", "left"] = "right") -> None:
        self.pad_token_id = pad_token_id
        self.side = side

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return pad_collate(examples, self.pad_token_id, self.side)
