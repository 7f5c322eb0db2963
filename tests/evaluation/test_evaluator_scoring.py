"""Batched teacher-forced scoring equals one-at-a-time scoring; regrouping is exact."""

from __future__ import annotations

import pytest
import torch
from test_evaluator_fixtures import FORGET, build_llama, build_tokenizer

from constrained_unlearn.evaluation.scoring import (
    ScoredSequence,
    encode_pair,
    encode_text,
    per_example_gradnorm,
    score_question_set,
    score_sequences,
)
from constrained_unlearn.llm.tokenization import PromptTemplate

TEMPLATE = PromptTemplate()


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return build_llama(tok)


def _pairs() -> list[tuple[str, str]]:
    out = []
    for row in FORGET:
        out.append((row["question"], row["answer"]))
        out.extend((row["question"], p) for p in row["perturbed_answer"])
    return out


def _manual(model, seq: ScoredSequence) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and argmax hits of the target tokens of one unpadded sequence, by hand."""
    ids = torch.tensor([seq.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    log_p = torch.log_softmax(logits, dim=-1)
    positions = torch.arange(seq.prompt_length - 1, len(seq.input_ids) - 1)
    targets = torch.tensor(seq.target_ids)
    return log_p[positions, targets], logits[positions].argmax(-1) == targets


def test_batched_scores_equal_single_scores(model, tok) -> None:
    sequences = [encode_pair(tok, q, a, template=TEMPLATE, max_length=512) for q, a in _pairs()]
    assert len({len(s.input_ids) for s in sequences}) > 1  # padding really happens
    batched = score_sequences(model, sequences, batch_size=4, pad_token_id=tok.pad_token_id)
    for i, seq in enumerate(sequences):
        alone = score_sequences(model, [seq], batch_size=1, pad_token_id=tok.pad_token_id)
        for field in ("log_probs", "mu"):
            torch.testing.assert_close(
                getattr(batched, field)[i], getattr(alone, field)[0], atol=1e-5, rtol=0
            )
        # σ_t = sqrt(E[log² p] − μ²) cancels in float32 near the uniform distribution of a
        # random model (μ² ≈ 36, σ² ≈ 0.014): a 1-ulp change of a logit moves σ by ~1e-4.
        torch.testing.assert_close(batched.sigma[i], alone.sigma[0], atol=1e-5, rtol=0)
        assert torch.equal(batched.correct[i], alone.correct[0])
        lp, hits = _manual(model, seq)
        torch.testing.assert_close(batched.log_probs[i], lp, atol=1e-5, rtol=0)
        assert torch.equal(batched.correct[i], hits)
        # answer tokens plus the supervised EOS
        assert batched.log_probs[i].numel() == len(seq.target_ids)
        assert seq.target_ids[-1] == tok.eos_token_id


def test_eos_as_pad_changes_nothing(model, tok) -> None:
    eos_tok = build_tokenizer(eos_is_pad=True)
    sequences = [encode_pair(tok, q, a, template=TEMPLATE, max_length=512) for q, a in _pairs()]
    distinct = score_sequences(model, sequences, batch_size=8, pad_token_id=tok.pad_token_id)
    as_eos = score_sequences(model, sequences, batch_size=8, pad_token_id=eos_tok.pad_token_id)
    for a, b in zip(distinct.log_probs, as_eos.log_probs):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        assert a.numel() == b.numel()


def test_question_set_regroups_every_variant(model, tok) -> None:
    rows = FORGET
    scores = score_question_set(
        model, tok, rows, ("answer", "paraphrased_answer", "perturbed_answer"), batch_size=5
    )
    assert scores["answer"].offsets == [0, 1, 2, 3, 4]
    counts = [len(r["perturbed_answer"]) for r in rows]
    assert [len(scores["perturbed_answer"].row(i)) for i in range(len(rows))] == counts
    grouped = scores["perturbed_answer"].grouped_mean_nll()
    for i, row in enumerate(rows):
        for j, answer in enumerate(row["perturbed_answer"]):
            seq = encode_pair(tok, row["question"], answer, template=TEMPLATE, max_length=512)
            lp, _ = _manual(model, seq)
            assert grouped[i][j] == pytest.approx(-float(lp.double().mean()), abs=1e-5)
        seq = encode_pair(
            tok, row["question"], row["paraphrased_answer"], template=TEMPLATE, max_length=512
        )
        lp, _ = _manual(model, seq)
        assert scores["paraphrased_answer"].mean_nll()[i] == pytest.approx(
            -float(lp.double().mean()), abs=1e-5
        )
    with pytest.raises(ValueError, match="grouped_mean_nll"):
        scores["perturbed_answer"].mean_nll()


@pytest.mark.parametrize("tokenization", ["separate", "joint"])
def test_question_set_encodes_each_pair_as_encode_pair_does(model, tok, tokenization) -> None:
    scores = score_question_set(
        model, tok, FORGET, ("answer", "perturbed_answer"), tokenization=tokenization
    )
    for column in ("answer", "perturbed_answer"):
        expected = [
            encode_pair(
                tok,
                row["question"],
                a,
                template=TEMPLATE,
                max_length=512,
                tokenization=tokenization,
            ).target_ids
            for row in FORGET
            for a in ([row[column]] if isinstance(row[column], str) else row[column])
        ]
        assert scores[column].target_ids == expected


def test_question_set_names_missing_column(model, tok) -> None:
    with pytest.raises(KeyError, match="paraphrased_answer"):
        score_question_set(model, tok, [{"question": "q", "answer": "a"}], ("paraphrased_answer",))


def test_encode_text_scores_after_prefix(tok) -> None:
    seq = encode_text(tok, "to rebuild the pier.", prefix="The council voted", insert_space=True)
    prefix_ids = tok("The council voted")["input_ids"]
    assert seq.input_ids[: len(prefix_ids)] == prefix_ids
    assert seq.prompt_length == len(prefix_ids)
    assert tok.decode(seq.target_ids) == " to rebuild the pier."
    whole = encode_text(tok, "The council voted.", max_target_tokens=2)
    assert whole.prompt_length == 1 and len(whole.target_ids) == 2  # only BOS is context
    with pytest.raises(ValueError, match="no token"):
        encode_text(tok, "")


def test_gradnorm_is_per_example_and_restores_mode(model, tok) -> None:
    sequences = [encode_pair(tok, q, a, template=TEMPLATE, max_length=512) for q, a in _pairs()[:3]]
    batched = per_example_gradnorm(model, sequences, batch_size=3, pad_token_id=tok.pad_token_id)
    single = [
        per_example_gradnorm(model, [s], batch_size=1, pad_token_id=tok.pad_token_id)[0]
        for s in sequences
    ]
    assert batched == pytest.approx(single, rel=1e-4)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
