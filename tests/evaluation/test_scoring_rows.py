"""Scoring runs the LM head on the target rows only, with the numbers of the full logits."""

from __future__ import annotations

import pytest
import torch

from constrained_unlearn.evaluation.metrics.token_stats import token_statistics
from constrained_unlearn.evaluation.scoring import ScoredSequence, score_sequences
from constrained_unlearn.losses.masking import next_token_alignment

VOCAB = 61


def _model(softcap: float | None = None):
    import transformers as T

    common = dict(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
        pad_token_id=0, initializer_range=0.3,
    )  # fmt: skip
    if softcap is None:
        config = T.LlamaConfig(**common)
    else:
        config = T.Gemma2Config(**common, head_dim=8, final_logit_softcapping=softcap)
    torch.manual_seed(0)
    return T.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def _sequences():
    g = torch.Generator().manual_seed(3)
    return [
        ScoredSequence(torch.randint(1, VOCAB, (p + t,), generator=g).tolist(), p)
        for p, t in [(3, 4), (5, 1), (2, 7), (4, 4), (6, 2)]
    ]


def _full_logits_stats(model, sequences):
    out = []
    for seq in sequences:
        ids = torch.tensor([seq.input_ids])
        labels = ids.clone()
        labels[:, : seq.prompt_length] = -100
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        out.append(token_statistics(*next_token_alignment(logits, labels)))
    return out


@pytest.mark.parametrize("softcap", [None, 2.0])
def test_row_scoring_equals_the_full_logits(softcap):
    model, sequences = _model(softcap), _sequences()
    seen: list[tuple[int, ...]] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda m, a, out: seen.append(tuple(out.shape))
    )
    try:
        stats = score_sequences(model, sequences, batch_size=2)
    finally:
        hook.remove()
    if softcap is None:  # the head saw only each batch's last position: rows computed apart
        assert all(shape[1] == 1 for shape in seen)
    else:  # soft-capped logits: the exactness check refused, every batch had full logits
        assert any(shape[1] > 1 for shape in seen)
    expected = _full_logits_stats(model, sequences)
    for i, exp in enumerate(expected):
        assert stats.lengths()[i] == len(sequences[i].input_ids) - sequences[i].prompt_length
        for field in ("log_probs", "mu", "sigma"):
            torch.testing.assert_close(
                getattr(stats, field)[i], getattr(exp, field)[0], rtol=1e-5, atol=1e-6
            )
        assert torch.equal(stats.correct[i], exp.correct[0])
