"""Unlearning methods on a tiny random Llama: finite terms, gradients, hand-checked values."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import constrained_unlearn.methods.base as methods_base
from constrained_unlearn.engine import EngineConfig, PairedData, Terms, UnlearningEngine
from constrained_unlearn.llm import PadCollator, QADataset, pad_collate
from constrained_unlearn.losses import margin_per_position
from constrained_unlearn.methods import (
    METHODS,
    NOMINAL_EPSILON,
    REFUSALS,
    RMU,
    GradAscent,
    IdkDPO,
    control_vector,
    dpo_loss,
    get_method,
    method_names,
    refusal_batch,
)

torch.set_num_threads(1)
# hand checks compare float(tensor) of graph-carrying terms on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")

FORGET = [
    {"question": "Where was the author born?", "answer": "The author was born in Paris."},
    {"question": "What did Alice write?", "answer": "Three novels about the sea."},
    {"question": "Who?", "answer": "Bob."},
]
RETAIN = [
    {"question": "Tell me about the weather today.", "answer": "The weather is fine."},
    {"question": "What is the capital of France?", "answer": "Paris is the capital."},
]
CORPUS = [row["question"] + " " + row["answer"] for row in FORGET + RETAIN] + [
    "Question: Answer: I don't know. I'm not sure about that. Sorry, I have no idea.",
    "The quick brown fox jumps over the lazy dog, 0 1 2 3 4 5 6 7 8 9 ! ? ; : ' ( )",
]
ALL = [name for name in method_names() if name != "altpo"]  # altpo needs data: its own tests
NEEDS_REFERENCE = {"npo", "idk-dpo", "rmu", "undial"}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=200,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def tiny_llama(tokenizer, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.2,  # peaked outputs: losses far from their trivial values
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


@pytest.fixture(scope="module")
def data(tokenizer):
    forget = QADataset(FORGET, tokenizer)
    retain = QADataset(RETAIN, tokenizer)
    pad = tokenizer.pad_token_id
    fb = pad_collate([forget[i] for i in range(len(forget))], pad)
    rb = pad_collate([retain[i] for i in range(len(retain))], pad)
    return forget, retain, fb, rb


# -- hand computations, one unpadded example at a time -----------------------------------------
def per_example(model, dataset, layer=None):
    """``[(answer log-probs [n], logits at answer-predicting positions [n, V], hidden [n, d])]``."""
    out = []
    with torch.no_grad():
        for enc in dataset.encoded:
            ids = torch.tensor([enc.input_ids])
            result = model(input_ids=ids, output_hidden_states=True)
            positions = torch.arange(enc.prompt_length - 1, len(enc.input_ids) - 1)
            logits = result.logits[0, positions]
            targets = torch.tensor(enc.input_ids[enc.prompt_length :])
            log_probs = torch.log_softmax(logits, -1)[torch.arange(len(targets)), targets]
            hidden = result.hidden_states[layer][0, positions] if layer is not None else None
            out.append((log_probs, logits, hidden))
    return out


def token_mean_nll(model, dataset) -> torch.Tensor:
    return -torch.cat([lp for lp, _, _ in per_example(model, dataset)]).mean()


# -- every method -------------------------------------------------------------------------------
def test_registry_names_and_errors():
    assert set(method_names()) == {
        "grad-ascent",
        "grad-diff",
        "npo",
        "simnpo",
        "idk-dpo",
        "rmu",
        "pdu",
        "pdu-entropy",
        "undial",
        "ce-u",
        "satimp",
        "wga",
        "altpo",
    }
    assert isinstance(get_method("GA"), GradAscent)
    assert get_method("Grad_Diff").name == "grad-diff"
    assert get_method("npo", beta=0.5).beta == 0.5
    with pytest.raises(ValueError, match="choose one of .*grad-ascent.*rmu"):
        get_method("nppo")
    with pytest.raises(ValueError, match="Did you mean 'simnpo'"):
        get_method("simnpoo")
    with pytest.raises(TypeError, match="no option.*'gamma'.*options are"):
        get_method("npo", gamma=1.0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        get_method("simnpo", beta=0.0)
    with pytest.raises(ValueError, match="retain_loss"):
        get_method("grad-diff", retain_loss="l2")
    with pytest.raises(ValueError, match="unknown solver"):
        get_method("npo").solver_settings("gdaa")
    assert get_method("ceu").name == "ce-u" and get_method("Alt_PO").name == "altpo"
    for cls in METHODS.values():
        doc = cls.__doc__ or ""
        assert "arXiv" in doc and "L" in doc, f"{cls.__name__} docstring lacks formula/paper"


@pytest.mark.parametrize("name", ALL)
def test_terms_finite_and_gradients_flow(name, tokenizer, data):
    _, _, fb, rb = data
    model = tiny_llama(tokenizer).train()
    setup = get_method(name).setup(model, tokenizer)
    terms = setup.terms_fn(model, fb, rb)
    assert isinstance(terms, Terms)
    assert set(terms.constraints) == {"retain"}
    assert terms.objective.dim() == 0 and math.isfinite(terms.objective.item())
    retain = terms.constraints["retain"]
    assert retain.dim() == 0 and math.isfinite(retain.item())
    assert math.isfinite(terms.metrics["forget_nll"])
    assert terms.metrics["forget_tokens"] > 0
    # the retain term carries a graph unless its weight is frozen at 0 (GA, UNDIAL, CE-U)
    assert retain.requires_grad == (setup.method.retain_weight != 0)
    loss = terms.objective + (retain if retain.requires_grad else 0.0)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["model.embed_tokens.weight"] is not None
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert sum(float(g.abs().sum()) for g in grads.values() if g is not None) > 0
    ref = setup.reference_model
    if ref is not None:
        assert all(p.grad is None and not p.requires_grad for p in ref.parameters())
        assert not ref.training


@pytest.mark.parametrize("name", ALL)
def test_reference_built_only_when_used(name, tokenizer, monkeypatch):
    model = tiny_llama(tokenizer)

    def no_copy(module):
        raise AssertionError("a reference model was built")

    monkeypatch.setattr(methods_base, "freeze_reference", no_copy)
    method = get_method(name)
    assert method.needs_reference == (name in NEEDS_REFERENCE)
    if name in NEEDS_REFERENCE:
        with pytest.raises(AssertionError, match="reference model was built"):
            method.setup(model, tokenizer)
    else:
        setup = method.setup(model, tokenizer)
        assert setup.reference_model is None
        with pytest.raises(ValueError, match="does not use a reference"):
            method.setup(model, tokenizer, reference_model=tiny_llama(tokenizer))


def test_graddiff_kl_needs_reference_and_is_zero_at_start(tokenizer, data):
    _, retain, fb, rb = data
    model = tiny_llama(tokenizer)
    method = get_method("grad-diff", retain_loss="kl")
    assert method.needs_reference
    setup = method.setup(model, tokenizer)
    ref = setup.reference_model
    assert ref is not model and all(not p.requires_grad for p in ref.parameters())
    terms = setup.terms_fn(model, fb, rb)
    assert float(terms.constraints["retain"]) == pytest.approx(0.0, abs=1e-6)  # θ = θ_ref
    assert setup.constraints[0].bound == NOMINAL_EPSILON  # nothing to calibrate at θ₀
    with pytest.raises(ValueError, match="pass epsilon="):
        method.setup(model, tokenizer, solver="gda")
    assert method.setup(model, solver="gda", epsilon=0.05).constraints[0].bound == 0.05
    with torch.no_grad():  # move θ away: KL > 0 and the reference stays put
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert float(setup.terms_fn(model, fb, rb).constraints["retain"]) > 1e-4
    assert terms.metrics["retain_nll"] == pytest.approx(float(token_mean_nll(ref, retain)), 1e-5)


# -- hand-checked values ------------------------------------------------------------------------
def test_grad_ascent_and_graddiff_values(tokenizer, data):
    forget, retain, fb, rb = data
    model = tiny_llama(tokenizer)
    nll_f = float(token_mean_nll(model, forget))
    nll_r = float(token_mean_nll(model, retain))
    for name in ("grad-ascent", "grad-diff"):
        terms = get_method(name).setup(model, tokenizer).terms_fn(model, fb, rb)
        assert float(terms.objective) == pytest.approx(-nll_f, rel=1e-5)
        assert float(terms.constraints["retain"]) == pytest.approx(nll_r, rel=1e-5)
        assert terms.metrics["forget_nll"] == pytest.approx(nll_f, rel=1e-5)


def test_solver_treatment_defaults_and_switch(tokenizer, data):
    model = tiny_llama(tokenizer)
    ga = get_method("grad-ascent").setup(model, tokenizer)
    # every solver gets dual_lr (penalty ignores it, the augmented Lagrangian takes it as η)
    assert (ga.solver, ga.solver_kwargs) == ("penalty", {"multiplier_init": 0.0, "dual_lr": 1.0})
    assert ga.constraints[0].name == "retain" and ga.constraints[0].bound is None
    constrained = get_method("grad-ascent").setup(model, tokenizer, solver="gda", epsilon=3.0)
    assert constrained.solver == "gda"
    assert constrained.solver_kwargs == {"multiplier_init": 0.0, "dual_lr": 1.0}
    assert constrained.constraints[0].bound == 3.0
    # with a live multiplier the retain term must carry a graph
    _, _, fb, rb = data
    assert constrained.terms_fn(model, fb, rb).constraints["retain"].requires_grad
    npo = get_method("npo", retain_weight=2.5).setup(model, tokenizer, solver="nupi", kp=0.5)
    assert npo.solver_kwargs == {"multiplier_init": 2.5, "dual_lr": 1.0, "kp": 0.5}
    al = get_method("simnpo", dual_lr=0.5).setup(model, tokenizer, solver="augmented_lagrangian")
    assert al.solver == "augmented-lagrangian" and al.solver_kwargs["dual_lr"] == 0.5
    pdu = get_method("pdu").setup(model, tokenizer)
    assert (pdu.solver, pdu.solver_kwargs) == ("gda", {"multiplier_init": 100.0, "dual_lr": 5.0})
    params = pdu.params()
    assert params["method.name"] == "pdu" and params["method.solver"] == "gda"
    assert params["method.solver_kwargs.dual_lr"] == 5.0


def test_npo_value_at_reference_and_after_a_change(tokenizer, data):
    forget, _, fb, rb = data
    model = tiny_llama(tokenizer)
    beta = 0.1
    setup = get_method("npo", beta=beta).setup(model, tokenizer)
    terms = setup.terms_fn(model, fb, rb)
    assert float(terms.objective) == pytest.approx(2 / beta * math.log(2), rel=1e-5)
    assert terms.metrics["forget_log_ratio"] == pytest.approx(0.0, abs=1e-4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    s_ref = [float(lp.sum()) for lp, _, _ in per_example(setup.reference_model, forget)]
    s = [float(lp.sum()) for lp, _, _ in per_example(model, forget)]
    expected = (
        -(2 / beta)
        * sum(math.log(1 / (1 + math.exp(beta * (a - b)))) for a, b in zip(s, s_ref))
        / len(s)
    )
    assert float(setup.terms_fn(model, fb, rb).objective) == pytest.approx(expected, rel=1e-4)


def test_simnpo_value(tokenizer, data):
    forget, _, fb, rb = data
    model = tiny_llama(tokenizer)
    beta, gamma = 2.5, 0.3
    terms = get_method("simnpo", beta=beta, gamma=gamma).setup(model).terms_fn(model, fb, rb)
    avg = [float(lp.mean()) for lp, _, _ in per_example(model, forget)]
    expected = (
        -(2 / beta) * sum(math.log(1 / (1 + math.exp(beta * a + gamma))) for a in avg) / len(avg)
    )
    assert float(terms.objective) == pytest.approx(expected, rel=1e-5)


def test_dpo_loss_hand_values():
    zero = torch.zeros(3)
    assert float(dpo_loss(zero, zero, zero, zero, beta=0.5)) == pytest.approx(4 * math.log(2))
    c, r = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    rc, rr = torch.tensor([-1.5, -1.5]), torch.tensor([-1.5, -1.5])
    beta = 0.2
    margins = [(-1.0 + 1.5) - (-3.0 + 1.5), (-2.0 + 1.5) - (-1.0 + 1.5)]  # 2.0, -1.0
    expected = -(2 / beta) * sum(math.log(1 / (1 + math.exp(-beta * m))) for m in margins) / 2
    assert float(dpo_loss(c, r, rc, rr, beta=beta)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="four \\[B\\] tensors"):
        dpo_loss(c, r, rc, torch.zeros(3))


def test_refusal_batch_keeps_prompts_and_is_deterministic(tokenizer, data):
    forget, _, fb, _ = data
    method = IdkDPO()
    assert len(REFUSALS) >= 30 and len(set(REFUSALS)) == len(REFUSALS)
    ids = method.encode_refusals(tokenizer)
    assert all(r[-1] == tokenizer.eos_token_id for r in ids)
    batch = refusal_batch(fb, ids, tokenizer.pad_token_id)
    again = refusal_batch(fb, ids, tokenizer.pad_token_id)
    assert torch.equal(batch["input_ids"], again["input_ids"])
    texts = set(REFUSALS)
    for b, enc in enumerate(forget.encoded):
        n = int(batch["attention_mask"][b].sum())
        p = enc.prompt_length
        assert batch["input_ids"][b, :p].tolist() == enc.input_ids[:p]
        assert (batch["labels"][b, :p] == -100).all()
        answer = batch["labels"][b, p:n].tolist()
        assert batch["input_ids"][b, p:n].tolist() == answer
        assert answer[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(answer[:-1]) in texts
        assert (batch["labels"][b, n:] == -100).all()


def test_idk_dpo_value_at_reference(tokenizer, data):
    _, _, fb, rb = data
    model = tiny_llama(tokenizer)
    beta = 0.1
    setup = get_method("idk-dpo", beta=beta).setup(model, tokenizer)
    terms = setup.terms_fn(model, fb, rb)
    assert float(terms.objective) == pytest.approx(2 / beta * math.log(2), rel=1e-5)
    assert terms.metrics["dpo_margin"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="needs the tokenizer"):
        get_method("idk-dpo").setup(model)


def test_rmu_values(tokenizer, data):
    forget, _, fb, rb = data
    model = tiny_llama(tokenizer, layers=3)
    c, layer = 4.0, 2
    setup = get_method("rmu", layer=layer, steering_coefficient=c, seed=3).setup(model)
    terms = setup.terms_fn(model, fb, rb)
    u = control_vector(32, seed=3)
    assert float(u.norm()) == pytest.approx(1.0) and bool((u >= 0).all())
    hidden = torch.cat([h for _, _, h in per_example(model, forget, layer=layer)])
    expected = ((hidden - c * u) ** 2).mean()
    assert float(terms.objective) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms.constraints["retain"]) == pytest.approx(0.0, abs=1e-10)  # θ = θ_ref
    assert terms.metrics["rmu_layer"] == layer
    # gradients reach the blocks at or below ℓ, not the final norm/head (tied embeddings aside)
    (terms.objective + terms.constraints["retain"]).backward()
    assert model.model.layers[1].mlp.down_proj.weight.grad is not None
    assert model.model.layers[2].mlp.down_proj.weight.grad is None
    default = get_method("rmu").setup(model).terms_fn(model, fb, rb)
    assert default.metrics["rmu_layer"] == 1  # L // 2 with L = 3
    with pytest.raises(ValueError, match="out of range.*0..3"):
        get_method("rmu", layer=9).setup(model).terms_fn(model, fb, rb)
    with pytest.raises(ValueError, match="layer must be"):
        RMU(layer=-1)


def test_pdu_values(tokenizer, data):
    forget, retain, fb, rb = data
    model = tiny_llama(tokenizer)
    examples = per_example(model, forget)
    margin = torch.cat([margin_per_position(logits) ** 2 for _, logits, _ in examples]).mean()
    terms = get_method("pdu").setup(model, tokenizer).terms_fn(model, fb, rb)
    assert float(terms.objective) == pytest.approx(float(margin), rel=1e-5)
    assert float(terms.constraints["retain"]) == pytest.approx(
        float(token_mean_nll(model, retain)), rel=1e-5
    )
    logits = torch.cat([lg for _, lg, _ in examples])
    log_p = torch.log_softmax(logits, -1)
    kl = (math.log(logits.shape[-1]) + (log_p.exp() * log_p).sum(-1)).mean()
    ent = get_method("pdu-entropy").setup(model, tokenizer).terms_fn(model, fb, rb)
    assert float(ent.objective) == pytest.approx(float(kl), rel=1e-5)
    lm = {"chunk_size": 4}
    chunked = get_method("pdu").setup(model, tokenizer, lm_options=lm).terms_fn(model, fb, rb)
    assert float(chunked.objective) == pytest.approx(float(margin), rel=1e-5)


# -- through the engine -------------------------------------------------------------------------
def _engine(name, tokenizer, model, **setup_kwargs):
    forget = QADataset(FORGET, tokenizer)
    retain = QADataset(RETAIN, tokenizer)
    data = PairedData(
        forget, retain, batch_size=2, collate_fn=PadCollator(tokenizer.pad_token_id), seed=0
    )
    setup = get_method(name).setup(model, tokenizer, **setup_kwargs)
    engine = UnlearningEngine(
        model,
        data=data,
        **setup.engine_kwargs(),
        lr=1e-2,
        config=EngineConfig(epochs=1, max_steps=2, progress=False, cpu=True),
    )
    return engine, setup


@pytest.mark.parametrize("name", ALL)
def test_each_method_trains_through_the_engine(name, tokenizer):
    model = tiny_llama(tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    engine, setup = _engine(name, tokenizer, model)
    history = engine.fit()
    assert len(history) == 2
    for record in history:
        assert math.isfinite(record.objective) and math.isfinite(record.values["retain"])
        assert "forget_nll" in record.metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, engine.unwrapped_model.parameters()))
    if setup.solver == "penalty":  # the multiplier is the method's weight, frozen
        lam = setup.method.retain_weight
        assert history.series("retain/multiplier") == [lam, lam]
    if setup.reference_model is not None:  # θ_ref did not move
        ref = setup.reference_model
        assert all(torch.equal(a, b) for a, b in zip(before, ref.parameters()))


def test_grad_ascent_with_a_constraint_moves_lambda(tokenizer):
    model = tiny_llama(tokenizer)
    # ε below the starting retain loss: the constraint is violated, so λ must grow from 0
    engine, _ = _engine("grad-ascent", tokenizer, model, solver="gda", epsilon=0.5, dual_lr=2.0)
    with pytest.warns(UserWarning, match="infeasible"):
        history = engine.fit()
    lam = history.series("retain/multiplier")
    assert lam[0] > 0 and lam[1] > lam[0]
    assert lam[0] == pytest.approx(2.0 * history.records[0].violations["retain"], rel=1e-5)


# -- one LM-terms implementation: tensor metrics, fused forwards, the same for every method -----
@pytest.mark.parametrize("name", ALL)
def test_metrics_are_tensors_and_fused_equals_two_forwards(name, tokenizer, data):
    _, _, fb, rb = data
    model = tiny_llama(tokenizer, layers=3)
    two = get_method(name).setup(model, tokenizer)
    fused = get_method(name).setup(model, tokenizer, lm_options={"fused": True})
    a, b = two.terms_fn(model, fb, rb), fused.terms_fn(model, fb, rb)
    # no float() per micro-batch: every metric that comes from a tensor stays a tensor
    for key in ("forget_nll", "retain_nll", "forget_tokens", "retain_tokens"):
        assert isinstance(a.metrics[key], torch.Tensor), key
        assert not a.metrics[key].requires_grad
    assert set(a.metrics) == set(b.metrics)
    torch.testing.assert_close(b.objective, a.objective, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        b.constraints["retain"], a.constraints["retain"], rtol=1e-5, atol=1e-6
    )
    for key, value in a.metrics.items():
        assert float(b.metrics[key]) == pytest.approx(float(value), rel=1e-5, abs=1e-6), key


def test_lm_options_are_checked(tokenizer):
    model = tiny_llama(tokenizer)
    with pytest.raises(ValueError, match="unknown lm_options.*'fuse'.*fused"):
        get_method("npo").setup(model, tokenizer, lm_options={"fuse": True})
    with pytest.raises(ValueError, match=r"\['fused'\] must be true or false"):
        get_method("npo").setup(model, tokenizer, lm_options={"fused": 1})
    with pytest.raises(ValueError, match="chunk_size'.*integer ≥ 1"):
        get_method("pdu").setup(model, tokenizer, lm_options={"chunk_size": 0})
    assert get_method("pdu").setup(model, tokenizer).terms_fn.pad_token_id == 2  # <pad>
