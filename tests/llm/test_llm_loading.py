"""Loading from local folders, fast failures, dtypes, LoRA dependency error."""

from __future__ import annotations

import socket
import sys
import time

import pytest
import torch

from constrained_unlearn.llm import (
    LoraSettings,
    check_source,
    load_model_and_tokenizer,
    loading,
    resolve_dtype,
)
from constrained_unlearn.llm.loading import (
    HubUnavailableError,
    VocabularyMismatchError,
    check_vocabulary,
)


def test_round_trip(tmp_path, tokenizer_factory, model_factory):
    tok = tokenizer_factory()
    model = model_factory("llama", tok, init_range=0.2)
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")

    loaded, loaded_tok = load_model_and_tokenizer(tmp_path / "ckpt", dtype="float32")
    text = "Question: Where was the author born?\nAnswer: Paris"
    ids = tok(text, return_tensors="pt")["input_ids"]
    assert loaded_tok(text, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
    assert loaded_tok.pad_token_id == tok.pad_token_id
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)

    half, _ = load_model_and_tokenizer(str(tmp_path / "ckpt"), dtype="bf16")
    assert next(half.parameters()).dtype == torch.bfloat16


def test_pad_token_filled_from_eos(tmp_path, tokenizer_factory, model_factory):
    tok = tokenizer_factory()
    model = model_factory("gpt2", tok)
    tok.pad_token = None
    model.generation_config.pad_token_id = None
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_model_and_tokenizer(tmp_path)
    assert loaded_tok.pad_token_id == loaded_tok.eos_token_id
    assert loaded.generation_config.pad_token_id == loaded_tok.eos_token_id


def test_missing_path_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even online: no hub attempt
    for missing in (tmp_path / "nope", "./no/such/model", "~/no-such-model-dir", "a/b/c"):
        start = time.perf_counter()
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_model_and_tokenizer(missing)
        assert time.perf_counter() - start < 2.0
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        check_source(tmp_path / "empty")


def test_offline_uncached_hub_id_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        load_model_and_tokenizer("some-org/some-model")
    assert time.perf_counter() - start < 2.0
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with socket.socket() as server:  # a hub endpoint that accepts connections
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert check_source("some-org/some-model") == "some-org/some-model"  # a plain id online


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_fails_fast_with_one_line(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE unset, the hub endpoint refusing connections: < 10 s, one line naming the
    id, the local-folder alternative and HF_HUB_OFFLINE (no minute of retries)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError) as info:
        load_model_and_tokenizer("some-org/some-model")
    assert time.perf_counter() - start < 10.0
    message = str(info.value)
    assert "\n" not in message
    for part in ("'some-org/some-model'", "cannot be reached", "local folder", "HF_HUB_OFFLINE"):
        assert part in message


def test_unreachable_hub_loads_a_cached_id_from_the_cache(tmp_path, monkeypatch):
    """A cached id with the hub unreachable goes through from_pretrained with
    local_files_only=True (the same call a real download makes, without the retries)."""
    import transformers

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setattr(loading, "_is_cached", lambda name: True)
    seen = []

    def fake(source, **kwargs):
        seen.append((source, kwargs.get("local_files_only")))
        raise OSError("stop here")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    with pytest.raises(HubUnavailableError, match="could not load the model 'some-org/cached'"):
        load_model_and_tokenizer("some-org/cached")
    assert seen == [("some-org/cached", True)]


def test_tokenizer_larger_than_the_embeddings_is_refused_at_load(
    tmp_path, tokenizer_factory, model_factory
):
    tok = tokenizer_factory()
    model = model_factory("llama", tok)
    rows = model.get_input_embeddings().num_embeddings
    check_vocabulary(model, tok)  # the matching pair passes
    tok.add_tokens([f"<extra_{i}>" for i in range(rows - len(tok) + 3)])
    assert len(tok) == rows + 3
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(VocabularyMismatchError, match=f"has {rows + 3} ids but .* {rows} rows"):
        load_model_and_tokenizer(tmp_path / "ckpt")


def test_resolve_dtype():
    assert resolve_dtype("auto") == "auto"
    assert resolve_dtype("bfloat16") is torch.bfloat16
    assert resolve_dtype("torch.float16") is torch.float16
    assert resolve_dtype(torch.float32) is torch.float32
    with pytest.raises(ValueError, match="dtype='float8'"):
        resolve_dtype("float8")


def test_lora_without_peft(tmp_path, monkeypatch, tokenizer_factory, model_factory):
    tok = tokenizer_factory()
    model_factory("llama", tok).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
    with pytest.raises(ImportError, match=r"constrained-unlearn\[lora\]"):
        load_model_and_tokenizer(tmp_path, lora=LoraSettings(r=4))
    with pytest.raises(ValueError, match="rank"):
        LoraSettings(r=0)


def test_lora_trains_only_adapters_through_the_engine(tmp_path, tokenizer_factory, model_factory):
    """LoRA end to end: only adapter weights move, the base stays frozen, the checkpoint holds
    the adapters only."""
    from constrained_unlearn.engine import EngineConfig, PairedData, UnlearningEngine
    from constrained_unlearn.llm import CausalLMTerms, PadCollator, QADataset
    from constrained_unlearn.problem import ConstraintSpec

    tok = tokenizer_factory()
    model_factory("llama", tok).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    model, tok = load_model_and_tokenizer(tmp_path / "base", lora=LoraSettings(r=4))
    model.train()
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    assert lora_before and all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)
    rows = [
        {"question": f"Who wrote book {i}?", "answer": f"Alice wrote book {i}."} for i in range(4)
    ]
    engine = UnlearningEngine(
        model,
        CausalLMTerms(),
        PairedData(
            QADataset(rows, tok),
            QADataset(rows[::-1], tok),
            batch_size=2,
            collate_fn=PadCollator(tok.pad_token_id),
        ),
        constraints=[ConstraintSpec("retain", bound=50.0)],
        lr=1e-2,
        config=EngineConfig(epochs=1, progress=False, cpu=True, checkpoint_dir=tmp_path / "ckpt"),
    )
    engine.fit()
    after = dict(engine.unwrapped_model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in base_before.items())
    assert any(not torch.equal(after[n], p) for n, p in lora_before.items())
    from safetensors.torch import load_file

    (checkpoint,) = sorted((tmp_path / "ckpt").glob("checkpoint-*"))
    stored = load_file(next(checkpoint.glob("*.safetensors")))
    assert stored and all("lora_" in key for key in stored)
