"""A byte-level BPE tokenizer trained on mini-TOFU's own text.

Byte-level, so any string (a user's prompt, a refusal) encodes without unknown tokens; trained
with ``tokenizers`` on every generated string (all configs and all columns, holdout included, so
holdout names are split as finely as trained names and a membership attack cannot win on
tokenisation alone) plus the prompt template. Trained only on this narrow text the merges
saturate: the vocabulary is at most ``vocab_size`` (the default data fills all 1,536).

Special tokens: ``<bos>`` (prepended by the post-processor when ``add_special_tokens=True``),
``<eos>`` and a distinct ``<pad>``. Deterministic: the same text gives the same vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["DEFAULT_VOCAB_SIZE", "SPECIAL_TOKENS", "iter_text", "train_tokenizer"]

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS, EOS, PAD)
DEFAULT_VOCAB_SIZE = 1536


def iter_text(
    data: Mapping[str, Sequence[Mapping]], prompt_format: str = "Question: {question}\nAnswer: "
) -> Iterator[str]:
    """Every string in every row of every config, lists flattened.

    Question columns (``question``, ``paraphrased_question``) are yielded inside
    ``prompt_format`` so that the template words ("Question:", "Answer:") become single tokens.
    """
    for name in sorted(data):
        for row in data[name]:
            for key, value in row.items():
                if isinstance(value, str):
                    yield prompt_format.format(question=value) if "question" in key else value
                elif isinstance(value, list | tuple):
                    yield from (v for v in value if isinstance(v, str))


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and wrap it for ``transformers``.

    Args:
        texts: training strings (iterated once).
        vocab_size: upper bound on the vocabulary, special tokens and the 256 byte symbols
            included; must exceed 256 + 3.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``bos_token="<bos>"`` (added in front of every
        encoded text unless ``add_special_tokens=False``), ``eos_token="<eos>"`` (never added
        automatically; [`encode_qa`][constrained_unlearn.llm.encode_qa] appends it to
        answers) and ``pad_token="<pad>"``.
    """
    if vocab_size <= 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must exceed {256 + len(SPECIAL_TOKENS)} (bytes + special tokens), "
            f"got {vocab_size}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=512,
        padding_side="right",
    )
