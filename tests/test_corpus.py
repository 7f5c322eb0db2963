"""Corpus chunks: packing, document-boundary labels, and batches every method accepts."""

from __future__ import annotations

import random

import pytest
import torch

from constrained_unlearn.llm import CausalLMTerms, pad_collate
from constrained_unlearn.llm.corpus import (
    CorpusDataset,
    corpus_texts,
    pack_documents,
    tokenizer_adds_bos,
)
from constrained_unlearn.losses.masking import IGNORE_INDEX as X

BOS, EOS, PAD = 1, 2, 0


class WordTokenizer:
    """Whitespace tokenizer with fixed ids: every label below can be checked by hand."""

    def __init__(self, add_bos: bool = True) -> None:
        self.vocab = {"<pad>": PAD, "<bos>": BOS, "<eos>": EOS}
        self.add_bos = add_bos
        self.bos_token_id = BOS
        self.eos_token_id = EOS
        self.pad_token_id = PAD

    def _ids(self, text: str) -> list[int]:
        return [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]

    def __call__(self, texts, add_special_tokens: bool = True):
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        ids = [([BOS] if add_special_tokens and self.add_bos else []) + self._ids(t) for t in batch]
        return {"input_ids": ids[0] if single else ids}


def test_packed_chunks_by_hand():
    chunks, dropped = pack_documents(
        [[5, 6, 7], [8, 9]], 4, eos_token_id=EOS, bos_token_id=BOS, pack=True
    )
    # stream: BOS 5 6 7 EOS | BOS 8 9 EOS, cut every 4 tokens
    assert [c.input_ids for c in chunks] == [[BOS, 5, 6, 7], [EOS, BOS, 8, 9]]
    assert [c.labels for c in chunks] == [[X, 5, 6, 7], [X, X, 8, 9]]
    assert [c.documents for c in chunks] == [[0], [0, 1]]
    assert dropped == 1  # the last chunk [EOS] has no position that predicts anything


def test_boundary_without_bos_masks_the_first_token_of_the_next_document():
    chunks, dropped = pack_documents([[5, 6, 7], [8, 9]], 16, eos_token_id=EOS)
    assert dropped == 0 and len(chunks) == 1
    assert chunks[0].input_ids == [5, 6, 7, EOS, 8, 9, EOS]
    # EOS of document 0 sits at position 3; the token after it (8, first of document 1) is
    # not its target, while document 0's EOS is a target of its last token (7)
    assert chunks[0].labels == [X, 6, 7, EOS, X, 9, EOS]


def test_unpacked_documents_never_share_a_chunk():
    chunks, _ = pack_documents(
        [[5, 6, 7, 8, 9], [10]], 4, eos_token_id=EOS, bos_token_id=BOS, pack=False
    )
    assert [c.input_ids for c in chunks] == [[BOS, 5, 6, 7], [8, 9, EOS], [BOS, 10, EOS]]
    assert [c.labels for c in chunks] == [[X, 5, 6, 7], [X, 9, EOS], [X, 10, EOS]]
    assert [c.documents for c in chunks] == [[0], [0], [1]]


def test_drop_remainder_and_empty_documents():
    chunks, dropped = pack_documents(
        [[5, 6], [], [7, 8, 9]], 4, eos_token_id=EOS, bos_token_id=BOS, drop_remainder=True
    )
    # stream BOS 5 6 EOS BOS 7 8 9 EOS (the empty document is skipped): the 1-token tail goes
    assert [c.input_ids for c in chunks] == [[BOS, 5, 6, EOS], [BOS, 7, 8, 9]]
    assert dropped == 1
    with pytest.raises(ValueError, match="chunk_length"):
        pack_documents([[5]], 1, eos_token_id=EOS)


@pytest.mark.parametrize("bos", [BOS, None])
@pytest.mark.parametrize("pack", [True, False])
def test_no_target_is_predicted_across_a_document_boundary(bos, pack):
    rng = random.Random(0)
    docs = [[100 * (d + 1) + i for i in range(rng.randint(1, 9))] for d in range(25)]
    chunks, dropped = pack_documents(docs, 7, eos_token_id=EOS, bos_token_id=bos, pack=pack)

    def doc_of(token: int) -> int:
        return token // 100 - 1

    targets = 0
    for c in chunks:
        assert len(c.input_ids) == len(c.labels) <= 7
        assert c.labels[0] == X
        for t in range(1, len(c.input_ids)):
            if c.labels[t] == X:
                # only document starts are unsupervised inside a chunk
                assert c.input_ids[t] == BOS or c.input_ids[t - 1] == EOS
                continue
            targets += 1
            assert c.labels[t] == c.input_ids[t]
            prev, cur = c.input_ids[t - 1], c.input_ids[t]
            assert prev != EOS, "a document's EOS must not predict the next document"
            if cur == EOS:
                assert prev >= 100  # EOS is predicted from its own document's last token
            elif prev != BOS:
                assert doc_of(prev) == doc_of(cur)

    # every document token and EOS is a target (the first content token only when a BOS
    # precedes it), except the stream targets that open a chunk: nothing predicts those. A
    # dropped chunk here is a lone final EOS (a full chunk always holds a target)
    def opens_document(token: int) -> bool:
        return token == BOS or (bos is None and token >= 100 and token % 100 == 0)

    lost = sum(1 for c in chunks if not opens_document(c.input_ids[0])) + dropped
    expected = sum(len(d) + 1 for d in docs) - (0 if bos is not None else len(docs))
    assert targets == expected - lost


def test_corpus_dataset_items_and_counts():
    tok = WordTokenizer()
    rows = [{"text": "a b c"}, {"text": ""}, {"text": "d e"}]
    ds = CorpusDataset(rows, tok, chunk_length=4)
    assert tokenizer_adds_bos(tok) and ds.add_bos
    assert ds.num_documents == 2 and len(ds) == 2 and ds.num_dropped_chunks == 1
    a, b, c, d, e = (tok.vocab[w] for w in "abcde")
    assert ds[0]["input_ids"].tolist() == [BOS, a, b, c]
    assert ds[1]["input_ids"].tolist() == [EOS, BOS, d, e]
    assert ds[1]["labels"].tolist() == [X, X, d, e]
    assert ds.num_targets == 5 and ds.num_tokens == 8
    assert ds[0]["input_ids"].dtype == torch.long
    no_bos = CorpusDataset(["a b c", "d e"], WordTokenizer(add_bos=False), chunk_length=16)
    assert not no_bos.add_bos
    assert no_bos[0]["labels"].tolist() == [X, b, c, EOS, X, e, EOS]


def test_corpus_errors_name_the_fix():
    tok = WordTokenizer()
    with pytest.raises(KeyError, match="text_key"):
        CorpusDataset([{"body": "a"}], tok)
    with pytest.raises(ValueError, match="empty"):
        CorpusDataset([], tok)
    with pytest.raises(ValueError, match="every document"):
        CorpusDataset([""], tok)
    with pytest.raises(TypeError, match="single str"):
        corpus_texts("a b c")
    tok.eos_token_id = None
    with pytest.raises(ValueError, match="eos_token"):
        CorpusDataset(["a"], tok)


def test_corpus_batches_run_through_causal_lm_terms():
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = WordTokenizer()
    words = " ".join(f"w{i}" for i in range(30))
    forget = CorpusDataset([words, "x y z", words[:40]], tok, chunk_length=16)
    retain = CorpusDataset(["p q r s t u v", "m n o"], tok, chunk_length=16)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok.vocab) + 8,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=32,
        )
    )
    f_batch = pad_collate([forget[i] for i in range(len(forget))], PAD)
    r_batch = pad_collate([retain[i] for i in range(len(retain))], PAD)
    terms = CausalLMTerms(pad_token_id=PAD)(model, f_batch, r_batch)
    assert torch.isfinite(terms.objective) and terms.objective.requires_grad
    # every supervised token of every forget chunk is in the forget loss
    assert terms.metrics["forget_tokens"] == forget.num_targets
    assert terms.metrics["retain_tokens"] == retain.num_targets
