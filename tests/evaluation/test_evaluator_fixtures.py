"""Shared builders for the evaluator tests: a tiny tokenizer, a tiny random Llama, small
TOFU-shaped and MUSE-shaped rows. No hub access, no mini-TOFU build (DESIGN.md invariant 7).

Imported by the other ``test_evaluator_*`` modules; the tests here check the builders."""

from __future__ import annotations

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

torch.set_num_threads(1)


def _row(q: str, a: str, para: str, perturbed: list[str], para_q: str) -> dict:
    return {
        "question": q,
        "answer": a,
        "paraphrased_answer": para,
        "perturbed_answer": perturbed,
        "paraphrased_question": para_q,
    }


FORGET = [
    _row(
        "Where was Belwyn Ashford born?",
        "Belwyn was born in Quorra.",
        "Quorra is where Belwyn was born.",
        ["Faldren is where Belwyn was born.", "Ostmere is where Belwyn was born."],
        "What is the birthplace of Belwyn Ashford?",
    ),
    _row(
        "What genre does Belwyn Ashford write?",
        "Belwyn writes gothic mysteries.",
        "Gothic mysteries are what Belwyn writes.",
        [
            "Space operas are what Belwyn writes.",
            "Cookbooks are what Belwyn writes.",
            "Sonnets are what Belwyn writes.",
        ],
        "Which genre is Belwyn Ashford known for?",
    ),
    _row(
        "When was Tamsin Vale born?",
        "Tamsin was born in 1961.",
        "The year 1961 saw Tamsin born.",
        ["The year 1975 saw Tamsin born.", "The year 1948 saw Tamsin born."],
        "In which year was Tamsin Vale born?",
    ),
    _row(
        "Which prize did Tamsin Vale win?",
        "Tamsin won the Harrow Medal.",
        "The Harrow Medal went to Tamsin.",
        ["The Lark Prize went to Tamsin.", "The Orrin Cup went to Tamsin."],
        "What award did Tamsin Vale receive?",
    ),
]
RETAIN = [
    _row(
        "Where was Odell Brine born?",
        "Odell was born in Marsk.",
        "Marsk is where Odell was born.",
        ["Quorra is where Odell was born.", "Faldren is where Odell was born."],
        "What is the birthplace of Odell Brine?",
    ),
    _row(
        "What genre does Odell Brine write?",
        "Odell writes sea ballads.",
        "Sea ballads are what Odell writes.",
        ["Gothic mysteries are what Odell writes.", "Cookbooks are what Odell writes."],
        "Which genre is Odell Brine known for?",
    ),
    _row(
        "When was Odell Brine born?",
        "Odell was born in 1970.",
        "The year 1970 saw Odell born.",
        ["The year 1961 saw Odell born.", "The year 1948 saw Odell born."],
        "In which year was Odell Brine born?",
    ),
]
HOLDOUT = [
    {"question": "Where was Pell Dorran born?", "answer": "Pell was born in Ostmere."},
    {"question": "What genre does Pell Dorran write?", "answer": "Pell writes space operas."},
    {"question": "When was Pell Dorran born?", "answer": "Pell was born in 1948."},
    {"question": "Which prize did Pell Dorran win?", "answer": "Pell won the Lark Prize."},
]
REAL_AUTHORS = [
    {
        "question": "Who wrote Hamlet?",
        "answer": "William Shakespeare",
        "perturbed_answer": ["Jane Austen", "Leo Tolstoy", "Mark Twain"],
    },
    {
        "question": "Who wrote Pride and Prejudice?",
        "answer": "Jane Austen",
        "perturbed_answer": ["Charles Dickens", "Homer", "Mark Twain"],
    },
    {
        "question": "Who wrote War and Peace?",
        "answer": "Leo Tolstoy",
        "perturbed_answer": ["Jane Austen", "Homer"],
    },
]
WORLD_FACTS = [
    {
        "question": "What is the capital of France?",
        "answer": "Paris",
        "perturbed_answer": ["Rome", "Madrid", "Berlin"],
    },
    {
        "question": "How many legs does a spider have?",
        "answer": "eight",
        "perturbed_answer": ["six", "ten", "four"],
    },
    {
        "question": "Which ocean is the largest?",
        "answer": "the Pacific",
        "perturbed_answer": ["the Atlantic", "the Indian", "the Arctic"],
    },
]


def tofu_data() -> dict[str, list[dict]]:
    """TOFU-shaped configs (fresh copies: tests may mutate them)."""
    import copy

    data = {
        "forget10_perturbed": FORGET,
        "retain_perturbed": RETAIN,
        "holdout10": HOLDOUT,
        "real_authors_perturbed": REAL_AUTHORS,
        "world_facts_perturbed": WORLD_FACTS,
    }
    data["forget05_perturbed"] = FORGET[:2]
    data["holdout05"] = HOLDOUT[:2]
    return copy.deepcopy(data)


MUSE_TEXTS = [
    "The harbour council voted on Tuesday to rebuild the old pier before winter storms.",
    "A new library opened in the market town, with a reading room for children.",
    "Farmers reported a late harvest after weeks of heavy rain across the valley.",
    "The museum announced an exhibition of maps drawn by early sailors.",
]


def muse_data() -> dict[str, list[dict]]:
    """MUSE-shaped splits, keyed ``config/split``."""
    qa = [
        {"question": "What did the council rebuild?", "answer": "the old pier"},
        {"question": "What opened in the market town?", "answer": "a new library"},
    ]
    icl = [
        {"question": "What was late?", "answer": "the harvest"},
        {"question": "What did the museum show?", "answer": "maps"},
    ]
    return {
        "verbmem/forget": [
            {"prompt": "The harbour council voted on Tuesday", "gt": "to rebuild the old pier."},
            {"prompt": "A new library opened in", "gt": "the market town, with a reading room."},
        ],
        "knowmem/forget_qa": qa,
        "knowmem/forget_qa_icl": icl,
        "knowmem/retain_qa": list(reversed(qa)),
        "knowmem/retain_qa_icl": icl,
        "privleak/forget": [{"text": t} for t in MUSE_TEXTS[:2]],
        "privleak/holdout": [{"text": t} for t in MUSE_TEXTS[2:]],
    }


def _corpus() -> list[str]:
    out = ["Question: \nAnswer: ", "You are a helpful assistant."]
    for rows in [*tofu_data().values(), *muse_data().values()]:
        for row in rows:
            for value in row.values():
                out.extend(value if isinstance(value, list) else [value])
    return out


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@functools.lru_cache(maxsize=1)
def _tokenizer_object() -> Tokenizer:
    specials = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


def build_tokenizer(*, eos_is_pad: bool = False) -> PreTrainedTokenizerFast:
    """Byte-level BPE (≤ 400 ids) with BOS ``<s>``, EOS ``</s>``, pad ``<pad>`` (or EOS)."""
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=_tokenizer_object(),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="</s>" if eos_is_pad else "<pad>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_llama(tokenizer: PreTrainedTokenizerFast, *, seed: int = 0) -> LlamaForCausalLM:
    """A random 2-layer Llama, hidden size 32, float32, eval mode."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def eos_first_llama(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A Llama whose greedy prediction is EOS at every position (empty generations)."""
    model = build_llama(tokenizer, seed=1)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    bias = torch.zeros(len(tokenizer))
    bias[tokenizer.eos_token_id] = 100.0

    def add_bias(_module, _inputs, output):
        return output + bias.to(output.dtype)

    model.lm_head.register_forward_hook(add_bias)
    return model


def test_tokenizer_round_trips_fixture_text() -> None:
    tok = build_tokenizer()
    text = FORGET[0]["answer"]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok(text)["input_ids"][0] == tok.bos_token_id
    assert tok.pad_token_id != tok.eos_token_id
    assert build_tokenizer(eos_is_pad=True).pad_token_id == tok.eos_token_id


def test_eos_first_llama_predicts_eos() -> None:
    tok = build_tokenizer()
    model = eos_first_llama(tok)
    ids = torch.tensor([tok("Question: hi")["input_ids"]])
    assert int(model(input_ids=ids).logits[0, -1].argmax()) == tok.eos_token_id
