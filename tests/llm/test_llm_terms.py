"""CausalLMTerms on tiny random Llama, Qwen2, GPT-2 and Gemma models."""

from __future__ import annotations

import pytest
import torch
from conftest import ARCHITECTURES

from constrained_unlearn.engine.terms import Terms
from constrained_unlearn.llm import (
    CausalLMTerms,
    QADataset,
    concat_batches,
    pad_collate,
    sequence_log_probs,
)
from constrained_unlearn.losses import margin_per_position

FORGET = [
    {"question": "Where was the author born?", "answer": "The author was born in Paris."},
    {"question": "Who?", "answer": "Alice.</s>Bob."},  # a genuine EOS inside the answer
    {"question": "What is the capital of France?", "answer": "Paris."},
]
RETAIN = [
    {"question": "Tell me about the weather today.", "answer": "The weather is fine."},
    {"question": "What did Alice write?", "answer": "Three novels about the sea."},
]


def _batches(tok):
    forget = QADataset(FORGET, tok)
    retain = QADataset(RETAIN, tok)
    fb = pad_collate([forget[i] for i in range(len(forget))], tok.pad_token_id)
    rb = pad_collate([retain[i] for i in range(len(retain))], tok.pad_token_id)
    return forget, retain, fb, rb


def _manual_margin(model, dataset):
    """Mean squared margin over answer-predicting positions, one unpadded example at a time."""
    squares = []
    for enc in dataset.encoded:
        ids = torch.tensor([enc.input_ids])
        logits = model(input_ids=ids).logits[0]
        # position t predicts token t+1: prompt_length-1 .. T-2 predict the answer and EOS
        positions = torch.arange(enc.prompt_length - 1, len(enc.input_ids) - 1)
        squares.append(margin_per_position(logits[positions]) ** 2)
    return torch.cat(squares).mean()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_terms_per_architecture(arch, eos_pad_tokenizer, model_factory):
    tok = eos_pad_tokenizer  # EOS == pad: masks must still come from lengths
    model = model_factory(arch, tok)
    forget, retain, fb, rb = _batches(tok)

    # Labels are -100 exactly on prompt and padding.
    for b, enc in enumerate(forget.encoded):
        lab = fb["labels"][b]
        n = len(enc.input_ids)
        assert (lab[: enc.prompt_length] == -100).all()
        assert (lab[enc.prompt_length : n] != -100).all()
        assert (lab[n:] == -100).all()
        assert fb["attention_mask"][b].sum().item() == n
    # The inner EOS of example 1 is attended and supervised although EOS is the pad id.
    assert int((fb["labels"][1] == tok.eos_token_id).sum()) == 2

    model.train()
    terms = CausalLMTerms()(model, fb, rb)
    assert isinstance(terms, Terms)
    assert set(terms.constraints) == {"retain"}
    model.eval()
    with torch.no_grad():
        expected = _manual_margin(model, forget)
    torch.testing.assert_close(terms.objective.detach(), expected, rtol=1e-5, atol=1e-6)
    n_answer = sum(len(e.input_ids) - e.prompt_length for e in forget.encoded)
    assert terms.metrics["forget_tokens"] == n_answer

    (terms.objective + terms.constraints["retain"]).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0

    # Padding is invisible: other pad ids and extra right padding change nothing.
    model.zero_grad()
    wider = {
        "input_ids": torch.nn.functional.pad(fb["input_ids"], (0, 3), value=5),
        "attention_mask": torch.nn.functional.pad(fb["attention_mask"], (0, 3), value=0),
        "labels": torch.nn.functional.pad(fb["labels"], (0, 3), value=-100),
    }
    wider["input_ids"][wider["attention_mask"] == 0] = 7
    with torch.no_grad():
        again = CausalLMTerms()(model, wider, rb)
    torch.testing.assert_close(again.objective, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fused_equals_two_forwards(arch, tokenizer, model_factory):
    model = model_factory(arch, tokenizer, init_range=0.2)
    ref = model_factory(arch, tokenizer, seed=1)
    _, _, fb, rb = _batches(tokenizer)
    assert fb["input_ids"].shape[1] != rb["input_ids"].shape[1]
    for forget_loss in ("margin",) if arch != "llama" else ("margin", "entropy"):
        kwargs = {"forget_loss": forget_loss, "reference_model": ref}
        two = CausalLMTerms(**kwargs)(model, fb, rb)
        one = CausalLMTerms(fused=True, pad_token_id=tokenizer.pad_token_id, **kwargs)(
            model, fb, rb
        )
        torch.testing.assert_close(one.objective, two.objective, rtol=0, atol=1e-6)
        assert one.constraints.keys() == two.constraints.keys() == {"retain", "kl_reference"}
        for name in two.constraints:
            torch.testing.assert_close(
                one.constraints[name], two.constraints[name], rtol=0, atol=1e-6
            )
        grads = torch.autograd.grad(one.objective, list(model.parameters()), allow_unused=True)
        grads2 = torch.autograd.grad(two.objective, list(model.parameters()), allow_unused=True)
        for g1, g2 in zip(grads, grads2):
            if g2 is not None:
                torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_kl_reference(tokenizer, model_factory):
    model = model_factory("llama", tokenizer)
    _, _, fb, rb = _batches(tokenizer)
    ref = model_factory("llama", tokenizer)  # same seed: identical weights
    ref.train()
    terms_fn = CausalLMTerms(reference_model=ref)
    assert not ref.training
    assert not any(p.requires_grad for p in ref.parameters())
    ref.train()  # the terms put it back in eval mode
    same = terms_fn(model, fb, rb)
    assert not ref.training
    assert abs(float(same.constraints["kl_reference"].detach())) < 1e-6

    other = CausalLMTerms(reference_model=model_factory("llama", tokenizer, seed=3))
    terms = other(model, fb, rb)
    kl = terms.constraints["kl_reference"]
    assert float(kl) > 1e-4
    assert kl.requires_grad
    kl.backward()
    assert other.reference_model.model.embed_tokens.weight.grad is None


def test_entropy_objective_is_kl_to_uniform(tokenizer, model_factory):
    model = model_factory("qwen2", tokenizer, init_range=0.3)
    forget, _, fb, rb = _batches(tokenizer)
    terms = CausalLMTerms(forget_loss="entropy")(model, fb, rb)
    with torch.no_grad():
        values = []
        for enc in forget.encoded:
            logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0]
            logits = logits[enc.prompt_length - 1 : len(enc.input_ids) - 1]
            log_p = logits.log_softmax(-1)
            values.append((log_p.exp() * log_p).sum(-1) + torch.log(torch.tensor(logits.shape[-1])))
    torch.testing.assert_close(terms.objective, torch.cat(values).mean(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="forget_loss"):
        CausalLMTerms(forget_loss="gradascent")


def test_retain_constraint_is_answer_nll(tokenizer, model_factory):
    model = model_factory("gpt2", tokenizer, init_range=0.3)
    _, retain, fb, rb = _batches(tokenizer)
    terms = CausalLMTerms()(model, fb, rb)
    with torch.no_grad():
        nll_sum, count = 0.0, 0
        for enc in retain.encoded:
            logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0]
            lp = logits.log_softmax(-1)
            for t in range(enc.prompt_length, len(enc.input_ids)):
                nll_sum -= float(lp[t - 1, enc.input_ids[t]])
                count += 1
    assert abs(float(terms.constraints["retain"]) - nll_sum / count) < 1e-5
    # HF's own shifted loss agrees (it uses the same alignment and ignore index).
    with torch.no_grad():
        hf = model(**rb).loss
    torch.testing.assert_close(terms.constraints["retain"], hf, rtol=1e-5, atol=1e-6)


def test_sequence_log_probs(tokenizer, model_factory):
    model = model_factory("llama", tokenizer, init_range=0.3)
    forget, _, fb, _ = _batches(tokenizer)
    model.train()
    s = sequence_log_probs(model, fb)
    avg = sequence_log_probs(model, fb, normalize=True)
    assert s.shape == (3,) and s.requires_grad
    with torch.no_grad():
        for b, enc in enumerate(forget.encoded):
            lp = model(input_ids=torch.tensor([enc.input_ids])).logits[0].log_softmax(-1)
            total = sum(
                float(lp[t - 1, enc.input_ids[t]])
                for t in range(enc.prompt_length, len(enc.input_ids))
            )
            assert abs(float(s[b]) - total) < 1e-4
            n = len(enc.input_ids) - enc.prompt_length
            assert abs(float(avg[b]) - total / n) < 1e-5


def test_batch_checks(tokenizer):
    _, _, fb, rb = _batches(tokenizer)
    left = pad_collate(
        [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4], "labels": [4]}],
        0,
        side="left",
    )
    with pytest.raises(ValueError, match="right-padded"):
        CausalLMTerms()(torch.nn.Identity(), left, rb)
    with pytest.raises(KeyError, match="labels"):
        CausalLMTerms()(torch.nn.Identity(), {k: v for k, v in fb.items() if k != "labels"}, rb)
    both = concat_batches(fb, rb, pad_token_id=9)
    width = max(fb["input_ids"].shape[1], rb["input_ids"].shape[1])
    assert both["input_ids"].shape == (5, width)
    assert (both["labels"][3:, rb["labels"].shape[1] :] == -100).all()


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
@pytest.mark.parametrize("fused", [False, True])
def test_chunked_terms_equal_naive(arch, fused, tokenizer, model_factory):
    model = model_factory(arch, tokenizer, init_range=0.2)
    _, _, fb, rb = _batches(tokenizer)
    kwargs = {"fused": fused, "pad_token_id": tokenizer.pad_token_id}
    naive = CausalLMTerms(**kwargs)(model, fb, rb)
    chunked = CausalLMTerms(chunk_size=4, **kwargs)(model, fb, rb)
    torch.testing.assert_close(chunked.objective, naive.objective, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        chunked.constraints["retain"], naive.constraints["retain"], rtol=1e-6, atol=1e-6
    )
    assert float(chunked.metrics["forget_nll"]) == pytest.approx(
        float(naive.metrics["forget_nll"]), rel=1e-5
    )
    params = list(model.parameters())
    for a, b in zip(
        torch.autograd.grad(chunked.objective + chunked.constraints["retain"], params),
        torch.autograd.grad(naive.objective + naive.constraints["retain"], params),
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
