"""The chunked, head-fused losses equal the naive ones, values and gradients (to 1e-6)."""

import pytest
import torch

from constrained_unlearn.losses import margin_flattening_loss, token_nll
from constrained_unlearn.losses.chunked import chunked_head_loss


@pytest.mark.parametrize("kind", ["margin", "nll"])
@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_equals_naive(kind, chunk, with_bias):
    torch.manual_seed(0)
    n, h, v = 23, 8, 50
    hidden = torch.randn(n, h, requires_grad=True)
    weight = (torch.randn(v, h) * 0.5).requires_grad_(True)
    bias = torch.randn(v, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,))
    params = [hidden, weight] + ([bias] if with_bias else [])

    chunked = chunked_head_loss(
        hidden, weight, kind=kind, targets=targets, bias=bias, chunk_size=chunk
    )
    logits = hidden @ weight.t() + (bias if with_bias else 0)
    naive = margin_flattening_loss(logits) if kind == "margin" else token_nll(logits, targets)
    assert chunked.item() == pytest.approx(naive.item(), rel=1e-6)
    for g_chunked, g_naive in zip(
        torch.autograd.grad(chunked, params), torch.autograd.grad(naive, params)
    ):
        torch.testing.assert_close(g_chunked, g_naive, rtol=1e-5, atol=1e-6)


def test_margin_gradient_hand_value():
    # one position, H = V = 2, W = I: z = h = (3, 1); m = 3 − 2 = 1; ∂m²/∂z = 2m(e₀ − ½) = (1, −1)
    hidden = torch.tensor([[3.0, 1.0]], requires_grad=True)
    loss = chunked_head_loss(hidden, torch.eye(2), kind="margin")
    (grad,) = torch.autograd.grad(loss, [hidden])
    assert loss.item() == pytest.approx(1.0)
    assert grad.tolist() == [[1.0, -1.0]]


def test_bad_input():
    with pytest.raises(ValueError, match="no supervised position"):
        chunked_head_loss(torch.zeros(0, 3), torch.zeros(4, 3), kind="margin")
    with pytest.raises(ValueError, match="needs targets"):
        chunked_head_loss(torch.zeros(2, 3), torch.zeros(4, 3), kind="nll")
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_head_loss(torch.zeros(2, 3), torch.zeros(4, 3), kind="margin", chunk_size=0)


# -- the chunked terms on real architectures: exact, or refused ---------------------------------
VOCAB = 97
_COMMON = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "initializer_range": 0.2,  # logits of a few units: post-processing shows
}


def _config(arch: str, post_process: bool):
    import transformers as T

    if arch == "llama":
        return T.LlamaConfig(**_COMMON)
    if arch == "qwen2":
        return T.Qwen2Config(**_COMMON)
    if arch == "gpt2":
        return T.GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128,
            initializer_range=0.2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=1, eos_token_id=2,
        )  # fmt: skip
    if arch == "phi":  # an LM head with a bias
        return T.PhiConfig(**{k: v for k, v in _COMMON.items() if k != "num_key_value_heads"})
    if arch == "cohere":
        return T.CohereConfig(**_COMMON, logit_scale=0.25 if post_process else 1.0)
    if arch == "granite":
        return T.GraniteConfig(**_COMMON, logits_scaling=4.0 if post_process else 1.0)
    if arch == "falcon_h1":
        return T.FalconH1Config(
            **_COMMON, head_dim=8, mamba_d_ssm=32, mamba_n_heads=4, mamba_d_head=8,
            mamba_n_groups=1, mamba_d_state=8, mamba_d_conv=4,
            lm_head_multiplier=0.5 if post_process else 1.0,
        )  # fmt: skip
    if arch == "recurrent_gemma":
        return T.RecurrentGemmaConfig(
            **{k: v for k, v in _COMMON.items() if k != "max_position_embeddings"},
            lru_width=32, attention_window_size=16, block_types=["recurrent", "attention"],
            logits_soft_cap=2.0 if post_process else 1e9,
        )  # fmt: skip
    if arch == "gemma2":
        return T.Gemma2Config(
            **_COMMON, head_dim=8, final_logit_softcapping=2.0 if post_process else None
        )
    raise ValueError(arch)


def _model(arch: str, post_process: bool = True):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(_config(arch, post_process), dtype=torch.float32)


def _lm_batches():
    from constrained_unlearn.llm import pad_collate

    g = torch.Generator().manual_seed(1)

    def example(prompt: int, answer: int) -> dict:
        ids = torch.randint(3, VOCAB, (prompt + answer,), generator=g).tolist()
        return {"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]}

    forget = pad_collate([example(4, 5), example(3, 2), example(5, 4)], 0)
    retain = pad_collate([example(2, 6), example(4, 3)], 0)
    return forget, retain


def _naive_and_chunked(model, **kwargs):
    from constrained_unlearn.llm import CausalLMTerms

    fb, rb = _lm_batches()
    naive = CausalLMTerms(answer_rows=False, **kwargs)(model, fb, rb)  # the full logits
    chunked = CausalLMTerms(chunk_size=4, **kwargs)(model, fb, rb)
    return naive, chunked


def _assert_equal_with_gradients(model, naive, chunked):
    params = [p for p in model.parameters() if p.requires_grad]
    torch.testing.assert_close(chunked.objective, naive.objective, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        chunked.constraints["retain"], naive.constraints["retain"], rtol=1e-5, atol=1e-6
    )
    g_chunked = torch.autograd.grad(
        chunked.objective + chunked.constraints["retain"], params, allow_unused=True
    )
    g_naive = torch.autograd.grad(
        naive.objective + naive.constraints["retain"], params, allow_unused=True
    )
    for a, b in zip(g_chunked, g_naive):
        assert (a is None) == (b is None)
        if a is not None:  # to 1e-5 of each gradient's scale (float32 rounding of the sums)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()) + 1e-7)


PLAIN = ["llama", "qwen2", "gpt2", "phi"]
POST_PROCESSING = ["cohere", "granite", "falcon_h1", "recurrent_gemma", "gemma2"]


@pytest.mark.parametrize("arch", PLAIN)
@pytest.mark.parametrize("fused", [False, True])
def test_chunked_terms_exact_on_plain_heads(arch, fused):
    model = _model(arch)
    if arch == "phi":
        assert model.get_output_embeddings().bias is not None
    naive, chunked = _naive_and_chunked(model, fused=fused)
    _assert_equal_with_gradients(model, naive, chunked)


@pytest.mark.parametrize("arch", POST_PROCESSING)
def test_chunked_terms_refused_where_logits_are_post_processed(arch):
    model = _model(arch, post_process=True)
    name = type(model).__name__
    with pytest.raises(ValueError, match=f"not exact for {name}.*chunk_size=None"):
        _naive_and_chunked(model)


@pytest.mark.parametrize("arch", POST_PROCESSING)
def test_chunked_terms_exact_or_refused_with_neutral_settings(arch):
    # the same architectures with their post-processing at identity (scale 1, no cap): the
    # check is on the numbers, not on the architecture's name, so these must be exact
    model = _model(arch, post_process=False)
    try:
        naive, chunked = _naive_and_chunked(model)
    except ValueError as error:  # a model may still transform its logits: then it must say so
        assert "chunk_size=None" in str(error) and type(model).__name__ in str(error)
        assert arch == "recurrent_gemma"  # tanh soft-capping is never the identity
        return
    _assert_equal_with_gradients(model, naive, chunked)


def test_gradient_ascent_chunked_through_the_method():
    from constrained_unlearn.methods import get_method

    model = _model("llama")
    fb, rb = _lm_batches()
    for name in ("grad-ascent", "grad-diff"):
        naive = get_method(name).setup(model).terms_fn(model, fb, rb)  # answer rows
        setup = get_method(name).setup(model, lm_options={"chunk_size": 3})
        chunked = setup.terms_fn(model, fb, rb)
        assert float(chunked.objective) == pytest.approx(float(naive.objective), rel=1e-6)
        assert float(chunked.objective) < 0  # −NLL_f


def test_lora_on_the_head_is_refused_and_elsewhere_exact():
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["lm_head"], lora_dropout=0.0)
    on_head = peft.get_peft_model(_model("llama"), config)
    with pytest.raises(ValueError, match="LoRA adapter on the head.*no gradient"):
        _naive_and_chunked(on_head)

    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    config.lora_dropout = 0.0
    adapted = peft.get_peft_model(_model("llama"), config)
    naive, chunked = _naive_and_chunked(adapted)
    _assert_equal_with_gradients(adapted, naive, chunked)
    _, chunked = _naive_and_chunked(adapted)
    trainable = [(n, p) for n, p in adapted.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(chunked.objective, [p for _, p in trainable])
    lora_b = [g for (n, _), g in zip(trainable, grads) if "lora_B" in n]
    assert lora_b and all(float(g.abs().sum()) > 0 for g in lora_b)  # the adapter learns


def test_chunking_refused_by_name_for_objectives_that_need_logits():
    from constrained_unlearn.methods import get_method

    model = _model("llama")
    for name in ("npo", "simnpo", "pdu-entropy", "rmu", "undial", "ce-u", "wga", "satimp"):
        with pytest.raises(ValueError, match=f"method '{name}' cannot compute.*chunk_size=None"):
            get_method(name).setup(model, lm_options={"chunk_size": 8})
    with pytest.raises(ValueError, match="retain term 'kl'"):
        get_method("grad-diff", retain_loss="kl").setup(model, lm_options={"chunk_size": 8})
    with pytest.raises(ValueError, match="unknown lm_options.*'chunk'"):
        get_method("pdu").setup(model, lm_options={"chunk": 8})


# -- the answer-rows path (the default for position-local terms): exact, or the full logits --
def _full_and_rows(model, **kwargs):
    from constrained_unlearn.llm import CausalLMTerms

    fb, rb = _lm_batches()
    full = CausalLMTerms(answer_rows=False, **kwargs)(model, fb, rb)
    terms = CausalLMTerms(**kwargs)
    rows = terms(model, fb, rb)
    return full, rows, terms


@pytest.mark.parametrize("arch", PLAIN)
@pytest.mark.parametrize("fused", [False, True])
def test_answer_rows_equal_the_full_logits(arch, fused):
    model = _model(arch)
    full, rows, terms = _full_and_rows(model, fused=fused)
    assert terms.answer_rows  # it ran on the answer rows only
    _assert_equal_with_gradients(model, full, rows)
    for key in ("forget_nll", "retain_nll", "forget_tokens", "retain_tokens"):
        torch.testing.assert_close(
            torch.as_tensor(rows.metrics[key]).float(),
            torch.as_tensor(full.metrics[key]).float(),
            rtol=1e-5,
            atol=1e-6,
        )
    assert int(rows.metrics["forget_tokens"]) == 5 + 2 + 4  # |A_f|: the answer tokens


def test_answer_rows_give_the_head_only_the_answer_positions():
    from constrained_unlearn.llm import CausalLMTerms

    model = _model("llama")
    seen: list[tuple[int, ...]] = []
    handle = model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: seen.append(tuple(out.shape))
    )
    fb, rb = _lm_batches()
    try:
        CausalLMTerms(fused=False)(model, fb, rb)
    finally:
        handle.remove()
    # the model's own head ran on the last position only ([B, 1, V]); the [B, T, V] logits
    # never existed
    assert seen == [(3, 1, VOCAB), (2, 1, VOCAB)]


@pytest.mark.parametrize("arch", ["cohere", "gemma2"])
def test_answer_rows_fall_back_to_the_full_logits_on_post_processed_heads(arch):
    model = _model(arch, post_process=True)
    full, rows, terms = _full_and_rows(model)
    assert not terms.answer_rows  # refused by the exactness check on the first batch
    _assert_equal_with_gradients(model, full, rows)
    from constrained_unlearn.llm import CausalLMTerms

    with pytest.raises(ValueError, match="not exact.*answer_rows=None"):
        CausalLMTerms(answer_rows=True)(model, *_lm_batches())


def test_answer_rows_refused_for_terms_that_are_not_position_local():
    from constrained_unlearn.llm.terms import KL_RETAIN, CausalLMTerms

    model = _model("llama")
    with pytest.raises(ValueError, match="answer_rows=True needs position-local terms"):
        CausalLMTerms(answer_rows=True, retain=KL_RETAIN, reference_model=_model("llama"))
    assert not CausalLMTerms(retain=KL_RETAIN, reference_model=model).answer_rows
