"""Hugging Face causal LMs: QA encoding, batching, loading, unlearning terms, generation.

Names are imported from their submodule on first use (PEP 562), so
``from constrained_unlearn.llm import load_model_and_tokenizer`` does not import the engine,
accelerate or the unlearning terms: a command that only loads and evaluates a model starts
faster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from constrained_unlearn.llm.collate import PadCollator, pad_collate
    from constrained_unlearn.llm.corpus import CorpusDataset, pack_documents
    from constrained_unlearn.llm.generation import cut_at_stop_strings, generate_batched
    from constrained_unlearn.llm.loading import (
        HubUnavailableError,
        LoraSettings,
        VocabularyMismatchError,
        apply_lora,
        check_source,
        check_vocabulary,
        load_model_and_tokenizer,
        resolve_dtype,
    )
    from constrained_unlearn.llm.terms import (
        CausalLMTerms,
        answer_logits,
        concat_batches,
        kl_to_reference,
        sequence_log_probs,
    )
    from constrained_unlearn.llm.tokenization import (
        EncodedQA,
        PromptTemplate,
        QADataset,
        encode_prompt,
        encode_prompts,
        encode_qa,
        encode_qa_pairs,
        ensure_pad_token,
    )

__all__ = [
    "CausalLMTerms",
    "CorpusDataset",
    "EncodedQA",
    "HubUnavailableError",
    "LoraSettings",
    "PadCollator",
    "PromptTemplate",
    "QADataset",
    "VocabularyMismatchError",
    "answer_logits",
    "apply_lora",
    "check_source",
    "check_vocabulary",
    "concat_batches",
    "cut_at_stop_strings",
    "encode_prompt",
    "encode_prompts",
    "encode_qa",
    "encode_qa_pairs",
    "ensure_pad_token",
    "generate_batched",
    "kl_to_reference",
    "load_model_and_tokenizer",
    "pack_documents",
    "pad_collate",
    "resolve_dtype",
    "sequence_log_probs",
]

_SUBMODULE = {
    "PadCollator": "collate",
    "pad_collate": "collate",
    "CorpusDataset": "corpus",
    "pack_documents": "corpus",
    "cut_at_stop_strings": "generation",
    "generate_batched": "generation",
    "HubUnavailableError": "loading",
    "LoraSettings": "loading",
    "VocabularyMismatchError": "loading",
    "apply_lora": "loading",
    "check_source": "loading",
    "check_vocabulary": "loading",
    "load_model_and_tokenizer": "loading",
    "resolve_dtype": "loading",
    "CausalLMTerms": "terms",
    "answer_logits": "terms",
    "concat_batches": "terms",
    "kl_to_reference": "terms",
    "sequence_log_probs": "terms",
    "EncodedQA": "tokenization",
    "PromptTemplate": "tokenization",
    "QADataset": "tokenization",
    "encode_prompt": "tokenization",
    "encode_prompts": "tokenization",
    "encode_qa": "tokenization",
    "encode_qa_pairs": "tokenization",
    "ensure_pad_token": "tokenization",
}


def __getattr__(name: str) -> Any:
    module = _SUBMODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
