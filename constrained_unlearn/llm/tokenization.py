"""Prompt formatting and question-answer encoding for causal LMs.

One QA pair becomes one training sequence. Two tokenisations exist (``tokenization=``):

``"separate"`` (the library's own, the default for training)
    the prompt and the answer are tokenised **separately** and concatenated::

        input_ids = [prompt ids (BOS first if the tokenizer adds one)] + [answer ids] + [EOS]
        labels    = [-100] * len(prompt ids)                            + [answer ids] + [EOS]

    so the boundary between them is exact, and generation sees the same prompt ids, so what
    is scored is what is generated from.

``"joint"`` (open-unlearning's and the original TOFU code's)
    prompt + answer are tokenised as **one** string ``s = prompt + answer`` (the chat
    template's whole conversation for ``kind="chat"``) and the first ``P = len(tokenize(prompt))``
    positions are masked::

        input_ids = tokenize(s) (+ [EOS] when it does not already end with EOS)
        labels    = [-100] * P + input_ids[P:]

    With a byte-level BPE the prompt's trailing space (``"Answer: "``) merges with the first
    answer word into one token (``"Ġword"``). That merged token sits at position ``P − 1``, so
    it is masked: the first answer word is context, not scored, and the model is scored on
    ids it would never produce after the generation prompt. Numbers computed this way are the
    ones open-unlearning's tables report (docs/evaluation.md gives both on mini-TOFU).

EOS is appended when the answer does not already end with it, and it carries loss: the model
must learn to stop. Labels are derived from the known prompt length, never by comparing ids with
the pad id (EOS is often the pad token and is a real, supervised token; see DESIGN.md,
invariant 4).

Too-long sequences are truncated **from the left of the prompt** (a leading BOS is kept), so
the answer supervision is never cut. An answer that cannot fit is an error, not silently
dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = [
    "TOKENIZATIONS",
    "EncodedQA",
    "PromptTemplate",
    "QADataset",
    "Tokenization",
    "check_tokenization",
    "encode_prompt",
    "encode_prompts",
    "encode_qa",
    "encode_qa_pairs",
    "ensure_pad_token",
    "token_ids",
]


@dataclass(frozen=True)
class PromptTemplate:
    """How a question is turned into the prompt string the model continues.

    Attributes:
        kind: ``"plain"`` formats with `plain_format` (base models, mini-TOFU);
            ``"chat"`` uses the tokenizer's own chat template with a generation prompt.
        plain_format: a ``str.format`` pattern with a ``{question}`` field.
        system_prompt: system message for ``"chat"`` (``None`` sends no system message, for
            templates such as Gemma's that reject one).
        chat_template_kwargs: extra keyword arguments for ``apply_chat_template`` (e.g.
            ``{"date_string": "10 Apr 2025"}`` to make Llama-3.x templates deterministic).
    """

    kind: Literal["plain", "chat"] = "plain"
    plain_format: str = "Question: {question}\nAnswer: "
    system_prompt: str | None = "You are a helpful assistant."
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in ("plain", "chat"):
            raise ValueError(f"PromptTemplate.kind must be 'plain' or 'chat', got {self.kind!r}")
        if self.kind == "plain" and "{question}" not in self.plain_format:
            raise ValueError(
                f"PromptTemplate.plain_format must contain '{{question}}', got {self.plain_format!r}"
            )

    def format_prompt(self, tokenizer: Any, question: str) -> str:
        """The prompt string for ``question`` (answer not included)."""
        if self.kind == "plain":
            return self.plain_format.format(question=question)
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                "PromptTemplate(kind='chat') needs a tokenizer with a chat_template; this one has "
                "none. Use PromptTemplate(kind='plain') or set tokenizer.chat_template."
            )
        messages = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=False,
            **dict(self.chat_template_kwargs),
        )

    def format_conversation(self, tokenizer: Any, question: str, answer: str) -> str:
        """The whole exchange as one string (``"joint"`` tokenisation): the prompt followed by
        the answer; for ``kind="chat"`` the chat template rendered with the assistant's
        answer as the last message (no generation prompt), template end-of-turn included."""
        if self.kind == "plain":
            return self.format_prompt(tokenizer, question) + answer
        self.format_prompt(tokenizer, question)  # same checks (chat_template present)
        messages = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
        return tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=False,
            tokenize=False,
            **dict(self.chat_template_kwargs),
        )

    @property
    def adds_special_tokens(self) -> bool:
        """Whether the prompt is tokenised with the tokenizer's special tokens (BOS).

        A chat template writes its own BOS text into the string, so it is tokenised without
        adding another; a plain prompt gets the tokenizer's usual BOS.
        """
        return self.kind == "plain"


Tokenization = Literal["separate", "joint"]
TOKENIZATIONS: tuple[str, ...] = ("separate", "joint")
"""The two ways of tokenising a QA pair (module docstring)."""


def check_tokenization(tokenization: str) -> str:
    """Return ``tokenization`` if it is ``"separate"`` or ``"joint"``; raise otherwise."""
    if tokenization not in TOKENIZATIONS:
        raise ValueError(
            f"tokenization={tokenization!r}; use 'separate' (prompt and answer tokenised apart, "
            "the library's own) or 'joint' (one string, the first len(tokenize(prompt)) tokens "
            "masked: open-unlearning's)"
        )
    return tokenization


def token_ids(tokenizer: Any, texts: Sequence[str], *, add_special_tokens: bool) -> list[list[int]]:
    """``[tokenizer(t, add_special_tokens=...)["input_ids"] for t in texts]`` in one batched
    tokenizer call (a fast tokenizer encodes the list in one pass; the ids are the same as one
    call per text, since nothing is padded or truncated)."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]
    return [list(ids) for ids in encoded]


def encode_prompts(
    tokenizer: Any, prompts: Sequence[str], *, add_special_tokens: bool = True
) -> list[list[int]]:
    """Token ids of each prompt string, BOS included if the tokenizer adds one, never a final
    EOS; one batched tokenizer call (`token_ids`).

    Some tokenizers append EOS when adding special tokens (``add_eos_token=True``); a prompt
    must not end the sequence, so such a trailing EOS is removed (unless the prompt's own text
    ends with the EOS token).
    """
    out = token_ids(tokenizer, prompts, add_special_tokens=add_special_tokens)
    eos = tokenizer.eos_token_id
    if not add_special_tokens or eos is None:
        return out
    ending = [i for i, ids in enumerate(out) if ids and ids[-1] == eos]
    plain = token_ids(tokenizer, [prompts[i] for i in ending], add_special_tokens=False)
    for i, ids in zip(ending, plain):
        if not ids or ids[-1] != eos:
            out[i] = out[i][:-1]
    return out


def encode_prompt(tokenizer: Any, prompt: str, *, add_special_tokens: bool = True) -> list[int]:
    """Token ids of one prompt string: `encode_prompts` of ``[prompt]``."""
    return encode_prompts(tokenizer, [prompt], add_special_tokens=add_special_tokens)[0]


@dataclass
class EncodedQA:
    """One encoded QA pair.

    Attributes:
        input_ids: ``[T]`` prompt ids followed by answer ids and EOS.
        labels: ``[T]``, ``-100`` on the prompt, the token id on answer tokens and EOS.
        prompt_length: number of prompt tokens kept (after any truncation).
        prompt_truncated: whether prompt tokens were dropped to fit ``max_length``.
    """

    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    prompt_truncated: bool


def encode_qa(
    tokenizer: Any,
    question: str,
    answer: str,
    *,
    template: PromptTemplate | None = None,
    max_length: int = 512,
    tokenization: Tokenization = "separate",
    prompt_ids: Sequence[int] | None = None,
    answer_ids: Sequence[int] | None = None,
) -> EncodedQA:
    """Encode a QA pair for teacher-forced training or scoring (see the module docstring).

    Args:
        tokenizer: a Hugging Face tokenizer with an EOS token.
        question: the raw question (formatted by ``template``).
        answer: the raw answer; supervised in full, plus EOS.
        template: prompt format; ``PromptTemplate()`` (plain) by default.
        max_length: maximum total length ``T``. The prompt (the masked context) is cut from
            the left (after a leading BOS) until the sequence fits.
        tokenization: ``"separate"`` (default) or ``"joint"`` (module docstring).
        prompt_ids: the prompt's ids if already computed ([`encode_prompt`][constrained_unlearn.llm.encode_prompt] of the
            formatted prompt); saves one tokenizer call per answer when a question has many.
        answer_ids: the answer's ids if already computed (``tokenizer(answer,
            add_special_tokens=False)``, e.g. one batched `token_ids` call for many answers);
            ``"separate"`` only, since ``"joint"`` tokenises prompt and answer as one string.

    Raises:
        ValueError: if the tokenizer has no EOS token, or if the answer plus EOS leaves no room
            for a single prompt token within ``max_length`` (the first answer token would have
            no position predicting it), or if ``answer_ids`` is given with ``"joint"``.
    """
    template = template if template is not None else PromptTemplate()
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(
            "the tokenizer has no eos_token: set tokenizer.eos_token before encoding, "
            "answers must end with EOS"
        )
    if max_length < 2:
        raise ValueError(f"max_length must be ≥ 2, got {max_length}")

    check_tokenization(tokenization)
    if answer_ids is not None and tokenization != "separate":
        raise ValueError(
            "answer_ids= applies to tokenization='separate' only: 'joint' tokenises the prompt "
            "and the answer as one string; drop answer_ids"
        )

    special = template.adds_special_tokens
    if prompt_ids is None:
        prompt = template.format_prompt(tokenizer, question)
        prompt_ids = encode_prompt(tokenizer, prompt, add_special_tokens=special)
    context = list(prompt_ids)
    if tokenization == "separate":
        if answer_ids is None:
            answer_ids = token_ids(tokenizer, [answer], add_special_tokens=False)[0]
        target = list(answer_ids)
        if not target or target[-1] != eos:
            target.append(eos)
    else:
        text = template.format_conversation(tokenizer, question, answer)
        full = list(tokenizer(text, add_special_tokens=special)["input_ids"])
        if not full or full[-1] != eos:
            full.append(eos)
        # mask the first len(tokenize(prompt)) ids, whatever they became in the joint string
        # (at least one id stays scored: the EOS)
        cut = min(len(context), len(full) - 1)
        context, target = full[:cut], full[cut:]

    if len(target) + 1 > max_length:
        raise ValueError(
            f"the answer alone is {len(target)} tokens (EOS included) and does not fit "
            f"max_length={max_length} with at least one prompt token; raise max_length or "
            f"shorten the answer (starts {answer[:60]!r})"
        )

    truncated = False
    budget = max_length - len(target)
    if len(context) > budget:
        truncated = True
        bos = tokenizer.bos_token_id
        keep_bos = bos is not None and context[0] == bos and budget >= 2
        if keep_bos:
            context = [bos] + context[len(context) - (budget - 1) :]
        else:
            context = context[len(context) - budget :]

    input_ids = context + target
    labels = [IGNORE_INDEX] * len(context) + target
    return EncodedQA(
        input_ids=input_ids,
        labels=labels,
        prompt_length=len(context),
        prompt_truncated=truncated,
    )


def encode_qa_pairs(
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    template: PromptTemplate | None = None,
    max_length: int = 512,
    tokenization: Tokenization = "separate",
) -> list[EncodedQA]:
    """[`encode_qa`][constrained_unlearn.llm.encode_qa] of every ``(question, answer)`` pair,
    each distinct prompt (and, for ``"separate"``, each distinct answer) tokenised once, in one
    batched tokenizer call; the result equals one `encode_qa` call per pair."""
    template = template if template is not None else PromptTemplate()
    check_tokenization(tokenization)
    questions = list(dict.fromkeys(q for q, _ in pairs))
    prompts = encode_prompts(
        tokenizer,
        [template.format_prompt(tokenizer, q) for q in questions],
        add_special_tokens=template.adds_special_tokens,
    )
    prompt_of = dict(zip(questions, prompts))
    answer_of: dict[str, list[int]] = {}
    if tokenization == "separate":
        answers = list(dict.fromkeys(a for _, a in pairs))
        answer_of = dict(zip(answers, token_ids(tokenizer, answers, add_special_tokens=False)))
    return [
        encode_qa(
            tokenizer,
            question,
            answer,
            template=template,
            max_length=max_length,
            tokenization=tokenization,
            prompt_ids=prompt_of[question],
            answer_ids=answer_of.get(answer),
        )
        for question, answer in pairs
    ]


def _check_rows(rows: Any, keys: Sequence[str]) -> int:
    """Validate that ``rows`` is non-empty and has ``keys``; return its length."""
    try:
        n = len(rows)
    except TypeError as exc:
        raise TypeError(
            f"rows must be a list of dicts or a datasets.Dataset, got {type(rows).__name__}"
        ) from exc
    if n == 0:
        raise ValueError("rows is empty: a QADataset needs at least one question-answer pair")
    columns = getattr(rows, "column_names", None)
    if columns is not None:
        available = list(columns)
        missing = [k for k in keys if k not in available]
        if missing:
            raise KeyError(
                f"column(s) {missing} not found; available columns: {available}. "
                "Pass question_key=/answer_key= to name the right ones."
            )
        return n
    for i in range(n):
        row = rows[i]
        if not isinstance(row, Mapping):
            raise TypeError(f"rows[{i}] is a {type(row).__name__}, expected a dict")
        missing = [k for k in keys if k not in row]
        if missing:
            raise KeyError(
                f"rows[{i}] lacks key(s) {missing}; available keys: {sorted(row)}. "
                "Pass question_key=/answer_key= to name the right ones."
            )
    return n


class QADataset(torch.utils.data.Dataset):
    """A map-style dataset of encoded QA pairs, ready for [`pad_collate`][constrained_unlearn.llm.pad_collate].

    Every row is encoded once, at construction, with [`encode_qa`][constrained_unlearn.llm.encode_qa].

    Args:
        rows: a list of dicts or a ``datasets.Dataset``.
        tokenizer: Hugging Face tokenizer (EOS required).
        question_key: field name of the question.
        answer_key: field name of the answer.
        template: prompt format (plain by default).
        max_length: maximum sequence length.
        tokenization: ``"separate"`` (default, the library's own) or ``"joint"``
            (open-unlearning's: train on the ids its evaluation scores; see the module
            docstring).

    Attributes:
        encoded: the [`EncodedQA`][constrained_unlearn.llm.EncodedQA] of every row.
        num_truncated: how many rows had their prompt truncated to fit ``max_length``.

    ``dataset[i]`` is ``{"input_ids": LongTensor[T_i], "labels": LongTensor[T_i]}``.
    """

    def __init__(
        self,
        rows: Any,
        tokenizer: Any,
        *,
        question_key: str = "question",
        answer_key: str = "answer",
        template: PromptTemplate | None = None,
        max_length: int = 512,
        tokenization: Tokenization = "separate",
    ) -> None:
        n = _check_rows(rows, (question_key, answer_key))
        self.template = template if template is not None else PromptTemplate()
        self.max_length = max_length
        self.tokenization = check_tokenization(tokenization)
        pairs = [(str(rows[i][question_key]), str(rows[i][answer_key])) for i in range(n)]
        self.encoded: list[EncodedQA] = encode_qa_pairs(
            tokenizer,
            pairs,
            template=self.template,
            max_length=max_length,
            tokenization=tokenization,
        )
        self.num_truncated: int = sum(e.prompt_truncated for e in self.encoded)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.encoded[i]
        return {
            "input_ids": torch.tensor(item.input_ids, dtype=torch.long),
            "labels": torch.tensor(item.labels, dtype=torch.long),
        }


def ensure_pad_token(tokenizer: Any) -> Any:
    """Give the tokenizer a pad token if it has none, reusing EOS; returns the tokenizer.

    Reusing EOS as pad is safe in this library because attention and loss masks are built from
    sequence lengths ([`pad_collate`][constrained_unlearn.llm.pad_collate]), never from
    ``input_ids != pad_token_id``; a genuine EOS inside a sequence stays attended and
    supervised. The tokenizer is modified in place.

    Raises:
        ValueError: if the tokenizer has neither a pad nor an EOS token.
    """
    if tokenizer.pad_token_id is not None:
        return tokenizer
    if tokenizer.eos_token is None:
        raise ValueError(
            "the tokenizer has neither a pad_token nor an eos_token; set one, e.g. "
            "tokenizer.add_special_tokens({'pad_token': '<pad>'}) and resize the embeddings"
        )
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
