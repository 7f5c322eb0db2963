"""Tiny local tokenizers for the LLM tests (no hub access; DESIGN.md invariant 7)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

CORPUS = [
    "Question: Where was the author born?\nAnswer: The author was born in Paris.",
    "Question: What is the capital of France?\nAnswer: Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
    "Alice wrote three novels about the sea and two about the mountains.",
    "You are a helpful assistant. Tell me about the weather today.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ? ! : ; ' \" ( )",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(*, eos_is_pad: bool = False, add_bos: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE (vocab ~300) trained in well under a second.

    Special tokens: ``<s>`` (BOS, added in front when ``add_bos``), ``</s>`` (EOS), ``<pad>``
    unless ``eos_is_pad`` (then pad == EOS), ``<|system|>``, ``<|user|>``, ``<|assistant|>``.
    """
    specials = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    if add_bos:
        bos_id = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="</s>" if eos_is_pad else "<pad>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """Tokenizer with BOS added, distinct ``<pad>``."""
    return build_tokenizer()


@pytest.fixture(scope="session")
def eos_pad_tokenizer() -> PreTrainedTokenizerFast:
    """Tokenizer whose pad token is EOS (the common Llama/GPT-2 setup)."""
    return build_tokenizer(eos_is_pad=True)


@pytest.fixture(scope="session")
def tokenizer_factory():
    return build_tokenizer


ARCHITECTURES = ("llama", "qwen2", "gpt2", "gemma")


def build_model(arch: str, tokenizer, *, seed: int = 0, init_range: float = 0.02):
    """A random 2-layer causal LM of the given architecture, hidden size 32, in float32."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        GemmaConfig,
        GPT2Config,
        LlamaConfig,
        Qwen2Config,
    )

    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    common = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "initializer_range": init_range,
        **ids,
    }
    if arch == "llama":
        config = LlamaConfig(**common)
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    elif arch == "gemma":
        config = GemmaConfig(**common, head_dim=8)
    elif arch == "gpt2":
        config = GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=256,
            initializer_range=init_range,
            resid_pdrop=0.0,  # no dropout: train-mode values must equal eval-mode ones
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **ids,
        )
    else:
        raise ValueError(f"unknown architecture {arch!r}; use one of {ARCHITECTURES}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="session")
def model_factory():
    return build_model
