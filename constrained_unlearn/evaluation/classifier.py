"""Class probabilities of a text classifier over many texts (e.g. a gibberish detector).

open-unlearning's optional ``forget_Q_A_gibberish`` metric is the mean probability of class 0
("clean") that ``madhurjindal/autonlp-Gibberish-Detector-492513457`` gives the forget-set
generations. This helper computes, for any Hugging Face sequence classifier,

    p_c(x) = softmax(f(x))[c]          per text x, class c

in batches, right-padded with the attention mask built from lengths (never from pad ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from constrained_unlearn.llm.collate import pad_collate


def classifier_probabilities(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    class_index: int = 0,
    batch_size: int = 32,
    max_length: int = 512,
) -> np.ndarray:
    """``[N]`` float64 probabilities of class ``class_index`` for each text.

    Args:
        model: a sequence classifier returning ``.logits`` ``[B, C]``.
        tokenizer: its tokenizer (special tokens added as the classifier expects).
        texts: the texts; an empty string is classified as what the tokenizer makes of it
            (usually only special tokens).
        class_index: which class's probability to return.
        batch_size: texts per forward pass.
        max_length: texts are cut to this many tokens (right truncation).

    The model runs in eval mode under ``torch.no_grad``; its previous mode is restored.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be ≥ 1")
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single str")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the classifier's tokenizer has no pad or EOS token; set pad_token")
    encoded = []
    for i, text in enumerate(texts):
        ids = list(tokenizer(text, truncation=True, max_length=max_length)["input_ids"])
        if not ids:
            raise ValueError(
                f"texts[{i}] tokenises to nothing and this tokenizer adds no special token; "
                "the classifier cannot score it"
            )
        encoded.append(ids)
    device = next(model.parameters()).device
    out = np.empty(len(texts), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(encoded), batch_size):
                chunk = encoded[start : start + batch_size]
                batch = pad_collate([{"input_ids": ids} for ids in chunk], pad, side="right")
                logits = model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                ).logits
                if logits.dim() != 2:
                    raise ValueError(
                        f"the classifier returned logits of shape {tuple(logits.shape)}; "
                        "expected [B, C] (a sequence-classification head)"
                    )
                if not 0 <= class_index < logits.shape[-1]:
                    raise ValueError(
                        f"class_index={class_index} but the classifier has "
                        f"{logits.shape[-1]} classes"
                    )
                probs = torch.softmax(logits.float(), dim=-1)[:, class_index]
                out[start : start + len(chunk)] = probs.double().cpu().numpy()
    finally:
        model.train(was_training)
    return out


__all__ = ["classifier_probabilities"]
