"""UNDIAL, CE-U, SatImp, WGA and AltPO: hand-computed losses, method values on a tiny Llama,
and short runs on a tiny mini-TOFU through the engine (paper weighting and constrained)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from constrained_unlearn.benchmarks.minitofu.generator import generate_minitofu
from constrained_unlearn.engine import EngineConfig, PairedData, UnlearningEngine
from constrained_unlearn.llm import PadCollator, QADataset, pad_collate
from constrained_unlearn.losses import (
    ceu_loss,
    satimp_loss,
    soft_cross_entropy,
    undial_loss,
    wga_loss,
)
from constrained_unlearn.methods import (
    CEU,
    UNDIAL,
    WGA,
    AltPO,
    SatImp,
    alternates_from_rows,
    get_method,
    load_alternates,
)
from constrained_unlearn.methods.distillation import drop_first_answer_positions
from constrained_unlearn.recipes.config import RunConfig
from constrained_unlearn.recipes.llm_unlearn import setup_method

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")

NEW = ["undial", "ce-u", "satimp", "wga", "altpo"]


# -- the losses against hand computations --------------------------------------------------------
def _softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def _one_position(z: list[float]) -> torch.Tensor:
    return torch.tensor([[z]], requires_grad=True)  # [B=1, T=1, V]


ONE = torch.tensor([[True]])


def test_wga_and_satimp_hand_values():
    z, y = [1.0, 2.0, 0.5], 1
    p = _softmax(z)[y]
    logits = _one_position(z)
    target = torch.tensor([[y]])
    # WGA: sg(p^β) log p, one position
    for beta in (0.0, 1.0, 2.0):
        value = wga_loss(logits, target, ONE, beta=beta)
        assert float(value) == pytest.approx(p**beta * math.log(p), rel=1e-6)
    # gradient in z: sg(w) · ∂log p/∂z = w (e_y − softmax(z))
    (grad,) = torch.autograd.grad(wga_loss(logits, target, ONE, beta=1.0), [logits])
    expected = [p * ((k == y) - q) for k, q in enumerate(_softmax(z))]
    assert grad[0, 0].tolist() == pytest.approx(expected, rel=1e-5)
    # SatImp: sg(p^β₁ (1 − p)^β₂) log p
    value = satimp_loss(logits, target, ONE, beta1=5.0, beta2=1.0)
    assert float(value) == pytest.approx(p**5 * (1 - p) * math.log(p), rel=1e-6)
    # a masked position contributes nothing; the mean is over supervised positions
    two = torch.tensor([[z, [9.0, -9.0, 0.0]]])
    mask = torch.tensor([[True, False]])
    assert float(wga_loss(two, torch.tensor([[y, 0]]), mask, beta=1.0)) == pytest.approx(
        p * math.log(p), rel=1e-6
    )
    with pytest.raises(ValueError, match="beta1 must be"):
        satimp_loss(logits, target, ONE, beta1=-1.0)


def test_ceu_hand_value_and_gradient():
    z, y = [1.0, 2.0, 3.0], 2
    q = _softmax([1.0, 2.0, -math.inf])  # [e/(e+e²), e²/(e+e²), 0]
    assert q[2] == 0.0
    log_p = [math.log(v) for v in _softmax(z)]
    expected = -sum(qk * lk for qk, lk in zip(q, log_p))
    logits = _one_position(z)
    value = ceu_loss(logits, torch.tensor([[y]]), ONE)
    assert float(value) == pytest.approx(expected, rel=1e-6)
    (grad,) = torch.autograd.grad(value, [logits])  # softmax(z) − q
    assert grad[0, 0].tolist() == pytest.approx([a - b for a, b in zip(_softmax(z), q)], rel=1e-5)


def test_undial_hand_value():
    ref, z, y, beta = [0.0, 1.0, 2.0], [1.0, 0.0, 0.0], 2, 1.0
    q = _softmax([0.0, 1.0, 2.0 - beta])
    log_p = [math.log(v) for v in _softmax(z)]
    expected = -sum(qk * lk for qk, lk in zip(q, log_p))
    value = undial_loss(_one_position(z), torch.tensor([[ref]]), torch.tensor([[y]]), ONE, beta)
    assert float(value) == pytest.approx(expected, rel=1e-6)
    # β = 0 and θ = θ_ref: the loss is the entropy of the model's distribution
    p = _softmax(z)
    entropy = -sum(v * math.log(v) for v in p)
    same = undial_loss(_one_position(z), torch.tensor([[z]]), torch.tensor([[0]]), ONE, 0.0)
    assert float(same) == pytest.approx(entropy, rel=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        undial_loss(_one_position(z), torch.zeros(1, 1, 4), torch.tensor([[0]]), ONE)


def test_soft_cross_entropy_ignores_zero_target_mass():
    logits = torch.tensor([[0.0, -math.inf, 1.0]])
    q = torch.tensor([[0.5, 0.0, 0.5]])
    log_p = torch.log_softmax(torch.tensor([0.0, 1.0]), -1)
    assert float(soft_cross_entropy(logits, q)) == pytest.approx(float(-log_p.mean()), rel=1e-6)


def test_drop_first_answer_positions():
    mask = torch.tensor([[False, True, True, True], [True, True, False, False]])
    assert drop_first_answer_positions(mask, 1).tolist() == [
        [False, False, True, True],
        [False, True, False, False],
    ]
    assert torch.equal(drop_first_answer_positions(mask, 0), mask)


# -- the methods on a tiny model: hand-computed from per-example forwards ------------------------
@pytest.fixture(scope="module")
def tofu():
    return generate_minitofu(0, "tiny")


@pytest.fixture(scope="module")
def tokenizer(tofu):
    rows = tofu["full"] + tofu["forget01_perturbed"]
    corpus = [r["question"] + " " + r["answer"] for r in rows]
    corpus += [a for r in tofu["forget01_perturbed"] for a in r["perturbed_answer"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def tiny_llama(tokenizer, seed: int = 0) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


@pytest.fixture(scope="module")
def data(tofu, tokenizer):
    forget = QADataset(tofu["forget01"], tokenizer)
    retain = QADataset(tofu["retain99"][:6], tokenizer)
    pad = tokenizer.pad_token_id
    fb = pad_collate([forget[i] for i in range(len(forget))], pad)
    rb = pad_collate([retain[i] for i in range(len(retain))], pad)
    return forget, retain, fb, rb


@pytest.fixture(scope="module")
def alternates(tofu):
    return alternates_from_rows(tofu["forget01_perturbed"])


def per_example(model, dataset):
    """``[(logits [n, V], targets [n])]`` at the answer-predicting positions, one unpadded
    example at a time."""
    out = []
    with torch.no_grad():
        for enc in dataset.encoded:
            logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0]
            positions = torch.arange(enc.prompt_length - 1, len(enc.input_ids) - 1)
            out.append(
                (logits[positions].double(), torch.tensor(enc.input_ids[enc.prompt_length :]))
            )
    return out


def _perturb(model, scale=0.05, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def test_wga_satimp_values_on_the_model(tokenizer, data):
    forget, _, fb, rb = data
    model = tiny_llama(tokenizer)
    rows = per_example(model, forget)
    log_p = torch.cat([torch.log_softmax(lg, -1)[torch.arange(len(t)), t] for lg, t in rows])
    p = log_p.exp()
    wga = get_method("wga", beta=0.7).setup(model, tokenizer).terms_fn(model, fb, rb)
    assert float(wga.objective) == pytest.approx(float((p**0.7 * log_p).mean()), rel=1e-5)
    sat = get_method("satimp", beta1=2.0, beta2=3.0).setup(model, tokenizer)
    value = sat.terms_fn(model, fb, rb).objective
    assert float(value) == pytest.approx(float((p**2 * (1 - p) ** 3 * log_p).mean()), rel=1e-5)


def test_ceu_value_on_the_model_skips_first_answer_tokens(tokenizer, data):
    forget, _, fb, rb = data
    model = tiny_llama(tokenizer)
    for skip in (0, 1, 2):
        per_position = []
        for logits, targets in per_example(model, forget):
            for z, y in list(zip(logits, targets))[skip:]:
                q = torch.softmax(z.clone().index_fill(0, y, -math.inf), -1)
                per_position.append(-(q * torch.log_softmax(z, -1)).sum())
        expected = torch.stack(per_position).mean()
        setup = get_method("ce-u", ignore_first_n_answer_tokens=skip).setup(model, tokenizer)
        value = setup.terms_fn(model, fb, rb).objective
        assert float(value) == pytest.approx(float(expected), rel=1e-5)
        assert setup.reference_model is None
    with pytest.raises(ValueError, match="ignore_first_n_answer_tokens=99"):
        get_method("ce-u", ignore_first_n_answer_tokens=99).setup(model).terms_fn(model, fb, rb)


def test_undial_value_on_the_model(tokenizer, data):
    forget, _, fb, rb = data
    model = tiny_llama(tokenizer)
    beta = 3.0
    setup = get_method("undial", beta=beta).setup(model, tokenizer)
    _perturb(model)
    per_position = []
    for (z, y), (z_ref, _) in zip(
        per_example(model, forget), per_example(setup.reference_model, forget)
    ):
        q = torch.softmax(z_ref - beta * torch.nn.functional.one_hot(y, z.shape[-1]), -1)
        per_position.append(-(q * torch.log_softmax(z, -1)).sum(-1))
    expected = torch.cat(per_position).mean()
    assert float(setup.terms_fn(model, fb, rb).objective) == pytest.approx(
        float(expected), rel=1e-5
    )


def test_altpo_value_at_reference_and_after_a_change(tokenizer, data, tofu, alternates):
    forget, _, fb, rb = data
    model = tiny_llama(tokenizer)
    beta = 0.2
    setup = get_method("altpo", beta=beta, alternates=alternates).setup(model, tokenizer)
    terms = setup.terms_fn(model, fb, rb)
    assert float(terms.objective) == pytest.approx(2 / beta * math.log(2), rel=1e-5)
    assert float(terms.metrics["dpo_margin"]) == pytest.approx(0.0, abs=1e-4)
    assert math.isfinite(float(terms.metrics["alternate_nll"]))
    _perturb(model)
    # the alternate each row gets: alternates of its answer, index crc32(prompt ids) mod K
    from constrained_unlearn.methods.preference import prompt_key

    chosen_rows = []
    for row, enc in zip(tofu["forget01"], forget.encoded):
        options = alternates[row["answer"]]
        pick = options[prompt_key(enc.input_ids[: enc.prompt_length]) % len(options)]
        chosen_rows.append({"question": row["question"], "answer": pick})
    chosen = QADataset(chosen_rows, tokenizer)

    def sums(m, ds):
        return [
            float(torch.log_softmax(lg, -1)[torch.arange(len(t)), t].sum())
            for lg, t in per_example(m, ds)
        ]

    ref = setup.reference_model
    deltas = [
        (w - w_ref) - (lose - lose_ref)
        for w, w_ref, lose, lose_ref in zip(
            sums(model, chosen), sums(ref, chosen), sums(model, forget), sums(ref, forget)
        )
    ]
    expected = -(2 / beta) * sum(math.log(1 / (1 + math.exp(-beta * d))) for d in deltas) / 4
    assert float(setup.terms_fn(model, fb, rb).objective) == pytest.approx(expected, rel=1e-4)


def test_altpo_alternates_required_and_checked(tokenizer, data, tmp_path, alternates):
    _, _, fb, rb = data
    model = tiny_llama(tokenizer)
    with pytest.raises(ValueError, match="AltPO needs alternate answers"):
        get_method("altpo").setup(model, tokenizer)
    with pytest.raises(ValueError, match="needs the tokenizer"):
        get_method("altpo", alternates=alternates).setup(model)
    partial = dict(list(alternates.items())[:1])
    setup = get_method("altpo", alternates=partial).setup(model, tokenizer)
    with pytest.raises(ValueError, match="no alternate answer for the forget answer"):
        setup.terms_fn(model, fb, rb)
    with pytest.raises(ValueError, match="must be non-empty strings"):
        AltPO(alternates={"a": []})
    with pytest.raises(KeyError, match="forgetXX_perturbed"):
        alternates_from_rows([{"question": "q", "answer": "a"}])
    path = tmp_path / "alt.jsonl"
    path.write_text('{"answer": "A.", "alternate": ["B.", "C."]}\n', encoding="utf-8")
    assert load_alternates(path) == {"A.": ["B.", "C."]}
    assert AltPO(alternates=str(path)).options()["alternates"] == 1  # logged as a count
    path.write_text('{"answer": "A.", "alternate": ["B."]}\n{"answer": "D', encoding="utf-8")
    with pytest.raises(ValueError, match=r"alt.jsonl' cannot be read as JSON \(line 2: "):
        load_alternates(path)


def test_declarations(tokenizer):
    assert UNDIAL().needs_reference and not CEU().needs_reference
    assert not WGA().needs_reference and not SatImp().needs_reference
    assert AltPO().needs_reference
    assert (UNDIAL().beta, UNDIAL().retain_weight) == (10.0, 0.0)
    assert (CEU().ignore_first_n_answer_tokens, CEU().retain_weight) == (1, 0.0)
    assert (SatImp().beta1, SatImp().beta2, SatImp().retain_weight) == (5.0, 1.0, 10.0)
    assert (WGA().beta, WGA().retain_weight) == (1.0, 1.0)
    assert AltPO().beta == 0.1
    for alias, name in (("CEU", "ce-u"), ("sat_imp", "satimp"), ("alt-po", "altpo")):
        assert get_method(alias).name == name
    with pytest.raises(ValueError, match="beta must be"):
        get_method("undial", beta=-1.0)


# -- short runs on a tiny mini-TOFU, through the engine ----------------------------------------
def _run(name, tokenizer, tofu, options, **setup_kwargs):
    model = tiny_llama(tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    forget = QADataset(tofu["forget01"], tokenizer)
    retain = QADataset(tofu["retain99"][:8], tokenizer)
    data = PairedData(
        forget, retain, batch_size=2, collate_fn=PadCollator(tokenizer.pad_token_id), seed=0
    )
    setup = get_method(name, **options).setup(model, tokenizer, **setup_kwargs)
    engine = UnlearningEngine(
        model,
        data=data,
        **setup.engine_kwargs(),
        lr=1e-2,
        config=EngineConfig(epochs=1, max_steps=2, progress=False, cpu=True),
    )
    history = engine.fit()
    moved = any(not torch.equal(a, b) for a, b in zip(before, engine.unwrapped_model.parameters()))
    return setup, history, moved


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("constrained", [False, True])
def test_short_run_on_minitofu(name, constrained, tokenizer, tofu, alternates):
    options = {"alternates": alternates} if name == "altpo" else {}
    # constrained: ε below the starting retain NLL, so the multiplier must move off λ₀
    kwargs = {"solver": "gda", "epsilon": 0.5, "dual_lr": 0.5} if constrained else {}
    with pytest.warns(UserWarning, match="infeasible") if constrained else nullcontext():
        setup, history, moved = _run(name, tokenizer, tofu, options, **kwargs)
    assert moved and len(history) == 2
    for record in history:
        assert math.isfinite(record.objective) and math.isfinite(record.values["retain"])
        assert math.isfinite(record.metrics["forget_nll"])
    lam = history.series("retain/multiplier")
    weight = setup.method.retain_weight
    if constrained:
        assert setup.solver == "gda" and lam[1] > lam[0] >= weight
    else:
        assert setup.solver == "penalty" and lam == [weight, weight]


@pytest.mark.parametrize("name", ["pdu", "npo", "wga", "rmu"])
def test_setup_method_passes_lm_options_to_every_method(name, tokenizer, data):
    _, _, fb, rb = data
    cfg = RunConfig()
    cfg.method.name = name
    cfg.training.fused_forward = True
    model = tiny_llama(tokenizer)
    setup = setup_method(cfg, model, tokenizer)
    assert setup.terms_fn.fused and setup.terms_fn.pad_token_id == tokenizer.pad_token_id
    fused = setup.terms_fn(model, fb, rb)
    two = get_method(name).setup(model, tokenizer).terms_fn(model, fb, rb)
    assert float(fused.objective) == pytest.approx(float(two.objective), rel=1e-5)
    cfg.training.fused_forward, cfg.training.loss_chunk_size = False, 16
    if name == "pdu":
        assert setup_method(cfg, model, tokenizer).terms_fn.chunk_size == 16
    else:
        with pytest.raises(ValueError, match=f"method '{name}' cannot compute.*chunk_size=None"):
            setup_method(cfg, model, tokenizer)


def _clipped_ascent(view, reference, *, floor):
    return -view.nll().clamp(max=floor)


def test_writing_a_method_example_from_the_docs(tokenizer, data):
    # the "Writing a method" example of docs/methods.md: a method is its objective, as data
    from dataclasses import dataclass
    from functools import partial

    from constrained_unlearn.llm.terms import ForgetObjective
    from constrained_unlearn.methods import Method

    @dataclass
    class ClippedAscent(Method):
        """Gradient ascent that stops at NLL_f = floor: L_f = −min(NLL_f, floor)."""

        name = "clipped-ascent"
        floor: float = 10.0

        def forget_objective(self, tokenizer=None):
            return ForgetObjective("clipped-ascent", partial(_clipped_ascent, floor=self.floor))

    _, _, fb, rb = data
    model = tiny_llama(tokenizer)
    nll = float(get_method("grad-ascent").setup(model).terms_fn(model, fb, rb).objective)
    for floor in (1.0, 100.0):
        terms = ClippedAscent(floor=floor).setup(model, tokenizer).terms_fn(model, fb, rb)
        assert float(terms.objective) == pytest.approx(max(nll, -floor), rel=1e-6)
