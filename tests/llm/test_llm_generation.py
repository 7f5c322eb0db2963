"""Batched greedy generation: left padding must not change what is generated."""

from __future__ import annotations

import pytest

from constrained_unlearn.llm import PromptTemplate, cut_at_stop_strings, generate_batched

PROMPTS = [
    "Question: Where was the author born?\nAnswer: ",
    "Question: Who?\nAnswer: ",
    "Question: What is the capital of France and of the lazy dog?\nAnswer: ",
    "Hello",
    "Question: What did Alice write about the sea?\nAnswer: ",
]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_equals_unbatched(arch, tokenizer, model_factory):
    # A wide init makes logits peaked so greedy argmax has no near-ties.
    model = model_factory(arch, tokenizer, init_range=0.5)
    model.train()
    tokenizer.padding_side = "right"
    batched = generate_batched(model, tokenizer, PROMPTS, max_new_tokens=10, batch_size=5)
    single = [generate_batched(model, tokenizer, [p], max_new_tokens=10)[0] for p in PROMPTS]
    assert batched == single
    assert sum(len(t) for t in batched) > 0
    assert len(set(batched)) > 1  # outputs depend on the prompt
    assert model.training  # mode restored
    assert tokenizer.padding_side == "right"  # restored


def test_cut_at_eos_and_stop_strings(tokenizer, model_factory):
    model = model_factory("llama", tokenizer, init_range=0.5)
    full = generate_batched(model, tokenizer, PROMPTS[:2], max_new_tokens=12, batch_size=2)
    # Make the model stop right after its first generated token by declaring it an EOS.
    ids = tokenizer(PROMPTS[0])["input_ids"]
    import torch

    with torch.no_grad():
        first = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, first]
    assert generate_batched(model, tokenizer, PROMPTS[:1], max_new_tokens=12) == [""]
    model.generation_config.eos_token_id = tokenizer.eos_token_id

    text = full[0]
    assert len(text) >= 2
    stop = text[1:3]
    cut = generate_batched(model, tokenizer, PROMPTS[:1], max_new_tokens=12, stop_strings=[stop])
    assert cut == [cut_at_stop_strings(text, [stop])]
    assert cut[0] == text[: text.find(stop)]


def test_cut_at_stop_strings_unit():
    assert cut_at_stop_strings("abc\nQuestion: x", ["\nQuestion:", "zz"]) == "abc"
    assert cut_at_stop_strings("abc", []) == "abc"
    assert cut_at_stop_strings("a.b;c", [";", "."]) == "a"


def test_generation_arguments(tokenizer, model_factory):
    model = model_factory("llama", tokenizer)
    assert generate_batched(model, tokenizer, []) == []
    with pytest.raises(TypeError, match="list of strings"):
        generate_batched(model, tokenizer, "one prompt")
    with pytest.raises(ValueError, match="batch_size"):
        generate_batched(model, tokenizer, ["x"], batch_size=0)
    chat = PromptTemplate(kind="chat")
    out = generate_batched(
        model,
        tokenizer,
        [chat.format_prompt(tokenizer, "Who?")],
        max_new_tokens=3,
        add_special_tokens=chat.adds_special_tokens,
    )
    assert len(out) == 1 and isinstance(out[0], str)


def test_default_budget_fits_the_context():
    from types import SimpleNamespace

    from constrained_unlearn.llm.generation import default_max_new_tokens

    def model(n):
        return SimpleNamespace(config=SimpleNamespace(max_position_embeddings=n))

    assert default_max_new_tokens(model(128), 20) == 108  # mini-TOFU: not 200
    assert default_max_new_tokens(model(4096), 20) == 200  # capped at TOFU's 200
    assert default_max_new_tokens(model(128), 127) == 1
    assert default_max_new_tokens(SimpleNamespace(config=None), 20) == 200
