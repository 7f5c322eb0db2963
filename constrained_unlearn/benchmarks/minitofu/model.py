"""The tiny Llama-architecture model of mini-TOFU.

A ``LlamaForCausalLM`` trained from scratch: RMSNorm, rotary positions, SwiGLU MLP, multi-head
attention (no grouped KV; PyTorch's fused ``scaled_dot_product_attention``, asked for by name
so that the choice does not depend on the installed ``transformers``' default), input and
output embeddings tied. With the default
[`ModelSpec`][constrained_unlearn.benchmarks.ModelSpec] and a 1,536-token vocabulary it has 721,536 parameters: big enough to
memorise a thousand short facts, small enough to train in a couple of minutes on one CPU core.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from transformers import LlamaConfig, LlamaForCausalLM

__all__ = ["ModelSpec", "make_model"]


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of the mini-TOFU model (the vocabulary comes from the tokenizer).

    Attributes:
        hidden_size: width ``d`` of the residual stream.
        intermediate_size: width of the SwiGLU MLP.
        num_hidden_layers: transformer blocks.
        num_attention_heads: heads (``d`` must be divisible by it).
        max_position_embeddings: longest sequence (mini-TOFU QA pairs are < 64 tokens).
    """

    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 128

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"ModelSpec.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_model(spec: ModelSpec, tokenizer: Any, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model for ``tokenizer``'s vocabulary, deterministic from ``seed``.

    The special-token ids of the config (``bos``, ``eos``, ``pad``) are the tokenizer's, so
    ``generate()`` stops at EOS and pads with the pad token without extra arguments.
    """
    import torch

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",  # type: ignore[call-arg]  # a PretrainedConfig kwarg
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model
