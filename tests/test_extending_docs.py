"""The examples of docs/extending.md run as written (a solver, a method, a metric)."""

import re
import warnings
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _blocks() -> dict[str, str]:
    """``{section title: python code}`` of the page's ``## …`` sections."""
    out: dict[str, str] = {}
    for section in re.split(r"^## ", PAGE.read_text(), flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        code = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        if code:
            out[title] = "\n".join(code)
    return out


def _run(title: str) -> dict:
    namespace: dict = {"__name__": f"extending_{title.replace(' ', '_')}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(_blocks()[title], f"{PAGE}:{title}", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_page_has_a_solver_a_method_and_a_metric():
    assert {"A solver", "A method", "A metric"} <= set(_blocks())


def test_a_new_solver_runs_by_name_without_an_engine_change():
    from constrained_unlearn.solvers import SOLVERS

    ns = _run("A solver")
    try:
        history = ns["history"]
        assert len(history) == 6  # 3 epochs × 2 steps (16 forget items, batch 8)
        lam = 1.0
        for record in history:  # the scheme's update, recomputed by hand from the logs
            lam = max(0.0, lam + 2.0 * record.violations["retain"])
            assert record.multipliers["retain"] == pytest.approx(lam, abs=1e-5)
    finally:
        SOLVERS.pop("dual-first", None)


def test_a_new_method_is_selectable_by_name_and_alias(tokenizer_and_model):
    from constrained_unlearn.methods import ALIASES, METHODS, get_method

    ns = _run("A method")
    try:
        method = ns["method"]
        assert method.floor == 5.0 and get_method("clipped-ascent").name == "clipped-ascent"
        tokenizer, model, forget_batch, retain_batch = tokenizer_and_model
        nll = float(
            get_method("grad-ascent")
            .setup(model)
            .terms_fn(model, forget_batch, retain_batch)
            .objective
        )
        for floor in (0.5, 100.0):
            terms = (
                get_method("cga", floor=floor)
                .setup(model, tokenizer)
                .terms_fn(model, forget_batch, retain_batch)
            )
            assert float(terms.objective) == pytest.approx(max(nll, -floor), rel=1e-6)
        ns["register_method"](ns["ClippedAscent"])  # registering the same class again: a no-op
        other = type("OtherClipped", (ns["ClippedAscent"],), {})  # another class, same name
        with pytest.raises(ValueError, match="already taken"):
            ns["register_method"](other)
    finally:
        METHODS.pop("clipped-ascent", None)
        ALIASES.pop("cga", None)


def test_a_new_metric_is_a_row_of_the_table():
    import math
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "evaluation"))
    from test_evaluator_fixtures import build_llama, build_tokenizer, tofu_data

    ns = _run("A metric")
    tokenizer = build_tokenizer()
    model = build_llama(tokenizer)
    evaluator = ns["MyTofuEvaluator"](
        model, tokenizer, tofu_data(), metrics=["forget_answer_nll"], max_new_tokens=4
    )
    results = evaluator.evaluate()
    assert "forget_Q_A_Prob" in results  # the dependency ran first
    probs = [v["prob"] for v in results["forget_Q_A_Prob"]["value_by_index"].values()]
    # P_i = exp(−ℓ̄_i)  ⇒  mean ℓ̄ = mean(−log P_i)
    expected = sum(-math.log(p) for p in probs) / len(probs)
    assert results["forget_answer_nll"]["agg_value"] == pytest.approx(expected, rel=1e-6)


@pytest.fixture
def tokenizer_and_model():
    """A tiny random Llama and one forget/retain micro-batch pair of mini-TOFU-like QA rows."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from constrained_unlearn.llm import PadCollator, QADataset

    words = "who wrote the book of rain answer is mira lenn a poet from oslo".split()
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "</s>", *words])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>", eos_token="</s>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config)
    rows = [
        {"question": "who wrote the book of rain", "answer": "mira lenn"},
        {"question": "who is mira lenn", "answer": "a poet from oslo"},
    ]
    collate = PadCollator(tokenizer.pad_token_id, "right")
    data = QADataset(rows, tokenizer)
    batch = collate([data[i] for i in range(len(data))])
    return tokenizer, model, batch, batch
