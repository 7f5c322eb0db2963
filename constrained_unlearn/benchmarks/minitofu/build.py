"""Build (or fetch from the cache) a complete mini-TOFU: data, tokenizer, target and retain model.

Cache
    ``<root>/<key>/`` where ``root`` is ``cache_dir`` if given, else
    ``$CONSTRAINED_UNLEARN_CACHE/minitofu`` if that variable is set, else
    ``~/.cache/constrained_unlearn/minitofu``. ``key`` is the first 16 hex digits of the SHA-256 of
    the canonical JSON of everything that determines the result (`cache_key_inputs`):
    generator version, seed, size, tokenizer vocabulary size, model spec, training settings,
    forget split and the CPU kernels in force (`constrained_unlearn.numerics`: the same seed
    gives other weights under other kernels, so such builds are different entries). Changing
    any of them builds a new entry; nothing else is consulted (the thread count, default 1,
    can change the last bits of the weights and is deliberately not part of the key).

    An entry is built in a sibling temporary folder and renamed into place only when complete
    (``manifest.json`` written last), so an interrupted build never leaves a half entry. The
    temporary folder is ``.tmp-<key>-<host>-<pid>-<random>``; one left by a killed process is
    deleted by the next build of the same key on the same host. Two processes building the same
    entry at once both finish; the first rename wins and the other result is discarded.

Layout of an entry::

    data/<config>.jsonl     every TOFU config (TOFU's local layout: ``load_tofu(config, data/)``)
    tokenizer/              the trained tokenizer (``AutoTokenizer.from_pretrained``)
    target/                 model trained on full + general knowledge (+ tokenizer files)
    retain/                 model trained on retainXX + general knowledge (+ tokenizer files)
    manifest.json           key inputs, row counts, timings, memorisation scores, versions
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch

from constrained_unlearn.benchmarks._cache import (
    cache_key,
    cache_root,
    ensure_entry,
    load_cached_model,
    load_cached_tokenizer,
    write_manifest,
)
from constrained_unlearn.benchmarks.minitofu.finetune import TrainSettings, finetune
from constrained_unlearn.benchmarks.minitofu.generator import (
    GENERATOR_VERSION,
    MiniTofuSize,
    generate_minitofu,
    resolve_size,
    retain_config_for,
    training_rows,
)
from constrained_unlearn.benchmarks.minitofu.memorization import memorization_scores
from constrained_unlearn.benchmarks.minitofu.model import ModelSpec, make_model
from constrained_unlearn.benchmarks.minitofu.tokenizer import (
    DEFAULT_VOCAB_SIZE,
    iter_text,
    train_tokenizer,
)
from constrained_unlearn.benchmarks.tofu import load_tofu
from constrained_unlearn.numerics import describe_cpu_numerics

__all__ = [
    "PRESETS",
    "MiniTofu",
    "Recipe",
    "build_minitofu",
    "cache_key_inputs",
    "default_cache_root",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Everything besides the seed that determines a mini-TOFU build."""

    size: MiniTofuSize
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSettings = field(default_factory=TrainSettings)
    vocab_size: int = DEFAULT_VOCAB_SIZE


PRESETS: dict[str, Recipe] = {
    # Seconds: plumbing tests. A 1-layer, 32-wide model; it does not memorise.
    "tiny": Recipe(
        size=resolve_size("tiny"),
        model=ModelSpec(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
        ),
        train=TrainSettings(epochs=2, batch_size=16),
        vocab_size=512,
    ),
    # The demo: ≈0.7M-parameter model that memorises 1,080 QA pairs.
    "default": Recipe(size=resolve_size("default")),
    # TOFU's 200 authors (2,000 QA pairs) and a wider model to memorise them (≈ 1.6M parameters).
    "large": Recipe(
        size=resolve_size("large"),
        model=ModelSpec(hidden_size=192, intermediate_size=768, num_attention_heads=4),
    ),
}
"""Named recipes. ``build_minitofu(size=...)`` takes one of these names."""


def default_cache_root() -> Path:
    """``$CONSTRAINED_UNLEARN_CACHE/minitofu`` or ``~/.cache/constrained_unlearn/minitofu``."""
    return cache_root("minitofu")


def cache_key_inputs(seed: int, recipe: Recipe, forget_split: str) -> dict[str, Any]:
    """The JSON-able description of a build that the cache key hashes."""
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": recipe.size.as_dict(),
        "vocab_size": recipe.vocab_size,
        "model": recipe.model.as_dict(),
        "train": recipe.train.as_dict(),
        "forget_split": forget_split,
        # the kernels decide the floats of a 1,000-step training run (constrained_unlearn.numerics)
        "numerics": describe_cpu_numerics(),
    }


@dataclass
class MiniTofu:
    """A built mini-TOFU.

    Attributes:
        root: the cache entry folder.
        key: its cache key.
        data: ``{TOFU config name: datasets.Dataset}``, loaded from ``data_dir`` with
            [`load_tofu`][constrained_unlearn.benchmarks.load_tofu] (the real-TOFU code path).
        data_dir: folder to pass as ``source`` to ``load_tofu``.
        tokenizer_path, target_path, retain_path: ``from_pretrained`` folders (the model
            folders hold the tokenizer too).
        forget_split, retain_split: the split the retain model never saw and its complement.
        manifest: the entry's ``manifest.json`` (inputs, timings, memorisation scores).
        cache_hit: whether this call found the entry instead of building it.
    """

    root: Path
    key: str
    data: dict[str, datasets.Dataset]
    data_dir: Path
    tokenizer_path: Path
    target_path: Path
    retain_path: Path
    forget_split: str
    retain_split: str
    manifest: dict[str, Any]
    cache_hit: bool

    def load_tokenizer(self) -> Any:
        """The trained tokenizer (``PreTrainedTokenizerFast``)."""
        return load_cached_tokenizer(self.tokenizer_path)

    def load_target(self) -> Any:
        """The target model (trained on everything), in eval mode."""
        return load_cached_model(self.target_path)

    def load_retain(self) -> Any:
        """The retain model (never saw ``forget_split``), in eval mode."""
        return load_cached_model(self.retain_path)


def _resolve_recipe(size: str | MiniTofuSize | Recipe) -> tuple[str, Recipe]:
    if isinstance(size, Recipe):
        return "custom", size
    if isinstance(size, MiniTofuSize):
        return "custom", Recipe(size=size)
    if isinstance(size, str) and size in PRESETS:
        return size, PRESETS[size]
    raise ValueError(
        f"unknown mini-TOFU size {size!r}; use one of {sorted(PRESETS)}, a MiniTofuSize or a Recipe"
    )


@contextlib.contextmanager
def _transformers_bars(enabled: bool) -> Iterator[None]:
    """Turn off transformers' progress bars (e.g. "Writing model shards") unless ``enabled``."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            hf_logging.enable_progress_bar()


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _build_entry(
    tmp: Path, seed: int, recipe: Recipe, forget_split: str, progress: bool, evaluate: bool
) -> dict[str, Any]:
    """Write a complete entry into ``tmp``; returns the manifest (written last)."""

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = generate_minitofu(seed, recipe.size)
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True)
    for name, rows in data.items():
        _write_jsonl(data_dir / f"{name}.jsonl", rows)
    timings["data_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tokenizer = train_tokenizer(iter_text(data), vocab_size=recipe.vocab_size)
    tokenizer.save_pretrained(tmp / "tokenizer")
    timings["tokenizer_s"] = time.perf_counter() - t0

    scores: dict[str, dict[str, dict[str, float]]] = {}
    logs = {}
    retain_split = retain_config_for(forget_split)
    eval_sets = (forget_split, "retain_perturbed", "holdout10", "real_authors", "world_facts")
    for which in ("target", "retain"):
        t0 = time.perf_counter()
        model = make_model(recipe.model, tokenizer, seed)
        log = finetune(
            model,
            training_rows(data, which, forget_split),
            tokenizer,
            recipe.train,
            seed=seed,
            progress=progress,
            desc=f"mini-TOFU {which} model",
        )
        timings[f"{which}_train_s"] = time.perf_counter() - t0
        logs[which] = {"epoch_losses": log.epoch_losses, "steps": log.steps}
        if evaluate:
            t0 = time.perf_counter()
            scores[which] = {s: memorization_scores(model, tokenizer, data[s]) for s in eval_sets}
            timings[f"{which}_eval_s"] = time.perf_counter() - t0
        with _transformers_bars(progress):
            model.save_pretrained(tmp / which)
        tokenizer.save_pretrained(tmp / which)
        del model

    return write_manifest(
        tmp,
        {
            "inputs": cache_key_inputs(seed, recipe, forget_split),
            "retain_split": retain_split,
            "rows": {name: len(rows) for name, rows in data.items()},
            "vocab_size_trained": len(tokenizer),
            "parameters": sum(
                p.numel() for p in make_model(recipe.model, tokenizer, 0).parameters()
            ),
            "timings": timings,
            "training": logs,
            "memorisation": scores if evaluate else None,
        },
    )


def build_minitofu(
    seed: int = 0,
    size: str | MiniTofuSize | Recipe = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    forget_split: str = "forget10",
    force: bool = False,
    evaluate: bool = True,
    num_threads: int | None = 1,
) -> MiniTofu:
    """Build mini-TOFU, or return the cached build with the same inputs.

    Args:
        seed: determines authors, facts, splits, initialisation and shuffling.
        size: a preset name from `PRESETS` (``"tiny"`` for tests, ``"default"`` for the
            demo), a [`MiniTofuSize`][constrained_unlearn.benchmarks.MiniTofuSize] (default model and training) or a full
            [`Recipe`][constrained_unlearn.benchmarks.Recipe].
        cache_dir: cache root (module docstring); default from ``$CONSTRAINED_UNLEARN_CACHE``
            or ``~/.cache/constrained_unlearn/minitofu``.
        progress: tqdm bars during fine-tuning.
        forget_split: ``"forget01"``, ``"forget05"`` or ``"forget10"``: the split the retain
            model never sees (it trains on the complementary ``retainXX``).
        force: rebuild even if the entry exists (the old entry is replaced atomically).
        evaluate: score both models' greedy answers (ROUGE-L recall, exact match) on the forget
            split, ``retain_perturbed``, ``holdout10`` and the general-knowledge sets into
            ``manifest["memorisation"]`` (a few seconds; ``None`` when off). Not part of the
            cache key: a cache hit returns whatever the entry recorded.
        num_threads: torch intra-op threads while building (restored afterwards); ``None``
            keeps the current setting. Default 1: this model's matrices are too small for
            intra-op parallelism to pay, and two threads competing with other processes for
            two cores ran 6× slower per epoch (12–15 s vs 2.0–2.6 s, measured at load ≈ 4.5).

    Returns:
        A [`MiniTofu`][constrained_unlearn.benchmarks.MiniTofu].
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be ≥ 1 or None, got {num_threads}")
    preset, recipe = _resolve_recipe(size)
    retain_split = retain_config_for(forget_split)
    root = cache_root("minitofu", cache_dir)
    inputs = cache_key_inputs(seed, recipe, forget_split)
    key = cache_key(inputs)

    def build(tmp: Path) -> None:
        logger.info("building mini-TOFU %s (preset %s, seed %d) in %s", key, preset, seed, tmp)
        threads_before = torch.get_num_threads()
        try:
            if num_threads is not None:
                torch.set_num_threads(num_threads)
            _build_entry(tmp, seed, recipe, forget_split, progress, evaluate)
        finally:
            torch.set_num_threads(threads_before)

    entry, manifest, hit = ensure_entry(root, key, build, force=force)
    data_dir = entry / "data"
    data = {name: load_tofu(name, data_dir) for name in sorted(manifest["rows"])}
    return MiniTofu(
        root=entry,
        key=key,
        data=data,
        data_dir=data_dir,
        tokenizer_path=entry / "tokenizer",
        target_path=entry / "target",
        retain_path=entry / "retain",
        forget_split=forget_split,
        retain_split=retain_split,
        manifest=manifest,
        cache_hit=hit,
    )
