"""Training the mini-MUSE models from scratch: documents and knowledge questions together.

Every epoch is one pass over

* the documents, each one sequence ``[BOS] + doc + [EOS]`` (a
  [`CorpusDataset`][constrained_unlearn.llm.CorpusDataset] with ``pack=False``), every token after
  BOS a target, and
* the knowledge questions, shuffled anew each epoch (``random.Random(seed + epoch)``) and grouped
  into blocks of 1 to ``qa_block_max`` pairs written exactly as KnowMem's few-shot prompt writes
  them::

      [BOS] Question: q_1\\nAnswer: a_1\\n\\n Question: q_2\\nAnswer: a_2\\n\\n …

  where only the answers and the ``"\\n\\n"`` after them are targets. Each question segment
  ``"Question: q\\nAnswer: "`` is tokenised on its own, as is each answer, so an answer starts
  on the same token boundary as after KnowMem's prompt (which ends in ``"Answer: "``), and a
  question is answered from any place in a block (the test prompt holds ``n_icl`` examples
  before it).

Objective: the mean next-token NLL over all targets of a batch (`answer_nll` of
mini-TOFU, which runs the LM head on supervised positions only), AdamW with mini-TOFU's warm-up
+ cosine schedule (`lr_factor`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from constrained_unlearn.benchmarks.minitofu.finetune import (
    FinetuneLog,
    TrainSettings,
    answer_nll,
    make_optimizer,
)
from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.corpus import CorpusDataset, tokenizer_adds_bos
from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = [
    "ANSWER_END",
    "QUESTION_FORMAT",
    "encode_pair",
    "encode_qa_block",
    "length_batches",
    "qa_blocks",
    "qa_pairs_of",
    "train_corpus_model",
]

QUESTION_FORMAT = "Question: {question}\nAnswer: "
"""A question as KnowMem's few-shot prompt writes it (answer and ``"\\n\\n"`` follow)."""
ANSWER_END = "\n\n"


def encode_pair(tokenizer: Any, question: str, answer: str) -> tuple[list[int], list[int]]:
    """``(question segment ids, answer ids + "\\n\\n" ids)`` of one pair (module docstring)."""
    q = tokenizer(QUESTION_FORMAT.format(question=question), add_special_tokens=False)
    a = tokenizer(answer + ANSWER_END, add_special_tokens=False)
    return list(q["input_ids"]), list(a["input_ids"])


def encode_qa_block(
    encoded_pairs: Sequence[tuple[list[int], list[int]]], *, bos_token_id: int | None
) -> dict[str, torch.Tensor]:
    """One block of encoded pairs (`encode_pair`) in KnowMem's format.

    Returns:
        ``{"input_ids": [T], "labels": [T]}`` with targets on the answer and ``"\\n\\n"``
        tokens only.
    """
    if not encoded_pairs:
        raise ValueError("a question-answer block needs at least one pair")
    ids: list[int] = [bos_token_id] if bos_token_id is not None else []
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    for q, a in encoded_pairs:
        ids += q + a
        labels += [IGNORE_INDEX] * len(q) + a
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def qa_blocks(
    encoded_pairs: Sequence[tuple[list[int], list[int]]],
    *,
    block_max: int,
    max_length: int,
    rng: random.Random,
    bos_token_id: int | None,
) -> list[dict[str, torch.Tensor]]:
    """The pairs shuffled and grouped into blocks of 1..``block_max`` pairs (the size drawn
    uniformly, a block closed early when the next pair would pass ``max_length`` tokens).

    Raises:
        ValueError: when a single pair does not fit ``max_length``.
    """
    order = list(range(len(encoded_pairs)))
    rng.shuffle(order)
    start = 1 if bos_token_id is not None else 0
    blocks = []
    i = 0
    while i < len(order):
        k = rng.randint(1, block_max)
        chosen: list[tuple[list[int], list[int]]] = []
        length = start
        while i < len(order) and len(chosen) < k:
            q, a = encoded_pairs[order[i]]
            if length + len(q) + len(a) > max_length:
                if not chosen:
                    raise ValueError(
                        f"a question-answer pair has {len(q) + len(a)} tokens and does not fit "
                        f"max_length={max_length}"
                    )
                break
            chosen.append((q, a))
            length += len(q) + len(a)
            i += 1
        blocks.append(encode_qa_block(chosen, bos_token_id=bos_token_id))
    return blocks


def length_batches(
    items: Sequence[dict[str, torch.Tensor]], batch_size: int, rng: random.Random
) -> list[list[dict[str, torch.Tensor]]]:
    """Batches of sequences of similar length, in random order.

    The items are shuffled, stably sorted by length (so equal lengths stay in random order),
    cut into batches of ``batch_size`` and the batches shuffled: little padding, and a fresh
    grouping every epoch.
    """
    order = list(range(len(items)))
    rng.shuffle(order)
    order.sort(key=lambda i: items[i]["input_ids"].numel())
    batches = [
        [items[i] for i in order[start : start + batch_size]]
        for start in range(0, len(order), batch_size)
    ]
    rng.shuffle(batches)
    return batches


def train_corpus_model(
    model: Any,
    documents: Sequence[str],
    qa_pairs: Sequence[tuple[str, str]],
    tokenizer: Any,
    settings: TrainSettings,
    *,
    max_length: int,
    qa_block_max: int = 11,
    seed: int = 0,
    progress: bool = True,
    desc: str = "mini-MUSE model",
) -> FinetuneLog:
    """Train ``model`` in place on documents and question blocks (module docstring).

    Args:
        model: a ``LlamaForCausalLM`` (``.model`` and ``.lm_head``).
        documents: the corpus (each document one sequence; longer ones are cut at
            ``max_length``).
        qa_pairs: ``(question, answer)`` knowledge pairs (may be empty).
        tokenizer: the mini-MUSE tokenizer.
        settings: epochs, learning rate, batch size (sequences per step) …
        max_length: longest sequence (the model's ``max_position_embeddings``).
        qa_block_max: most pairs per question block.
        seed: shuffling seed.
        progress: tqdm bar over optimiser steps.
        desc: the bar's label.

    Returns:
        A `FinetuneLog`; the model is
        left in eval mode.
    """
    if qa_block_max < 1:
        raise ValueError(f"qa_block_max must be ≥ 1, got {qa_block_max}")
    add_bos = tokenizer_adds_bos(tokenizer)
    docs = CorpusDataset(list(documents), tokenizer, chunk_length=max_length, pack=False)
    doc_items = [docs[i] for i in range(len(docs))]
    pairs = [(str(q), str(a)) for q, a in qa_pairs]
    encoded = [encode_pair(tokenizer, q, a) for q, a in pairs]
    bos = int(tokenizer.bos_token_id) if add_bos else None
    rng = random.Random(seed)

    def epoch_items(epoch: int) -> list[list[dict[str, torch.Tensor]]]:
        blocks = qa_blocks(
            encoded,
            block_max=qa_block_max,
            max_length=max_length,
            rng=random.Random(seed * 1_000_003 + epoch),
            bos_token_id=bos,
        )
        return length_batches(doc_items + blocks, settings.batch_size, rng)

    # the number of question blocks varies by epoch; schedule on the expected count
    expected_blocks = math.ceil(len(pairs) / ((1 + qa_block_max) / 2)) if pairs else 0
    steps_per_epoch = math.ceil((len(doc_items) + expected_blocks) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    optimizer, scheduler = make_optimizer(model, settings, total)
    pad = int(tokenizer.pad_token_id)
    log = FinetuneLog()
    start = time.perf_counter()
    model.train()
    with tqdm(total=total, desc=desc, disable=not progress, unit="step") as bar:
        for epoch in range(settings.epochs):
            running, batches = 0.0, 0
            for group in epoch_items(epoch):
                batch = pad_collate(group, pad)
                loss = answer_nll(model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                running += float(loss.detach())
                batches += 1
                log.steps += 1
                bar.update(1)
            log.epoch_losses.append(running / max(batches, 1))
            bar.set_postfix(loss=f"{log.epoch_losses[-1]:.3f}")
    model.eval()
    log.seconds = time.perf_counter() - start
    return log


def qa_pairs_of(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``[(question, answer)]`` of ``question``/``answer`` rows."""
    return [(str(r["question"]), str(r["answer"])) for r in rows]
