"""Hugging Face causal LMs: QA encoding, batching, loading, unlearning terms, generation."""

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
    reference_sequence_log_probs,
    sequence_log_probs,
)
from constrained_unlearn.llm.tokenization import (
    EncodedQA,
    PromptTemplate,
    QADataset,
    encode_prompt,
    encode_qa,
    ensure_pad_token,
)

__all__ = [
    "CausalLMTerms",
    "HubUnavailableError",
    "VocabularyMismatchError",
    "check_vocabulary",
    "CorpusDataset",
    "EncodedQA",
    "LoraSettings",
    "PadCollator",
    "PromptTemplate",
    "QADataset",
    "answer_logits",
    "apply_lora",
    "check_source",
    "concat_batches",
    "cut_at_stop_strings",
    "encode_prompt",
    "encode_qa",
    "ensure_pad_token",
    "pack_documents",
    "generate_batched",
    "kl_to_reference",
    "load_model_and_tokenizer",
    "pad_collate",
    "reference_sequence_log_probs",
    "resolve_dtype",
    "sequence_log_probs",
]
