"""mini-TOFU build: the tiny preset end to end in a temporary cache, the cache's behaviour,
fine-tuning and the memorisation check."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from constrained_unlearn.benchmarks import _cache as cache_module
from constrained_unlearn.benchmarks.minitofu import (
    CACHE_ENV,
    PRESETS,
    MiniTofuSize,
    ModelSpec,
    Recipe,
    TrainSettings,
    build_minitofu,
    cache_key,
    cache_key_inputs,
    default_cache_root,
    finetune,
    make_model,
    memorization_scores,
    train_tokenizer,
)
from constrained_unlearn.benchmarks.minitofu import build as build_module
from constrained_unlearn.benchmarks.minitofu.finetune import answer_nll, lr_factor
from constrained_unlearn.benchmarks.minitofu.tokenizer import iter_text
from constrained_unlearn.benchmarks.tofu import TOFU_CONFIGS, load_tofu
from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.tokenization import QADataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("minitofu-cache")
    threads = torch.get_num_threads()
    built = build_minitofu(
        seed=0, size="tiny", cache_dir=cache, progress=False, evaluate=False, num_threads=1
    )
    assert torch.get_num_threads() == threads  # restored
    return built


def test_tiny_build_writes_a_complete_entry(tiny):
    assert not tiny.cache_hit
    assert tiny.root.name == tiny.key
    assert set(tiny.data) == set(TOFU_CONFIGS)
    for name, ds in tiny.data.items():
        assert len(ds) == tiny.manifest["rows"][name]
    # the data folder is a TOFU source: the real-TOFU loader reads it
    assert load_tofu("forget10_perturbed", tiny.data_dir).to_list() == (
        tiny.data["forget10_perturbed"].to_list()
    )
    assert (tiny.forget_split, tiny.retain_split) == ("forget10", "retain90")
    tokenizer = tiny.load_tokenizer()
    assert tokenizer.pad_token_id not in (None, tokenizer.eos_token_id)
    target, retain = tiny.load_target(), tiny.load_retain()
    assert target.config.tie_word_embeddings
    assert target.get_input_embeddings().weight is target.get_output_embeddings().weight
    assert not torch.equal(target.lm_head.weight, retain.lm_head.weight)
    # the model folders are self-contained: the tokenizer loads from them too
    assert (tiny.target_path / "tokenizer.json").is_file()
    assert (tiny.target_path / "model.safetensors").is_file()
    assert not list(tiny.root.parent.glob(".tmp-*"))
    losses = tiny.manifest["training"]["target"]["epoch_losses"]
    assert len(losses) == PRESETS["tiny"].train.epochs and losses[-1] < losses[0]
    assert tiny.manifest["memorisation"] is None
    assert tiny.manifest["torch_threads"] == 1


def test_cache_hit_does_not_retrain(tiny, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not fine-tune")

    monkeypatch.setattr(build_module, "finetune", no_training)
    again = build_minitofu(seed=0, size="tiny", cache_dir=tiny.root.parent, progress=False)
    assert again.cache_hit and again.key == tiny.key
    assert again.manifest == tiny.manifest
    assert again.data["full"].to_list() == tiny.data["full"].to_list()


def test_every_setting_changes_the_key():
    recipe = PRESETS["tiny"]
    base = cache_key(cache_key_inputs(0, recipe, "forget10"))
    variants = [
        cache_key_inputs(1, recipe, "forget10"),
        cache_key_inputs(0, recipe, "forget05"),
        cache_key_inputs(0, dataclasses.replace(recipe, vocab_size=600), "forget10"),
        cache_key_inputs(
            0, dataclasses.replace(recipe, train=TrainSettings(epochs=3, batch_size=16)), "forget10"
        ),
        cache_key_inputs(
            0, dataclasses.replace(recipe, model=ModelSpec(hidden_size=64)), "forget10"
        ),
        cache_key_inputs(
            0,
            dataclasses.replace(recipe, size=dataclasses.replace(recipe.size, n_authors=21)),
            "forget10",
        ),
    ]
    keys = {cache_key(v) for v in variants}
    assert base not in keys and len(keys) == len(variants)
    assert cache_key(cache_key_inputs(0, recipe, "forget10")) == base  # stable
    inputs = cache_key_inputs(0, recipe, "forget10")
    inputs["generator_version"] = "999"
    assert cache_key(inputs) != base


def test_cache_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_root() == tmp_path / "minitofu"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_root().parts[-2:] == ("constrained_unlearn", "minitofu")


def test_crash_leaves_no_entry(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash during fine-tuning")

    monkeypatch.setattr(build_module, "finetune", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_minitofu(seed=5, size="tiny", cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_entry_without_manifest_is_refused(tmp_path):
    key = cache_key(cache_key_inputs(0, PRESETS["tiny"], "forget10"))
    (tmp_path / key).mkdir()
    with pytest.raises(RuntimeError, match="delete the folder"):
        build_minitofu(seed=0, size="tiny", cache_dir=tmp_path, progress=False)


def test_unknown_size_and_forget_split(tmp_path):
    with pytest.raises(ValueError, match="default"):
        build_minitofu(size="medium", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="forget10"):
        build_minitofu(size="tiny", cache_dir=tmp_path, forget_split="forget20")
    assert list(tmp_path.iterdir()) == []


def test_lr_schedule_warms_up_then_decays():
    s = TrainSettings(epochs=1, warmup_fraction=0.1, min_lr_ratio=0.05)
    factors = [lr_factor(i, 100, s) for i in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert lr_factor(100, 100, s) == pytest.approx(0.05)


@pytest.fixture(scope="module")
def small_setup():
    names = ["Abwyn", "Corette", "Marius", "Zarion"]
    cities = ["Quorra", "Varnholt", "Duskmere", "Ironvale"]
    rows = [
        {"question": f"Where does {name} live?", "answer": f"{name} lives in {city}."}
        for name, city in zip(names, cities)
    ]
    tokenizer = train_tokenizer(iter_text({"rows": rows}), vocab_size=400)
    return rows, tokenizer


def test_answer_nll_equals_the_full_model_loss(small_setup):
    rows, tokenizer = small_setup
    model = make_model(
        ModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
        tokenizer,
        seed=0,
    )
    ds = QADataset(rows, tokenizer)
    batch = pad_collate([ds[i] for i in range(len(ds))], tokenizer.pad_token_id)
    expected = model(**batch).loss
    assert answer_nll(model, batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_finetune_memorizes_a_few_facts(small_setup):
    rows, tokenizer = small_setup
    spec = ModelSpec(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2
    )
    model = make_model(spec, tokenizer, seed=0)
    before = memorization_scores(model, tokenizer, rows, max_new_tokens=12)
    log = finetune(
        model,
        rows,
        tokenizer,
        TrainSettings(epochs=100, batch_size=4, learning_rate=3e-3),
        progress=False,
    )
    after = memorization_scores(model, tokenizer, rows, max_new_tokens=12)
    assert log.steps == 100 and log.epoch_losses[-1] < 0.1 * log.epoch_losses[0]
    assert after["exact_match"] == 1.0 and after["rougeL_recall"] == 1.0
    assert before["exact_match"] == 0.0
    # same seed, same init
    again = make_model(spec, tokenizer, seed=0)
    assert torch.equal(again.lm_head.weight, make_model(spec, tokenizer, seed=0).lm_head.weight)


def test_custom_size_uses_default_model_and_training():
    _, recipe = build_module._resolve_recipe(MiniTofuSize(10, 2, 2, 2))
    assert recipe.model == ModelSpec() and recipe.train == TrainSettings()
    assert build_module._resolve_recipe(Recipe(size=recipe.size))[1] == recipe
    json.dumps(cache_key_inputs(0, recipe, "forget01"))  # JSON-able


def test_temporary_folders_of_dead_builds_are_removed(tmp_path, monkeypatch):
    key = cache_key(cache_key_inputs(7, PRESETS["tiny"], "forget10"))
    host = cache_module._host()
    dead = tmp_path / f".tmp-{key}-{host}-999999999-0000aaaa"  # pid beyond any pid_max
    alive = tmp_path / f".tmp-{key}-{host}-{os.getppid()}-0000bbbb"
    other_host = tmp_path / f".tmp-{key}-elsewhere-999999999-0000cccc"
    other_key = tmp_path / f".tmp-0123456789abcdef-{host}-999999999-0000dddd"
    for path in (dead, alive, other_host, other_key):
        path.mkdir()

    def crash(*args, **kwargs):
        raise RuntimeError("stop after the clean-up")

    monkeypatch.setattr(build_module, "finetune", crash)
    with pytest.raises(RuntimeError, match="clean-up"):
        build_minitofu(seed=7, size="tiny", cache_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (alive, other_host, other_key)
    )
