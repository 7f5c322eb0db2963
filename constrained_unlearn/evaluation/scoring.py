"""Teacher-forced scoring of many (prompt, answer) sequences in a few batched forward passes.

One sequence is ``prompt ids + target ids`` (for QA: the answer ids and EOS, as
[`encode_qa`][constrained_unlearn.llm.encode_qa] builds them). Sequences are sorted by
length, cut into batches of ``batch_size``, right-padded with masks from lengths
([`pad_collate`][constrained_unlearn.llm.pad_collate]), run once through the model, and the
per-token statistics of the target positions (next-token aligned, DESIGN.md invariants 4-5)

    log p(y_t),  μ_t = Σ_v p_t(v) log p_t(v),  σ_t,  correct_t = 1[argmax_v z_t(v) = y_t]

come back in input order as a [`TokenStats`][constrained_unlearn.evaluation.metrics.TokenStats]
(one ``[T_b]`` tensor per sequence, ``T_b`` = number of target tokens, EOS included for QA).

A *question set* (TOFU's ``forget10_perturbed``: ``answer``, ``paraphrased_answer`` and a list
of ``perturbed_answer`` per question) is flattened into one list of sequences, scored in one
call, and regrouped per column and per question (`score_question_set`). Padding never
changes a score: a causal model with right padding and a length mask computes the real
positions exactly as for the sequence alone (tested to 1e-5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from constrained_unlearn.evaluation.metrics import TokenStats, gradnorm_scores
from constrained_unlearn.evaluation.metrics.token_stats import row_statistics, token_statistics
from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.head import answer_hidden, head_inputs
from constrained_unlearn.llm.tokenization import (
    PromptTemplate,
    Tokenization,
    encode_qa_pairs,
)
from constrained_unlearn.losses.masking import IGNORE_INDEX, next_token_alignment


@dataclass(frozen=True)
class ScoredSequence:
    """One sequence to score: ``input_ids = prompt ids + target ids``.

    Attributes:
        input_ids: ``[T]`` token ids.
        prompt_length: number of leading ids that are context only (≥ 1: the first token has
            no position predicting it). Positions ``prompt_length .. T-1`` are scored.
    """

    input_ids: list[int]
    prompt_length: int

    def __post_init__(self) -> None:
        if self.prompt_length < 1:
            raise ValueError(
                f"prompt_length={self.prompt_length}: at least one context token is needed "
                "(the first token of a sequence is never predicted)"
            )
        if self.prompt_length >= len(self.input_ids):
            raise ValueError(
                f"prompt_length={self.prompt_length} leaves no target token in a sequence of "
                f"{len(self.input_ids)} ids; the target (answer) is empty"
            )

    @property
    def target_ids(self) -> list[int]:
        """The scored ids ``input_ids[prompt_length:]``."""
        return self.input_ids[self.prompt_length :]


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _batches(sequences: Sequence[ScoredSequence], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first)."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be ≥ 1")
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].input_ids), reverse=True)
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def _collate(sequences: Sequence[ScoredSequence], idx: Sequence[int], pad_id: int) -> dict:
    examples = []
    for i in idx:
        seq = sequences[i]
        labels = [IGNORE_INDEX] * seq.prompt_length + seq.target_ids
        examples.append({"input_ids": seq.input_ids, "labels": labels})
    return pad_collate(examples, pad_id, side="right")


def _row_stats(model: Any, batch: Mapping[str, torch.Tensor], *, check: bool) -> TokenStats:
    """`token_statistics` of ``batch`` with the LM head applied to its target rows only
    ([`head_inputs`][constrained_unlearn.llm.head.head_inputs]: exact or a ``ValueError``)."""
    hidden, weight, bias = head_inputs(model, batch, check=check)
    rows, targets, sizes = answer_hidden(hidden, batch["labels"])
    return row_statistics(torch.nn.functional.linear(rows, weight, bias), targets, sizes)


def score_sequences(
    model: Any,
    sequences: Sequence[ScoredSequence],
    *,
    batch_size: int = 32,
    pad_token_id: int = 0,
) -> TokenStats:
    """Token statistics of the target positions of every sequence, in input order.

    Args:
        model: a causal LM returning ``.logits`` of shape ``[B, T, V]``. Its LM head is run
            on the N target positions only (``[N, V]`` logits: the memory of a 128k vocabulary
            stays proportional to the answers) when that is exact, checked on the first
            batch; else (soft-capping, logit scales …) on every position.
        sequences: the sequences (any lengths).
        batch_size: sequences per forward pass.
        pad_token_id: id written into padding (it never affects a score: masks come from
            lengths).

    Returns:
        [`TokenStats`][constrained_unlearn.evaluation.metrics.TokenStats] with one entry per sequence; entry ``b`` has
        ``len(sequences[b].target_ids)`` positions.

    The model runs in eval mode under ``torch.no_grad``; its previous mode is restored.
    """
    n = len(sequences)
    out_lp: list[torch.Tensor | None] = [None] * n
    out_mu: list[torch.Tensor | None] = [None] * n
    out_sigma: list[torch.Tensor | None] = [None] * n
    out_correct: list[torch.Tensor | None] = [None] * n
    if n == 0:
        return TokenStats(log_probs=[], mu=[], sigma=[], correct=[])
    device = _model_device(model)
    was_training = model.training
    model.eval()
    rows_ok, rows_checked = True, False
    try:
        with torch.no_grad():
            for idx in _batches(sequences, batch_size):
                batch = _collate(sequences, idx, pad_token_id)
                batch = {k: v.to(device) for k, v in batch.items()}
                stats = None
                if rows_ok:
                    try:  # the LM head on the target positions only: [N, V], never [B, T, V]
                        stats = _row_stats(model, batch, check=not rows_checked)
                        rows_checked = True
                    except ValueError:  # the model changes its logits after the head
                        rows_ok = False
                if stats is None:
                    logits = model(
                        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                    ).logits
                    stats = token_statistics(*next_token_alignment(logits, batch["labels"]))
                for j, i in enumerate(idx):
                    out_lp[i] = stats.log_probs[j]
                    out_mu[i] = stats.mu[j]
                    out_sigma[i] = stats.sigma[j]
                    out_correct[i] = stats.correct[j]
    finally:
        model.train(was_training)
    return TokenStats(log_probs=out_lp, mu=out_mu, sigma=out_sigma, correct=out_correct)  # type: ignore[arg-type]


def per_example_gradnorm(
    model: Any,
    sequences: Sequence[ScoredSequence],
    *,
    batch_size: int = 8,
    pad_token_id: int = 0,
    p: float = 2.0,
    drop_last: bool = True,
) -> np.ndarray:
    """GradNorm MIA scores ``(1/|P|) Σ_W ‖∇_W ℓ̄'(x)‖_p`` of every sequence, in input order.

    ``ℓ̄'(x)`` is the mean NLL over the target tokens without the final one (``drop_last``,
    T' = T − 1, as open-unlearning) or over all of them. One backward pass per sequence
    ([`gradnorm_scores`][constrained_unlearn.evaluation.metrics.gradnorm_scores], which restores the
    model's mode and clears its gradients).

    Returns:
        ``[N]`` float64.
    """
    device = _model_device(model)
    scores = np.empty(len(sequences), dtype=np.float64)
    for idx in _batches(sequences, batch_size):
        batch = _collate(sequences, idx, pad_token_id)
        labels = batch["labels"]
        if drop_last:
            lengths = batch["attention_mask"].sum(dim=1)
            rows = torch.arange(labels.shape[0])
            labels = labels.clone()
            labels[rows, lengths - 1] = IGNORE_INDEX
        for j, i in enumerate(idx):
            if int((labels[j] != IGNORE_INDEX).sum()) == 0:
                raise ValueError(
                    f"sequence {i} has a single target token: with the final token dropped "
                    "nothing is left to take a gradient of"
                )

        def loss_fn(m: Any, batch: dict = batch, labels: torch.Tensor = labels) -> torch.Tensor:
            logits = m(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            ).logits
            aligned, targets, mask = next_token_alignment(logits, labels.to(device))
            log_p = torch.log_softmax(aligned.float(), dim=-1)
            token_lp = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            return -(token_lp * mask).sum(dim=1) / mask.sum(dim=1)

        batch_scores = gradnorm_scores(model, loss_fn, p=p)
        for j, i in enumerate(idx):
            scores[i] = batch_scores[j]
    return scores


def encode_pair(
    tokenizer: Any,
    question: str,
    answer: str,
    *,
    template: PromptTemplate,
    max_length: int,
    tokenization: Tokenization = "separate",
) -> ScoredSequence:
    """A QA pair as a `ScoredSequence` (EOS appended and scored): prompt and answer
    tokenised separately, or as one string with the prompt's length masked (``"joint"``, as
    open-unlearning); see [`encode_qa`][constrained_unlearn.llm.encode_qa]. `encode_pairs`
    encodes many at once."""
    return encode_pairs(
        tokenizer,
        [(question, answer)],
        template=template,
        max_length=max_length,
        tokenization=tokenization,
    )[0]


def encode_pairs(
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    template: PromptTemplate,
    max_length: int,
    tokenization: Tokenization = "separate",
) -> list[ScoredSequence]:
    """`encode_pair` of every ``(question, answer)`` pair, the tokenizer called once per kind
    of text ([`encode_qa_pairs`][constrained_unlearn.llm.encode_qa_pairs])."""
    encoded = encode_qa_pairs(
        tokenizer, pairs, template=template, max_length=max_length, tokenization=tokenization
    )
    return [ScoredSequence(input_ids=e.input_ids, prompt_length=e.prompt_length) for e in encoded]


def encode_text(
    tokenizer: Any,
    text: str,
    *,
    prefix: str = "",
    insert_space: bool = False,
    max_target_tokens: int | None = None,
    tokenization: Tokenization = "joint",
) -> ScoredSequence:
    """A text continuation as open-unlearning's pretraining instances encode it.

    ``"joint"`` (default, open-unlearning's): ``ids = tokenizer(prefix + (" " if insert_space
    else "") + text)`` with special tokens (BOS), the first ``len(tokenizer(prefix))`` ids are
    context (at least one), the rest is scored. ``"separate"``: ``tokenizer(prefix)`` followed
    by the continuation tokenised alone, so every continuation token is scored. The scored part
    is cut to ``max_target_tokens`` (``None``: whole text). No EOS is appended. Used for MUSE's
    privleak documents (empty prefix) and VerbMem prompts/continuations.

    Raises:
        ValueError: if nothing is left to score (empty text).
    """
    continuation = (" " if insert_space else "") + text
    prefix_ids = list(tokenizer(prefix)["input_ids"])
    if tokenization == "separate" and prefix:
        full = prefix_ids + list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    else:
        full = list(tokenizer(prefix + continuation)["input_ids"])
    prefix_len = max(1, len(prefix_ids))
    if max_target_tokens is not None:
        full = full[: prefix_len + max_target_tokens]
    if len(full) <= prefix_len:
        raise ValueError(
            f"text {text[:60]!r} has no token after its prefix; drop empty rows before scoring"
        )
    return ScoredSequence(input_ids=full, prompt_length=prefix_len)


@dataclass(frozen=True)
class ColumnScores:
    """Scores of one answer column of a question set, flat and regroupable.

    Attributes:
        column: the column name (e.g. ``"perturbed_answer"``).
        stats: flat [`TokenStats`][constrained_unlearn.evaluation.metrics.TokenStats], one entry per scored answer.
        offsets: ``[N + 1]``; question ``i`` owns flat entries ``offsets[i]:offsets[i+1]``
            (exactly one for a string column, one per list item for a list column).
        is_list: whether the column holds a list of answers per question.
        target_ids: the scored ids of each flat entry (answer ids and EOS).
    """

    column: str
    stats: TokenStats
    offsets: list[int]
    is_list: bool
    target_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> TokenStats:
        """The statistics of question ``i``'s answers."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        s = self.stats
        return TokenStats(s.log_probs[lo:hi], s.mu[lo:hi], s.sigma[lo:hi], s.correct[lo:hi])

    def mean_nll(self) -> np.ndarray:
        """``[N]`` mean NLL ℓ̄ (EOS included) of a string column's answers."""
        if self.is_list:
            raise ValueError(
                f"column {self.column!r} holds lists; use grouped_mean_nll() for one array "
                "per question"
            )
        return self.stats.mean_nll()

    def grouped_mean_nll(self) -> list[np.ndarray]:
        """One ``[n_i]`` array of mean NLLs per question (``n_i = 1`` for a string column)."""
        flat = self.stats.mean_nll()
        return [flat[self.offsets[i] : self.offsets[i + 1]] for i in range(len(self))]


def _answers_of(row: Mapping[str, Any], column: str, index: int) -> tuple[list[str], bool]:
    if column not in row:
        raise KeyError(
            f"row {index} has no column {column!r}; available: {sorted(row)}. Check the "
            "split (the *_perturbed configs carry paraphrased/perturbed answers)"
        )
    value = row[column]
    if isinstance(value, str):
        return [value], False
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        if len(value) == 0:
            raise ValueError(f"row {index}: column {column!r} is an empty list")
        return list(value), True
    raise TypeError(
        f"row {index}: column {column!r} must be a string or a list of strings, "
        f"got {type(value).__name__}"
    )


def score_question_set(
    model: Any,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    question_key: str = "question",
    template: PromptTemplate | None = None,
    batch_size: int = 32,
    max_length: int = 512,
    tokenization: Tokenization = "separate",
) -> dict[str, ColumnScores]:
    """Score every answer of every column of a question set in one batched pass.

    All ``(question, answer)`` pairs of all requested columns (a list column contributes one
    pair per item, any count per row) are encoded by one `encode_pairs` call, scored by one
    `score_sequences` call, and regrouped.

    Args:
        model, tokenizer: the evaluated causal LM and its tokenizer.
        rows: the questions (dicts with ``question_key`` and the columns).
        columns: answer columns, e.g. ``("answer", "paraphrased_answer", "perturbed_answer")``.
        question_key: the question column (``"paraphrased_question"`` tests rephrasing).
        template: prompt format (plain ``Question: …\\nAnswer: `` by default).
        batch_size: sequences per forward pass.
        max_length: maximum sequence length (the prompt is cut from the left beyond it).
        tokenization: ``"separate"`` (default) or ``"joint"`` (open-unlearning's).

    Returns:
        ``{column: ColumnScores}``.
    """
    template = template if template is not None else PromptTemplate()
    pairs: list[tuple[str, str]] = []
    layout: dict[str, tuple[list[int], bool]] = {}
    for column in columns:
        offsets = [0]
        is_list = False
        for i, row in enumerate(rows):
            if question_key not in row:
                raise KeyError(
                    f"row {i} has no question column {question_key!r}; available: {sorted(row)}"
                )
            answers, row_is_list = _answers_of(row, column, i)
            is_list = is_list or row_is_list
            question = str(row[question_key])
            pairs.extend((question, answer) for answer in answers)
            offsets.append(offsets[-1] + len(answers))
        layout[column] = (offsets, is_list)

    sequences = encode_pairs(
        tokenizer, pairs, template=template, max_length=max_length, tokenization=tokenization
    )
    stats = score_sequences(
        model, sequences, batch_size=batch_size, pad_token_id=_pad_id(tokenizer)
    )
    out: dict[str, ColumnScores] = {}
    start = 0
    for column in columns:
        offsets, is_list = layout[column]
        stop = start + offsets[-1]
        out[column] = ColumnScores(
            column=column,
            stats=TokenStats(
                stats.log_probs[start:stop],
                stats.mu[start:stop],
                stats.sigma[start:stop],
                stats.correct[start:stop],
            ),
            offsets=offsets,
            is_list=is_list,
            target_ids=[s.target_ids for s in sequences[start:stop]],
        )
        start = stop
    return out


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    if pad is None:
        raise ValueError(
            "the tokenizer has neither a pad nor an EOS token; call "
            "constrained_unlearn.llm.ensure_pad_token(tokenizer) first"
        )
    return int(pad)


__all__ = [
    "ColumnScores",
    "ScoredSequence",
    "encode_pair",
    "encode_pairs",
    "encode_text",
    "per_example_gradnorm",
    "score_question_set",
    "score_sequences",
]
