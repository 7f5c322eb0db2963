"""Raw-text corpora for unlearning: documents tokenised and packed into fixed-length chunks.

MUSE's forget and retain sets are news articles or book text, not question-answer pairs. A
corpus of ``D`` documents becomes training sequences as follows. Document ``d`` is tokenised
without special tokens into ``x_d = (x_{d,1} … x_{d,n_d})`` and framed as

    s_d = [BOS] + x_d + [EOS]               (BOS only when the tokenizer adds one itself)

The framed documents are concatenated, ``S = s_1 ‖ s_2 ‖ … ‖ s_D``, and cut into consecutive
chunks of ``L = chunk_length`` tokens (the last one may be shorter); with ``pack=False`` every
document is cut on its own instead, so a chunk never holds two documents. Labels follow the
ids except at document starts:

    labels[t] = -100      if t = 0 (no position of the chunk predicts its first token)
                          or token t is the first token of a document (its BOS, or its first
                             token when there is no BOS)
    labels[t] = ids[t]    otherwise (document tokens and the closing EOS)

Under next-token alignment (the logits at ``t`` are scored against ``labels[t + 1]``) the last
token of document ``d`` — its EOS — is therefore never asked to predict the first token of
``d + 1``: no position predicts across a document boundary, while every document still learns
to end with EOS. Every label that is not ``-100`` is a target of the forget (or retain) loss,
and every such target is predicted from inside a chunk. Attention is not blocked between the
documents of a chunk (standard packing, as in the continued pre-training of the MUSE targets):
the boundary rule concerns the targets only.

Chunks without any target (a one-token remainder, a chunk that holds only a BOS) are dropped and
counted in `CorpusDataset.num_dropped_chunks`. ``dataset[i]`` is the same dict a
[`QADataset`][constrained_unlearn.llm.QADataset] yields, so
[`pad_collate`][constrained_unlearn.llm.pad_collate], [`CausalLMTerms`][constrained_unlearn.llm.CausalLMTerms]
and every method run on a corpus unchanged.

Open-unlearning's MUSE dataset joins the documents with ``"\\n\\n"`` and lets the boundaries be
predicted; the EOS framing and boundary labels here are this library's choice (docs/muse.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = ["CorpusChunk", "CorpusDataset", "corpus_texts", "pack_documents", "tokenizer_adds_bos"]


@dataclass
class CorpusChunk:
    """One packed chunk.

    Attributes:
        input_ids: ``[T]`` token ids, ``T ≤ chunk_length``.
        labels: ``[T]``; ``-100`` at position 0 and at every document start, else the id.
        documents: indices of the documents with at least one token in the chunk, in order.
    """

    input_ids: list[int]
    labels: list[int]
    documents: list[int]

    @property
    def num_targets(self) -> int:
        """Positions scored by a loss: labels that are not ``-100``."""
        return sum(label != IGNORE_INDEX for label in self.labels)


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer(text)`` (special tokens on) starts with the tokenizer's BOS id.

    Evaluation encodes prompts and documents that way, so training documents are framed the same
    way: with a BOS exactly when the tokenizer adds one.
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    return len(ids) > len(plain) and ids[0] == bos


def pack_documents(
    documents: Sequence[Sequence[int]],
    chunk_length: int,
    *,
    eos_token_id: int,
    bos_token_id: int | None = None,
    pack: bool = True,
    drop_remainder: bool = False,
) -> tuple[list[CorpusChunk], int]:
    """Frame tokenised documents with BOS/EOS and cut them into chunks (module docstring).

    Args:
        documents: ``D`` token-id lists, without special tokens. Empty documents are skipped.
        chunk_length: ``L``, the longest chunk (≥ 2: a chunk needs one context position).
        eos_token_id: closes every document (a supervised target).
        bos_token_id: opens every document when given (never a target).
        pack: concatenate the documents before cutting (``False``: cut each on its own).
        drop_remainder: with ``pack``, drop the last chunk when it is shorter than ``L``.

    Returns:
        ``(chunks, dropped)``: the chunks in corpus order and how many chunks were dropped
        because they had no target (the remainder dropped by ``drop_remainder`` included).
    """
    if not isinstance(chunk_length, int) or chunk_length < 2:
        raise ValueError(
            f"chunk_length must be an integer ≥ 2 (one context token and one target), "
            f"got {chunk_length!r}"
        )
    streams: list[tuple[list[int], list[int], list[int]]] = []  # ids, labels, document index
    ids: list[int] = []
    labels: list[int] = []
    owner: list[int] = []
    for d, tokens in enumerate(documents):
        tokens = [int(t) for t in tokens]
        if not tokens:
            continue
        framed = ([bos_token_id] if bos_token_id is not None else []) + tokens + [eos_token_id]
        ids.extend(framed)
        labels.extend([IGNORE_INDEX] + framed[1:])  # the document's first token: no target
        owner.extend([d] * len(framed))
        if not pack:
            streams.append((ids, labels, owner))
            ids, labels, owner = [], [], []
    if pack and ids:
        streams.append((ids, labels, owner))

    chunks: list[CorpusChunk] = []
    dropped = 0
    for stream_ids, stream_labels, stream_owner in streams:
        for start in range(0, len(stream_ids), chunk_length):
            end = start + chunk_length
            if pack and drop_remainder and end > len(stream_ids):
                dropped += 1
                continue
            chunk_labels = [IGNORE_INDEX] + stream_labels[start + 1 : end]
            chunk = CorpusChunk(
                input_ids=stream_ids[start:end],
                labels=chunk_labels,
                documents=list(dict.fromkeys(stream_owner[start:end])),
            )
            if chunk.num_targets == 0:
                dropped += 1
                continue
            chunks.append(chunk)
    return chunks, dropped


def corpus_texts(rows: Any, text_key: str = "text") -> list[str]:
    """The document strings of ``rows``: a list of strings, a list of dicts or a
    ``datasets.Dataset`` with a ``text_key`` column."""
    if isinstance(rows, str):
        raise TypeError("rows must be a collection of documents, got a single str")
    columns = getattr(rows, "column_names", None)
    if columns is not None:
        if text_key not in columns:
            raise KeyError(
                f"column {text_key!r} not found; available columns: {list(columns)}. "
                "Pass text_key= to name the text column."
            )
        return [str(t) for t in rows[text_key]]
    texts: list[str] = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            texts.append(row)
        elif isinstance(row, Mapping):
            if text_key not in row:
                raise KeyError(
                    f"rows[{i}] lacks key {text_key!r}; available keys: {sorted(row)}. "
                    "Pass text_key= to name the text field."
                )
            texts.append(str(row[text_key]))
        else:
            raise TypeError(f"rows[{i}] is a {type(row).__name__}, expected a str or a dict")
    return texts


class CorpusDataset(torch.utils.data.Dataset):
    """A map-style dataset of packed corpus chunks, ready for [`pad_collate`][constrained_unlearn.llm.pad_collate].

    Args:
        rows: documents: strings, dicts with ``text_key`` or a ``datasets.Dataset``.
        tokenizer: a Hugging Face tokenizer with an EOS token.
        chunk_length: ``L`` (2048 for MUSE's Llama-2 targets).
        text_key: the text field of dict rows / dataset columns.
        pack: pack documents across chunk boundaries (``False``: one document per chunk run).
        add_bos: open every document with BOS (default: when the tokenizer adds one itself,
            see `tokenizer_adds_bos`).
        drop_remainder: drop the final chunk shorter than ``L`` (packed corpora only).

    Attributes:
        chunks: the `CorpusChunk` list.
        num_documents: documents that were not empty.
        num_tokens: tokens over all chunks (BOS/EOS included).
        num_targets: supervised positions over all chunks.
        num_dropped_chunks: chunks without a target or dropped as remainder.

    ``dataset[i]`` is ``{"input_ids": LongTensor[T_i], "labels": LongTensor[T_i]}``.

    Raises:
        ValueError: no EOS token, no non-empty document, or no chunk with a target.
    """

    def __init__(
        self,
        rows: Any,
        tokenizer: Any,
        *,
        chunk_length: int = 2048,
        text_key: str = "text",
        pack: bool = True,
        add_bos: bool | None = None,
        drop_remainder: bool = False,
    ) -> None:
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError(
                "the tokenizer has no eos_token: set tokenizer.eos_token, documents are "
                "separated by EOS"
            )
        texts = corpus_texts(rows, text_key)
        if not texts:
            raise ValueError("the corpus is empty: a CorpusDataset needs at least one document")
        use_bos = tokenizer_adds_bos(tokenizer) if add_bos is None else bool(add_bos)
        if use_bos and tokenizer.bos_token_id is None:
            raise ValueError("add_bos=True but the tokenizer has no bos_token")
        tokenized = tokenizer(texts, add_special_tokens=False)["input_ids"]
        self.chunk_length = chunk_length
        self.pack = pack
        self.add_bos = use_bos
        self.chunks, self.num_dropped_chunks = pack_documents(
            tokenized,
            chunk_length,
            eos_token_id=int(eos),
            bos_token_id=int(tokenizer.bos_token_id) if use_bos else None,
            pack=pack,
            drop_remainder=drop_remainder,
        )
        self.num_documents = sum(1 for t in tokenized if len(t) > 0)
        if self.num_documents == 0:
            raise ValueError("every document of the corpus is empty after tokenisation")
        if not self.chunks:
            raise ValueError(
                f"no chunk of the corpus has a target ({self.num_dropped_chunks} dropped); "
                "lower chunk_length or set drop_remainder=False"
            )
        self.num_tokens = sum(len(c.input_ids) for c in self.chunks)
        self.num_targets = sum(c.num_targets for c in self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        chunk = self.chunks[i]
        return {
            "input_ids": torch.tensor(chunk.input_ids, dtype=torch.long),
            "labels": torch.tensor(chunk.labels, dtype=torch.long),
        }
