"""Hugging Face causal LMs: QA encoding, batching, loading, unlearning terms, generation."""

from constrained_unlearn.llm.collate import PadCollator, pad_collate
from constrained_unlearn.llm.tokenization import (
    EncodedQA,
    PromptTemplate,
    QADataset,
    encode_prompt,
    encode_qa,
    ensure_pad_token,
)

__all__ = [
    "EncodedQA",
    "PadCollator",
    "PromptTemplate",
    "QADataset",
    "encode_prompt",
    "encode_qa",
    "ensure_pad_token",
    "pad_collate",
]
