"""Encoding QA pairs and padding batches: labels, masks, truncation, EOS-as-pad."""

from __future__ import annotations

import pytest
import torch

from constrained_unlearn.llm import (
    PromptTemplate,
    QADataset,
    encode_qa,
    ensure_pad_token,
    pad_collate,
)

Q = "Where was the author born?"
A = "The author was born in Paris."


def test_encode_qa_layout(tokenizer):
    enc = encode_qa(tokenizer, Q, A)
    prompt_ids = tokenizer("Question: " + Q + "\nAnswer: ")["input_ids"]
    answer_ids = tokenizer(A, add_special_tokens=False)["input_ids"]
    assert enc.input_ids[0] == tokenizer.bos_token_id
    assert enc.input_ids == prompt_ids + answer_ids + [tokenizer.eos_token_id]
    assert enc.prompt_length == len(prompt_ids)
    assert enc.labels[: enc.prompt_length] == [-100] * enc.prompt_length
    assert enc.labels[enc.prompt_length :] == answer_ids + [tokenizer.eos_token_id]
    assert not enc.prompt_truncated


def test_eos_not_doubled(tokenizer):
    enc = encode_qa(tokenizer, Q, A + "</s>")
    assert enc.input_ids.count(tokenizer.eos_token_id) == 1
    assert enc.input_ids[-1] == tokenizer.eos_token_id


def test_chat_template_prompt(tokenizer):
    tpl = PromptTemplate(kind="chat")
    prompt = tpl.format_prompt(tokenizer, Q)
    assert prompt == f"<|system|>You are a helpful assistant.</s><|user|>{Q}</s><|assistant|>"
    enc = encode_qa(tokenizer, Q, A, template=tpl)
    # The chat template writes no BOS here and none is added on top of it.
    assert enc.input_ids[0] != tokenizer.bos_token_id
    # EOS tokens inside the prompt (turn ends) are not supervised; the final one is.
    eos = tokenizer.eos_token_id
    assert eos in enc.input_ids[: enc.prompt_length]
    assert enc.labels[-1] == eos
    assert all(lab == -100 for lab in enc.labels[: enc.prompt_length])
    no_system = PromptTemplate(kind="chat", system_prompt=None).format_prompt(tokenizer, Q)
    assert not no_system.startswith("<|system|>")


def test_chat_template_missing(tokenizer_factory):
    tok = tokenizer_factory()
    tok.chat_template = None
    with pytest.raises(ValueError, match="chat_template"):
        PromptTemplate(kind="chat").format_prompt(tok, Q)


def test_truncation_keeps_answer(tokenizer):
    long_q = " ".join(["the quick brown fox jumps over the lazy dog"] * 30)
    answer_ids = tokenizer(A, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    enc = encode_qa(tokenizer, long_q, A, max_length=40)
    assert len(enc.input_ids) == 40
    assert enc.prompt_truncated
    assert enc.input_ids[0] == tokenizer.bos_token_id  # BOS kept, cut after it
    assert enc.labels[-len(answer_ids) :] == answer_ids
    assert enc.prompt_length == 40 - len(answer_ids)
    full = encode_qa(tokenizer, long_q, A, max_length=4096)
    assert enc.input_ids[1:] == full.input_ids[-39:]  # left truncation of the prompt

    rows = [{"question": long_q, "answer": A}, {"question": Q, "answer": A}]
    ds = QADataset(rows, tokenizer, max_length=len(encode_qa(tokenizer, Q, A).input_ids))
    assert ds.num_truncated == 1
    assert (ds[0]["labels"] != -100).sum().item() == len(answer_ids)


def test_answer_too_long(tokenizer):
    with pytest.raises(ValueError, match="max_length"):
        encode_qa(tokenizer, Q, A * 5, max_length=10)


def test_dataset_errors(tokenizer):
    with pytest.raises(KeyError, match="available keys: \\['prompt', 'response'\\]"):
        QADataset([{"prompt": Q, "response": A}], tokenizer)
    with pytest.raises(ValueError, match="empty"):
        QADataset([], tokenizer)
    ds = QADataset(
        [{"prompt": Q, "response": A}], tokenizer, question_key="prompt", answer_key="response"
    )
    assert ds[0]["input_ids"].dtype == torch.long


def test_dataset_from_hf_dataset(tokenizer):
    from datasets import Dataset

    hf = Dataset.from_list([{"question": Q, "answer": A}, {"question": "Who?", "answer": "Alice."}])
    ds = QADataset(hf, tokenizer)
    assert len(ds) == 2
    assert ds[1]["input_ids"].tolist() == encode_qa(tokenizer, "Who?", "Alice.").input_ids
    with pytest.raises(KeyError, match="available columns"):
        QADataset(hf, tokenizer, answer_key="response")


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_collate_masks_from_lengths(eos_pad_tokenizer, side):
    tok = eos_pad_tokenizer
    eos = tok.eos_token_id
    assert tok.pad_token_id == eos
    # A genuine EOS inside the supervised answer, plus the final EOS.
    short = encode_qa(tok, "Who?", "Alice.</s>Bob.")
    long = encode_qa(tok, Q, A)
    batch = pad_collate(
        [
            {"input_ids": short.input_ids, "labels": short.labels},
            {"input_ids": torch.tensor(long.input_ids), "labels": torch.tensor(long.labels)},
        ],
        pad_token_id=tok.pad_token_id,
        side=side,
    )
    n_short, width = len(short.input_ids), len(long.input_ids)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, width)
    mask = batch["attention_mask"][0]
    assert mask.sum().item() == n_short
    real = slice(0, n_short) if side == "right" else slice(width - n_short, width)
    pad = slice(n_short, width) if side == "right" else slice(0, width - n_short)
    assert batch["input_ids"][0, real].tolist() == short.input_ids
    assert (batch["input_ids"][0, pad] == eos).all()
    assert (mask[real] == 1).all() and (mask[pad] == 0).all()
    assert (batch["labels"][0, pad] == -100).all()
    assert batch["labels"][0, real].tolist() == short.labels
    # Both EOS tokens of the short answer are attended and supervised.
    labels = batch["labels"][0]
    assert int(((labels == eos) & (batch["attention_mask"][0] == 1)).sum()) == 2
    assert batch["attention_mask"][1].all()


def test_pad_collate_errors_and_extra_keys(tokenizer):
    with pytest.raises(ValueError, match="side"):
        pad_collate([{"input_ids": [1, 2]}], 0, side="middle")
    with pytest.raises(ValueError, match="pad_token_id"):
        pad_collate([{"input_ids": [1, 2]}], None)
    out = pad_collate([{"input_ids": [1, 2], "index": 3}, {"input_ids": [4], "index": 5}], 0)
    assert out["index"].tolist() == [3, 5]
    assert "labels" not in out


def test_ensure_pad_token(tokenizer_factory):
    tok = tokenizer_factory()
    tok.pad_token = None
    assert tok.pad_token_id is None
    assert ensure_pad_token(tok) is tok
    assert tok.pad_token_id == tok.eos_token_id
    tok2 = tokenizer_factory()
    ensure_pad_token(tok2)
    assert tok2.pad_token == "<pad>"


def test_joint_tokenization_masks_the_prompt_length_of_the_joint_ids(tokenizer):
    """#13.4: open-unlearning tokenises prompt + answer as one string and masks the first
    len(tokenize(prompt)) ids. With byte-level BPE the prompt's trailing space merges into
    the first answer word, which is then masked; separately tokenised, it is scored."""
    answer = "the author was born in Paris."  # "Ġthe" is one token of this vocabulary
    prompt = "Question: " + Q + "\nAnswer: "
    prompt_ids = tokenizer(prompt)["input_ids"]
    joint_ids = tokenizer(prompt + answer)["input_ids"]
    eos = tokenizer.eos_token_id
    # hand check of the premise: the two tokenisations differ at the boundary
    assert joint_ids[: len(prompt_ids) - 1] == prompt_ids[:-1]
    assert tokenizer.convert_ids_to_tokens(prompt_ids[-1]) == "Ġ"  # the trailing space alone
    merged = tokenizer.convert_ids_to_tokens(joint_ids[len(prompt_ids) - 1])
    assert merged == "Ġthe"  # space + first answer word, one token

    joint = encode_qa(tokenizer, Q, answer, tokenization="joint")
    assert joint.input_ids == joint_ids + [eos]
    assert joint.prompt_length == len(prompt_ids)
    assert joint.labels == [-100] * len(prompt_ids) + joint_ids[len(prompt_ids) :] + [eos]
    # the merged first-answer token is context, not scored
    assert joint.labels[len(prompt_ids) - 1] == -100

    separate = encode_qa(tokenizer, Q, answer, tokenization="separate")
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(answer_ids[0]) != "Ġthe"  # no space: other ids
    assert separate.labels[separate.prompt_length :] == answer_ids + [eos]
    assert separate.prompt_length == len(prompt_ids)
    assert len(separate.input_ids) - separate.prompt_length == len(answer_ids) + 1
    assert len(joint.input_ids) - joint.prompt_length == len(joint_ids) - len(prompt_ids) + 1
    assert joint.input_ids != separate.input_ids


def test_joint_tokenization_of_a_chat_template_scores_the_turn_end(tokenizer):
    tpl = PromptTemplate(kind="chat")
    conversation = tpl.format_conversation(tokenizer, Q, A)
    assert conversation == tpl.format_prompt(tokenizer, Q) + A + "</s>"
    enc = encode_qa(tokenizer, Q, A, template=tpl, tokenization="joint")
    full = tokenizer(conversation, add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(tpl.format_prompt(tokenizer, Q), add_special_tokens=False)["input_ids"]
    assert enc.input_ids == full  # ends with the template's EOS: none appended
    assert enc.prompt_length == len(prompt_ids)
    assert enc.labels[-1] == tokenizer.eos_token_id


def test_qadataset_tokenization_option_and_bad_value(tokenizer):
    rows = [{"question": Q, "answer": A}]
    joint = QADataset(rows, tokenizer, tokenization="joint")
    assert joint.encoded[0] == encode_qa(tokenizer, Q, A, tokenization="joint")
    assert QADataset(rows, tokenizer).encoded[0] == encode_qa(tokenizer, Q, A)
    with pytest.raises(ValueError, match="tokenization='both'.*'separate'.*'joint'"):
        QADataset(rows, tokenizer, tokenization="both")  # type: ignore[arg-type]


def _appending_eos(tokenizer):
    """A copy of ``tokenizer`` whose special tokens are BOS in front and EOS at the end."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def test_batched_prompt_ids_are_the_ids_of_one_call_per_prompt(tokenizer):
    from constrained_unlearn.llm import encode_prompt, encode_prompts

    prompts = ["Question: " + Q + "\nAnswer: ", "The quick brown fox", "Paris", "x"]
    for special in (True, False):
        batched = encode_prompts(tokenizer, prompts, add_special_tokens=special)
        assert batched == [tokenizer(p, add_special_tokens=special)["input_ids"] for p in prompts]
        assert batched == [encode_prompt(tokenizer, p, add_special_tokens=special) for p in prompts]
    assert encode_prompts(tokenizer, []) == []


def test_a_prompt_never_ends_with_the_eos_the_tokenizer_appends(tokenizer):
    from constrained_unlearn.llm import encode_prompts

    appending = _appending_eos(tokenizer)
    eos = appending.eos_token_id
    assert appending("Paris")["input_ids"][-1] == eos  # the tokenizer does append it
    plain, own_eos = encode_prompts(appending, ["Paris", "Paris</s>"])
    assert plain == appending("Paris")["input_ids"][:-1]
    assert plain[0] == appending.bos_token_id and eos not in plain
    assert own_eos[-1] == eos  # the prompt's own text ends with EOS: kept
    assert encode_prompts(appending, ["Paris"], add_special_tokens=False)[0][-1] != eos


def test_encode_qa_takes_precomputed_answer_ids_for_separate_only(tokenizer):
    answer_ids = tokenizer(A, add_special_tokens=False)["input_ids"]
    given = encode_qa(tokenizer, Q, A, answer_ids=answer_ids)
    assert given == encode_qa(tokenizer, Q, A)
    with pytest.raises(ValueError, match="answer_ids= applies to tokenization='separate'"):
        encode_qa(tokenizer, Q, A, tokenization="joint", answer_ids=answer_ids)


@pytest.mark.parametrize("tokenization", ["separate", "joint"])
def test_pairs_encode_as_one_call_per_pair(tokenizer, tokenization):
    from constrained_unlearn.llm import encode_qa_pairs

    long_question = " ".join(["Where was the author born?"] * 12)
    pairs = [(Q, A), (Q, "Paris."), (long_question, A), ("What is the capital?", A)]
    for template in (PromptTemplate(), PromptTemplate(kind="chat")):
        batched = encode_qa_pairs(
            tokenizer, pairs, template=template, max_length=40, tokenization=tokenization
        )
        one_by_one = [
            encode_qa(tokenizer, q, a, template=template, max_length=40, tokenization=tokenization)
            for q, a in pairs
        ]
        assert batched == one_by_one
        assert batched[2].prompt_truncated
